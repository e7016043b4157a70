"""The durable store: SQLAlchemy Core tables, migrations and the single-writer journal."""

from cove.store.database import Store, open_store

__all__ = ["Store", "open_store"]
