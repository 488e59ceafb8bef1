"""Widgets of the console, each carrying its own DEFAULT_CSS."""
