"""The core of a call, written once: async here, and made sync in ``_sync/`` by
``scripts/make_sync.py`` (the calls of ``_io.runtime.AsyncRuntime`` read ``SyncRuntime`` there)."""
