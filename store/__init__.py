"""The store: SQLModel/SQLite (or any SQLAlchemy URL) holding experiments, runs, subjects, gate results
and decisions; it ingests run directories and exports delta tables and model cards."""

from store.store import Store

__all__ = ["Store"]
