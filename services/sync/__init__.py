"""The sync service: edge outbox -> cloud ingest, cloud config -> edge (see service.py)."""
