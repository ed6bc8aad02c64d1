"""graphtag.baselines (under construction)."""
