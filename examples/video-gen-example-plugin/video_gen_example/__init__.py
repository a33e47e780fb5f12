"""An example video-gen model plugin, installed as its own package (see README.md)."""

from video_gen_example.plugin import SlideshowModel

__all__ = ["SlideshowModel"]
