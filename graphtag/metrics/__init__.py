"""graphtag.metrics (under construction)."""
