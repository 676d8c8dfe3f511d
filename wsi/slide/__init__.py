"""Open a slide and read it at a resolution: the OpenSlide/TIFF reader, direct TIFF decode, resampling, resolution metadata."""
