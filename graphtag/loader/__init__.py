"""graphtag.loader (under construction)."""
