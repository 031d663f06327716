"""fadelink: save a photo into a folder, get a link that disappears on time."""

__version__ = "0.1.0"
