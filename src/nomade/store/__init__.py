"""The store (a SQLite file, or PostgreSQL: nomade.store.pg): connection settings, numbered
migrations, and the tables' access helpers."""

from .db import Store, open_store

__all__ = ["Store", "open_store"]
