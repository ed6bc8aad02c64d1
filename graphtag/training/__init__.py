"""graphtag.training (under construction)."""
