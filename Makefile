# Convenience targets; README.md's two commands are the reference.
PY ?= python3

.PHONY: setup test lint run fast
setup:
	$(PY) -m pip install -q torch==2.13.0 -e ".[test]"

test:
	$(PY) -m pytest -q

lint:
	ruff check graphtag tests experiments datasets
	ruff format --check graphtag tests experiments datasets

run:
	graphtag run --dataset blogcatalog --out runs/blogcatalog
