"""The sync core of a call, made from ``_async/`` by ``scripts/make_sync.py``."""
