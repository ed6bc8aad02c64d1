"""graphtag.estimation (under construction)."""
