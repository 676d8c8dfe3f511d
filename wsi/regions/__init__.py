"""Tumour regions of a heatmap: polygons, lesion candidates, slide score, lesion size and the node's class."""
