"""Sync tests: real PostgreSQL (the stores' fixture), real gateway, nats-server and sync processes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# The stores' server fixtures, reused as they are (tests/stores/conftest.py).
_spec = importlib.util.spec_from_file_location("rva_store_fixtures_sync", Path(__file__).parents[1] / "stores" /
                                               "conftest.py")
assert _spec is not None and _spec.loader is not None
_stores = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_stores)
pg_server = _stores.pg_server
