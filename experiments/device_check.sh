#!/usr/bin/env bash
# One prepared GPU check for a session that is lent a device (see experiments/README.md).
#
# Runs, each under its own time limit, writing logs and JSON to $OUT (default ./device_out):
#   1. GPU tests (pytest -m gpu)                                               ~1 min
#   2. bench_surrogate on CUDA (target >= 50x vs per-subset scipy)            ~2 min
#   3. bench_gradients on CUDA at T = 10, 100, 500 (target >= 100x at T=100)  ~2 min
#   4. the scale issue's GPU target: Grad-TAG affinity estimation of a synthetic graph of 1M
#      nodes, ~20M edges, 500 tasks (base model, features, 2,000 subsets, ADMM clustering)
#      through experiments/bench_pipeline.py, per-stage seconds and peak device memory
#      (target < 10 min, < 40 GB)                                               <= 9 min
# The device image has torch and torch_geometric but no cvxpy/ogb: graphtag is installed
# without dependencies (every cvxpy/ogb import in graphtag is lazy; T = 500 clusters with the
# torch ADMM solver). Usage on the device machine, from the repository root:
#     bash experiments/device_check.sh [quick]
# "quick" runs parts 1-3 only.
set -u
OUT="${OUT:-device_out}"
mkdir -p "$OUT"
python -m pip install --no-deps -q -e . > "$OUT/install.log" 2>&1 || echo "install failed" >> "$OUT/install.log"
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/device.txt" 2>&1
python -c "import torch, torch_geometric; print(torch.__version__, torch_geometric.__version__, torch.cuda.get_device_name(0))" >> "$OUT/device.txt" 2>&1

# The GPU-marked tests only (their files import no optional test tools such as hypothesis).
timeout 180 python -m pytest -q -p no:cacheprovider -m gpu tests/unit/clustering/test_lowrank.py \
    tests/unit/gradients/test_projector.py tests/unit/gradients/test_jvp.py \
    tests/unit/loader/test_sampler.py > "$OUT/gpu_tests.log" 2>&1
echo "gpu tests rc $?" >> "$OUT/summary.txt"

timeout 180 python experiments/bench_surrogate.py --device cuda --out "$OUT/bench_surrogate.json" \
    > "$OUT/bench_surrogate.log" 2>&1
echo "bench_surrogate rc $? $(tail -n 1 "$OUT/bench_surrogate.log")" >> "$OUT/summary.txt"

timeout 180 python experiments/bench_gradients.py --device cuda --out "$OUT/bench_gradients.json" \
    > "$OUT/bench_gradients.log" 2>&1
echo "bench_gradients rc $? $(tail -n 1 "$OUT/bench_gradients.log")" >> "$OUT/summary.txt"

if [ "${1:-}" != "quick" ]; then
    timeout 540 python experiments/bench_pipeline.py --device cuda --in-process \
        --nodes 1000000 --tasks 500 --num-groups 50 --avg-degree 40 --epochs 20 \
        --projection-dim 200 --num-subsets 2000 --subset-size 10 \
        --out "$OUT/bench_pipeline" > "$OUT/bench_pipeline.log" 2>&1
    echo "bench_pipeline rc $? $(tail -n 1 "$OUT/bench_pipeline.log")" >> "$OUT/summary.txt"
fi
cat "$OUT/summary.txt"
