"""hcx web fronts: the checkpoint station and the residents\x27 page (docs/web.md)."""
