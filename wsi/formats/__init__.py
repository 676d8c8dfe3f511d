"""The files pathologists open: QuPath GeoJSON, ASAP XML, Camelyon16 detection CSV."""
