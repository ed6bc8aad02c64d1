"""graphtag.clustering (under construction)."""
