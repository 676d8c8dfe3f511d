"""Stitching scores into the heatmap, its TIFF, PNG and overlay, colours."""
