"""graphtag.grouping (under construction)."""
