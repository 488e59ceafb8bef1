"""Headless jobs of slayer console: data, train, gates, select, merge, export.

Knows nothing of the store, the TUI or SSH; a job writes only into its run directory.
"""

__version__ = "0.1.0"
