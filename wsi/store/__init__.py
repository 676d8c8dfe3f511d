"""The per-slide zarr store: its layout and key names, the pixel layouts, chunk checks, locking and atomic writes."""
