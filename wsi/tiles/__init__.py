"""The tissue mask, patch selection, bands and the tiler."""
