"""Local web viewer of an output folder: ``create_app(ViewerConfig(out_dir))``."""

from wsi.viewer.app import ViewerConfig, create_app

__all__ = ["ViewerConfig", "create_app"]
