"""The gateway's own PostgreSQL tables: tenants, stores, config and model versions, API keys, snapshots, batches.

Analytics data is never read here (that is the stores' query layer); this is the registry of who owns
what. Every read and write of a tenant's resource takes the tenant and filters on it in SQL, so a
route that forgot a check still cannot cross tenants.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from gateway.errors import Conflict, NotFound, PreconditionFailed
from gateway.pool import Pool
from rva.stores.errors import StoreUnavailable

SCHEMA = "gateway"
_LOCK_ID = 0x5256_4147  # advisory lock of migrations ("RVAG")

_MIGRATIONS: tuple[tuple[int, str], ...] = ((1, f"""
CREATE TABLE {SCHEMA}.tenants (
    id text PRIMARY KEY, name text NOT NULL, privacy jsonb NOT NULL, retention jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE {SCHEMA}.stores (
    id text PRIMARY KEY, tenant text NOT NULL REFERENCES {SCHEMA}.tenants ON DELETE CASCADE,
    name text NOT NULL, timezone text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX stores_tenant_idx ON {SCHEMA}.stores (tenant, id);
CREATE TABLE {SCHEMA}.store_configs (
    store text NOT NULL REFERENCES {SCHEMA}.stores ON DELETE CASCADE, version integer NOT NULL,
    document jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), created_by text NOT NULL,
    PRIMARY KEY (store, version));
CREATE TABLE {SCHEMA}.api_keys (
    id text PRIMARY KEY, store text NOT NULL REFERENCES {SCHEMA}.stores ON DELETE CASCADE,
    name text NOT NULL, hash text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz);
CREATE TABLE {SCHEMA}.snapshots (
    store text NOT NULL REFERENCES {SCHEMA}.stores ON DELETE CASCADE, camera text NOT NULL,
    image bytea NOT NULL, width integer NOT NULL, height integer NOT NULL, privacy text NOT NULL,
    people_blurred integer NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (store, camera));
CREATE TABLE {SCHEMA}.ingest_batches (
    store text NOT NULL REFERENCES {SCHEMA}.stores ON DELETE CASCADE, batch_id text NOT NULL,
    events integer NOT NULL, new_events integer NOT NULL, sinks jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (store, batch_id));
"""), (2, f"""
CREATE TABLE {SCHEMA}.store_models (
    store text NOT NULL REFERENCES {SCHEMA}.stores ON DELETE CASCADE, revision integer NOT NULL,
    manifest jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), created_by text NOT NULL,
    PRIMARY KEY (store, revision));
"""))


@dataclass(frozen=True, slots=True)
class StoreRecord:
    """A store as the registry holds it."""

    id: str
    tenant: str
    name: str
    timezone: str
    config_version: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key row (``hash`` is the salted scrypt hash, never the secret)."""

    id: str
    tenant: str
    store: str
    name: str
    hash: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """A privacy-filtered camera snapshot (JPEG)."""

    image: bytes
    width: int
    height: int
    privacy: str
    people_blurred: int
    updated_at: datetime


_STORE_COLS = (
    "s.id, s.tenant, s.name, s.timezone, "
    f"coalesce((SELECT max(version) FROM {SCHEMA}.store_configs c WHERE c.store = s.id), 0), s.created_at"
)


class Registry:
    """Tenants, stores, config versions, API keys, snapshots and ingest batches in PostgreSQL.

    Args:
        dsn: PostgreSQL connection string.
        pool_size: Connections at most.

    """

    def __init__(self, dsn: str, pool_size: int = 8) -> None:
        self._pool: Pool[psycopg.Connection[Any]] = Pool(
            lambda: psycopg.connect(dsn, connect_timeout=10, options="-c TimeZone=UTC"), pool_size,
            healthy=lambda c: not c.closed, close=lambda c: c.close(), what="registry connection")

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection whose work is committed at the end of the block (rolled back on an error)."""
        try:
            with self._pool.get() as conn:
                try:
                    yield conn
                    conn.commit()
                except psycopg.OperationalError:
                    conn.close()
                    raise
                except BaseException:
                    if not conn.closed:
                        conn.rollback()
                    raise
        except psycopg.OperationalError as err:
            raise StoreUnavailable(f"registry: {err}") from None

    def _rows(self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def migrate(self) -> None:
        """Create or update the tables (safe to run from several gateways at once)."""
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations (version integer PRIMARY KEY, "
                         "applied_at timestamptz NOT NULL DEFAULT now())")
            done = {v for (v,) in conn.execute(f"SELECT version FROM {SCHEMA}.schema_migrations")}
            for version, sql in _MIGRATIONS:
                if version not in done:
                    conn.execute(sql)
                    conn.execute(f"INSERT INTO {SCHEMA}.schema_migrations (version) VALUES (%s)", (version,))

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless PostgreSQL answers."""
        self._rows("SELECT 1")

    # -- tenants ----------------------------------------------------------------------------------

    def create_tenant(self, tenant: str, name: str, privacy: dict[str, Any], retention: dict[str, Any]) -> None:
        """Add a tenant; :class:`Conflict` if the id is taken."""
        try:
            self._rows(f"INSERT INTO {SCHEMA}.tenants (id, name, privacy, retention) VALUES (%s, %s, %s, %s)",
                       (tenant, name, Jsonb(privacy), Jsonb(retention)))
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"tenant {tenant!r} exists") from None

    def tenants(self, only: str | None = None) -> list[dict[str, Any]]:
        """Every tenant, or the one named ``only``, as dicts."""
        rows = self._rows(f"SELECT id, name, privacy, retention, created_at FROM {SCHEMA}.tenants "
                          "WHERE %(only)s::text IS NULL OR id = %(only)s ORDER BY id", {"only": only})
        return [dict(zip(("id", "name", "privacy", "retention", "created_at"), r, strict=True)) for r in rows]

    def tenant(self, tenant: str) -> dict[str, Any]:
        """One tenant; :class:`NotFound` if absent."""
        found = self.tenants(only=tenant)
        if not found:
            raise NotFound(f"tenant {tenant!r} not found")
        return found[0]

    def update_tenant(self, tenant: str, changes: dict[str, Any]) -> None:
        """Set ``name``, ``privacy`` and/or ``retention``."""
        for key in ("name", "privacy", "retention"):
            if key in changes:
                value = changes[key] if key == "name" else Jsonb(changes[key])
                self._rows(f"UPDATE {SCHEMA}.tenants SET {key} = %s WHERE id = %s", (value, tenant))

    # -- stores -----------------------------------------------------------------------------------

    def create_store(self, tenant: str, store: str, name: str, timezone: str, actor: str) -> None:
        """Add a store with an empty version-1 config; :class:`Conflict` if any tenant has that id."""
        try:
            with self._connection() as conn, conn.transaction():
                conn.execute(f"INSERT INTO {SCHEMA}.stores (id, tenant, name, timezone) VALUES (%s, %s, %s, %s)",
                             (store, tenant, name, timezone))
                conn.execute(f"INSERT INTO {SCHEMA}.store_configs (store, version, document, created_by) "
                             "VALUES (%s, 1, %s, %s)", (store, Jsonb({"cameras": [], "alert_rules": [], "funnel": []}),
                                                        actor))
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"store id {store!r} is taken") from None

    def stores(self, tenant: str, only: frozenset[str] | None = None) -> list[StoreRecord]:
        """The tenant's stores (limited to ``only`` when given)."""
        rows = self._rows(f"SELECT {_STORE_COLS} FROM {SCHEMA}.stores s WHERE s.tenant = %(t)s "
                          "AND (%(only)s::text[] IS NULL OR s.id = ANY(%(only)s)) ORDER BY s.id",
                          {"t": tenant, "only": None if only is None else sorted(only)})
        return [StoreRecord(*r) for r in rows]

    def store(self, tenant: str, store: str) -> StoreRecord:
        """One store of the tenant; :class:`NotFound` if absent or another tenant's."""
        rows = self._rows(f"SELECT {_STORE_COLS} FROM {SCHEMA}.stores s WHERE s.tenant = %s AND s.id = %s",
                          (tenant, store))
        if not rows:
            raise NotFound(f"store {store!r} not found")
        return StoreRecord(*rows[0])

    def store_tenant(self, store: str) -> str | None:
        """Which tenant owns a store id (the live hub maps NATS subjects with it)."""
        rows = self._rows(f"SELECT tenant FROM {SCHEMA}.stores WHERE id = %s", (store,))
        return str(rows[0][0]) if rows else None

    def update_store(self, tenant: str, store: str, changes: dict[str, Any]) -> None:
        """Set ``name`` and/or ``timezone``."""
        for key in ("name", "timezone"):
            if changes.get(key) is not None:
                self._rows(f"UPDATE {SCHEMA}.stores SET {key} = %s WHERE tenant = %s AND id = %s",
                           (changes[key], tenant, store))

    def delete_store(self, tenant: str, store: str) -> None:
        """Remove a store, its configs, keys and snapshots (stored events follow the retention policy)."""
        if not self._rows(f"DELETE FROM {SCHEMA}.stores WHERE tenant = %s AND id = %s RETURNING id", (tenant, store)):
            raise NotFound(f"store {store!r} not found")

    # -- config versions --------------------------------------------------------------------------

    def config(self, tenant: str, store: str, version: int | None = None) -> tuple[int, dict[str, Any], datetime, str]:
        """``(version, document, created_at, created_by)``, the latest unless ``version`` is given."""
        rows = self._rows(
            f"SELECT c.version, c.document, c.created_at, c.created_by FROM {SCHEMA}.store_configs c "
            f"JOIN {SCHEMA}.stores s ON s.id = c.store WHERE s.tenant = %(t)s AND c.store = %(s)s "
            "AND (%(v)s::int IS NULL OR c.version = %(v)s) ORDER BY c.version DESC LIMIT 1",
            {"t": tenant, "s": store, "v": version},
        )
        if not rows:
            raise NotFound(f"store {store!r}" + (f" has no config version {version}" if version else " not found"))
        v, doc, at, by = rows[0]
        return int(v), doc, at, by

    def config_versions(self, tenant: str, store: str, limit: int = 100) -> list[tuple[int, datetime, str]]:
        """Newest first: ``(version, created_at, created_by)``."""
        self.store(tenant, store)
        rows = self._rows(f"SELECT version, created_at, created_by FROM {SCHEMA}.store_configs WHERE store = %s "
                          "ORDER BY version DESC LIMIT %s", (store, limit))
        return [(int(v), at, by) for v, at, by in rows]

    def update_config(
        self, tenant: str, store: str, change: Callable[[dict[str, Any]], dict[str, Any]], actor: str,
        expected_version: int | None = None,
    ) -> int:
        """Apply ``change`` to the latest document and store the result as the next version.

        The store's row is locked for the transaction, so concurrent changes serialize and none is lost.

        Args:
            tenant: Owner.
            store: Store id.
            change: Old document -> new (validated) document; may raise to refuse the change.
            actor: Who changed it (token subject), recorded with the version.
            expected_version: ``If-Match``: refuse with :class:`PreconditionFailed` if not current.

        Returns:
            The new version (the same one when ``change`` left the document as it was).

        """
        with self._connection() as conn, conn.transaction():
            locked = conn.execute(f"SELECT id FROM {SCHEMA}.stores WHERE tenant = %s AND id = %s FOR UPDATE",
                                  (tenant, store)).fetchone()
            if locked is None:
                raise NotFound(f"store {store!r} not found")
            row = conn.execute(f"SELECT version, document FROM {SCHEMA}.store_configs WHERE store = %s "
                               "ORDER BY version DESC LIMIT 1", (store,)).fetchone()
            version, doc = (int(row[0]), row[1]) if row else (0, {"cameras": [], "alert_rules": [], "funnel": []})
            if expected_version is not None and expected_version != version:
                raise PreconditionFailed(f"config of store {store!r} is at version {version}, not {expected_version}")
            new = change(json.loads(json.dumps(doc)))
            if new == doc:
                return version
            conn.execute(f"INSERT INTO {SCHEMA}.store_configs (store, version, document, created_by) "
                         "VALUES (%s, %s, %s, %s)", (store, version + 1, Jsonb(new), actor))
            return version + 1

    # -- model manifests --------------------------------------------------------------------------

    def model_manifest(self, tenant: str, store: str) -> tuple[int, dict[str, Any], datetime, str]:
        """``(revision, manifest, created_at, created_by)`` of the latest; :class:`NotFound` if none was set."""
        rows = self._rows(
            f"SELECT m.revision, m.manifest, m.created_at, m.created_by FROM {SCHEMA}.store_models m "
            f"JOIN {SCHEMA}.stores s ON s.id = m.store WHERE s.tenant = %s AND m.store = %s "
            "ORDER BY m.revision DESC LIMIT 1", (tenant, store))
        if not rows:
            raise NotFound(f"store {store!r} has no model manifest")
        revision, manifest, at, by = rows[0]
        return int(revision), manifest, at, by

    def put_model_manifest(self, tenant: str, store: str, manifest: dict[str, Any], actor: str,
                           expected_revision: int | None = None) -> int:
        """Store ``manifest`` as the next revision (the same one when it equals the latest).

        The store's row is locked for the transaction, so concurrent changes serialize.

        Raises:
            NotFound: No such store in the tenant.
            PreconditionFailed: ``expected_revision`` (``If-Match``) is not the latest (0: none yet).

        """
        with self._connection() as conn, conn.transaction():
            if conn.execute(f"SELECT id FROM {SCHEMA}.stores WHERE tenant = %s AND id = %s FOR UPDATE",
                            (tenant, store)).fetchone() is None:
                raise NotFound(f"store {store!r} not found")
            row = conn.execute(f"SELECT revision, manifest FROM {SCHEMA}.store_models WHERE store = %s "
                               "ORDER BY revision DESC LIMIT 1", (store,)).fetchone()
            revision, latest = (int(row[0]), row[1]) if row else (0, None)
            if expected_revision is not None and expected_revision != revision:
                raise PreconditionFailed(f"model manifest of store {store!r} is at revision {revision}, "
                                         f"not {expected_revision}")
            if manifest == latest:
                return revision
            conn.execute(f"INSERT INTO {SCHEMA}.store_models (store, revision, manifest, created_by) "
                         "VALUES (%s, %s, %s, %s)", (store, revision + 1, Jsonb(manifest), actor))
            return revision + 1

    # -- API keys ---------------------------------------------------------------------------------

    def create_api_key(self, tenant: str, store: str, key_id: str, name: str, key_hash: str) -> ApiKeyRecord:
        """Store a new key's hash."""
        self.store(tenant, store)
        self._rows(f"INSERT INTO {SCHEMA}.api_keys (id, store, name, hash) VALUES (%s, %s, %s, %s)",
                   (key_id, store, name, key_hash))
        return self.api_key(key_id)  # type: ignore[return-value]

    def api_key(self, key_id: str) -> ApiKeyRecord | None:
        """A key by id, with its store's tenant (None if unknown)."""
        rows = self._rows(f"SELECT k.id, s.tenant, k.store, k.name, k.hash, k.created_at, k.revoked_at "
                          f"FROM {SCHEMA}.api_keys k JOIN {SCHEMA}.stores s ON s.id = k.store WHERE k.id = %s",
                          (key_id,))
        return ApiKeyRecord(*rows[0]) if rows else None

    def api_keys(self, tenant: str, store: str) -> list[ApiKeyRecord]:
        """The keys of one store, newest first."""
        rows = self._rows(f"SELECT k.id, s.tenant, k.store, k.name, k.hash, k.created_at, k.revoked_at "
                          f"FROM {SCHEMA}.api_keys k JOIN {SCHEMA}.stores s ON s.id = k.store "
                          "WHERE s.tenant = %s AND k.store = %s ORDER BY k.created_at DESC", (tenant, store))
        return [ApiKeyRecord(*r) for r in rows]

    def revoke_api_key(self, tenant: str, store: str, key_id: str) -> None:
        """Revoke a key now (idempotent); :class:`NotFound` if it is not this store's."""
        rows = self._rows(
            f"UPDATE {SCHEMA}.api_keys k SET revoked_at = coalesce(k.revoked_at, now()) FROM {SCHEMA}.stores s "
            "WHERE s.id = k.store AND s.tenant = %s AND k.store = %s AND k.id = %s RETURNING k.id",
            (tenant, store, key_id),
        )
        if not rows:
            raise NotFound(f"API key {key_id!r} not found")

    # -- snapshots and ingest batches --------------------------------------------------------------

    def put_snapshot(self, tenant: str, store: str, camera: str, image: bytes, size: tuple[int, int],
                     privacy: str, people: int) -> None:
        """Keep the latest privacy-filtered snapshot of a camera."""
        self.store(tenant, store)
        self._rows(
            f"INSERT INTO {SCHEMA}.snapshots (store, camera, image, width, height, privacy, people_blurred) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (store, camera) DO UPDATE SET image = EXCLUDED.image, "
            "width = EXCLUDED.width, height = EXCLUDED.height, privacy = EXCLUDED.privacy, "
            "people_blurred = EXCLUDED.people_blurred, updated_at = now()",
            (store, camera, image, size[0], size[1], privacy, people),
        )

    def snapshot(self, tenant: str, store: str, camera: str) -> SnapshotRecord | None:
        """The latest snapshot of a camera, if any."""
        rows = self._rows(f"SELECT p.image, p.width, p.height, p.privacy, p.people_blurred, p.updated_at "
                          f"FROM {SCHEMA}.snapshots p JOIN {SCHEMA}.stores s ON s.id = p.store "
                          "WHERE s.tenant = %s AND p.store = %s AND p.camera = %s", (tenant, store, camera))
        return SnapshotRecord(bytes(rows[0][0]), *rows[0][1:]) if rows else None

    def ingested_batch(self, store: str, batch_id: str) -> tuple[int, int, dict[str, int]] | None:
        """``(events, new_events, sinks)`` of a batch accepted before, or None."""
        rows = self._rows(f"SELECT events, new_events, sinks FROM {SCHEMA}.ingest_batches "
                          "WHERE store = %s AND batch_id = %s", (store, batch_id))
        return (int(rows[0][0]), int(rows[0][1]), dict(rows[0][2])) if rows else None

    def record_batch(self, store: str, batch_id: str, events: int, new_events: int, sinks: dict[str, int]) -> None:
        """Remember an accepted batch (after every sink committed it)."""
        self._rows(f"INSERT INTO {SCHEMA}.ingest_batches (store, batch_id, events, new_events, sinks) "
                   "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                   (store, batch_id, events, new_events, Jsonb(sinks)))

    def forget_batches(self, older_than_days: int) -> int:
        """Drop batch records past the edge's replay horizon; returns how many."""
        rows = self._rows(f"DELETE FROM {SCHEMA}.ingest_batches WHERE received_at < now() - make_interval(days => %s) "
                          "RETURNING 1", (older_than_days,))
        return len(rows)

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.close()
