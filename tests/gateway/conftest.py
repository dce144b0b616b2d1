"""The gateway tests' fixtures. Helpers live in gateway_env.py: tests import them by that name, never from
``conftest`` (several folders have a conftest.py; importing one by name breaks a run over many folders)."""

from gateway_env import env, nats_server, pg_server, redis_server  # noqa: F401  (pytest collects them here)
