"""The edge's outbox: events not yet acknowledged by the cloud, in SQLite (WAL), cut into stable batches.

Exactly-once delivery rests on three rules:

1. An event is in the outbox (committed, fsynced) before its JetStream message is acknowledged, so a
   crash between the two re-delivers it and ``INSERT OR IGNORE`` on its event id keeps one copy.
2. A batch is cut once and recorded (``batches`` table, events tagged with its id) before it is sent,
   so a batch re-sent after a crash or a lost response carries the same id and the same events; the
   cloud answers a known batch id with 200 and writes nothing (and de-duplicates on event ids anyway).
3. Events leave the outbox only when the cloud acknowledged their batch (:meth:`Outbox.ack`).

The outbox is bounded (``max_bytes`` of event payloads plus a per-row overhead). When an event does
not fit, the policy decides and every decision is counted per camera and kind in the ``drops`` table:
``drop_oldest`` deletes the oldest events not yet cut into a batch (a batch in flight is never
changed), ``reject_new`` refuses the new events (the caller leaves them in JetStream and retries).
Events the cloud refuses as invalid (HTTP 422) move to ``rejected``, kept for an operator, never lost
silently. Nothing here reads the wall clock for ordering or ids: edge/cloud clock skew cannot matter.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

#: Bytes counted per stored event on top of its payload (row, index entries): keeps the bound honest.
ROW_OVERHEAD = 96

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    camera   TEXT NOT NULL,
    kind     TEXT NOT NULL,
    ts       REAL NOT NULL,
    body     BLOB NOT NULL,
    batch    TEXT
);
CREATE INDEX IF NOT EXISTS events_batch ON events(batch, seq);
CREATE TABLE IF NOT EXISTS batches (
    batch_id  TEXT PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    events    INTEGER NOT NULL,
    attempts  INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS drops (
    camera   TEXT NOT NULL,
    kind     TEXT NOT NULL,
    reason   TEXT NOT NULL,
    events   INTEGER NOT NULL,
    first_ts REAL NOT NULL,
    last_ts  REAL NOT NULL,
    PRIMARY KEY (camera, kind, reason)
);
CREATE TABLE IF NOT EXISTS rejected (
    event_id TEXT PRIMARY KEY,
    camera   TEXT NOT NULL,
    kind     TEXT NOT NULL,
    ts       REAL NOT NULL,
    body     BLOB NOT NULL,
    error    TEXT NOT NULL,
    at_unix  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

FullPolicy = Literal["drop_oldest", "reject_new"]


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One event as the outbox keeps it: its id, routing fields and the serialized ``rva.events.v1.Event``."""

    event_id: str
    camera: str
    kind: str
    ts: float
    body: bytes

    @property
    def cost(self) -> int:
        """Bytes it counts against the bound."""
        return len(self.body) + ROW_OVERHEAD


@dataclass(frozen=True, slots=True)
class Batch:
    """A cut batch: stable id and content until acknowledged."""

    batch_id: str
    first_seq: int
    last_seq: int
    events: list[OutboxEvent]
    attempts: int


@dataclass(frozen=True, slots=True)
class AddResult:
    """What :meth:`Outbox.add` did with the events it was given."""

    added: int
    duplicates: int
    refused: int
    dropped: int
    refused_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Drop:
    """Events dropped (or refused) by the full policy, per camera, kind and reason."""

    camera: str
    kind: str
    reason: str
    events: int
    first_ts: float
    last_ts: float


class Outbox:
    """The SQLite outbox of one edge box (thread-safe; one writer connection).

    Args:
        path: The database file (created with its directory).
        max_bytes: Bound on stored events (payload + :data:`ROW_OVERHEAD` each).
        full_policy: ``drop_oldest`` or ``reject_new`` (see the module docs).

    """

    def __init__(self, path: str | Path, max_bytes: int = 1 << 30, full_policy: FullPolicy = "drop_oldest") -> None:
        if full_policy not in ("drop_oldest", "reject_new"):
            raise ValueError(f"full_policy: expected drop_oldest or reject_new, got {full_policy!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self.full_policy = full_policy
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an acked JetStream message must survive power loss
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM events").fetchone()
        self._events, self._bytes = int(row[0]), int(row[1]) + ROW_OVERHEAD * int(row[0])

    # -- writing -----------------------------------------------------------------------------------

    def add(self, events: Sequence[OutboxEvent]) -> AddResult:
        """Store events in one transaction (duplicates by event id are ignored), applying the full policy.

        Returns:
            Counts: ``added``, ``duplicates`` (already in the outbox), ``refused`` (``reject_new``: not
            stored, the caller must keep them upstream) and ``dropped`` (``drop_oldest``: older events
            deleted to make room, or new ones when no unbatched event is left to delete).

        """
        added = duplicates = dropped = 0
        refused: list[str] = []
        with self._lock, self._tx() as db:
            for ev in events:
                if db.execute("SELECT 1 FROM events WHERE event_id = ?", (ev.event_id,)).fetchone():
                    duplicates += 1
                    continue
                if self._bytes + ev.cost > self.max_bytes:
                    if self.full_policy == "reject_new":
                        refused.append(ev.event_id)  # stays in JetStream, offered again later: not a loss
                        continue
                    freed = self._drop_oldest(db, self._bytes + ev.cost - self.max_bytes)
                    dropped += freed
                    if self._bytes + ev.cost > self.max_bytes:  # everything left is in a batch in flight
                        dropped += 1
                        self._count_drop(db, [ev], "outbox_full_dropped_new")
                        continue
                db.execute(
                    "INSERT INTO events(event_id, camera, kind, ts, body) VALUES (?, ?, ?, ?, ?)",
                    (ev.event_id, ev.camera, ev.kind, ev.ts, ev.body),
                )
                self._events += 1
                self._bytes += ev.cost
                added += 1
        return AddResult(added, duplicates, len(refused), dropped, tuple(refused))

    def _drop_oldest(self, db: sqlite3.Connection, need: int) -> int:
        """Delete the oldest unbatched events until ``need`` bytes are free; return how many."""
        victims: list[OutboxEvent] = []
        freed = 0
        for row in db.execute(
            "SELECT event_id, camera, kind, ts, body, seq FROM events WHERE batch IS NULL ORDER BY seq"
        ):
            ev = OutboxEvent(row[0], row[1], row[2], row[3], row[4])
            victims.append(ev)
            freed += ev.cost
            if freed >= need:
                break
        if not victims:
            return 0
        db.executemany("DELETE FROM events WHERE event_id = ?", [(v.event_id,) for v in victims])
        self._count_drop(db, victims, "outbox_full_dropped_oldest")
        self._events -= len(victims)
        self._bytes -= freed
        return len(victims)

    @staticmethod
    def _count_drop(db: sqlite3.Connection, events: Iterable[OutboxEvent], reason: str) -> None:
        for ev in events:
            db.execute(
                "INSERT INTO drops(camera, kind, reason, events, first_ts, last_ts) VALUES (?, ?, ?, 1, ?, ?) "
                "ON CONFLICT(camera, kind, reason) DO UPDATE SET events = events + 1, "
                "first_ts = MIN(first_ts, excluded.first_ts), last_ts = MAX(last_ts, excluded.last_ts)",
                (ev.camera, ev.kind, reason, ev.ts, ev.ts),
            )

    # -- batches -----------------------------------------------------------------------------------

    def pending_batch(self) -> Batch | None:
        """The oldest batch cut but not yet acknowledged (re-sent as it is), or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT batch_id, first_seq, last_seq, attempts FROM batches ORDER BY first_seq LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            return self._load(row[0], row[1], row[2], row[3])

    def unbatched(self) -> int:
        """Events waiting to be cut into a batch."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events WHERE batch IS NULL").fetchone()[0])

    def cut_batch(self, max_events: int, store: str) -> Batch | None:
        """Cut the oldest unbatched events (at most ``max_events``) into a new batch; None if there are none.

        The batch id (``<store>-<uuid4 hex>``) and the events it holds are stored before anything is sent.
        """
        with self._lock, self._tx() as db:
            seqs = [
                r[0]
                for r in db.execute(
                    "SELECT seq FROM events WHERE batch IS NULL ORDER BY seq LIMIT ?", (int(max_events),)
                )
            ]
            if not seqs:
                return None
            batch_id = f"{store}-{uuid.uuid4().hex}"
            db.execute(
                "UPDATE events SET batch = ? WHERE batch IS NULL AND seq BETWEEN ? AND ?", (batch_id, seqs[0], seqs[-1])
            )
            db.execute(
                "INSERT INTO batches(batch_id, first_seq, last_seq, events) VALUES (?, ?, ?, ?)",
                (batch_id, seqs[0], seqs[-1], len(seqs)),
            )
            return self._load(batch_id, seqs[0], seqs[-1], 0, db)

    def _load(self, batch_id: str, first: int, last: int, attempts: int, db: sqlite3.Connection | None = None) -> Batch:
        rows = (db or self._db).execute(
            "SELECT event_id, camera, kind, ts, body FROM events WHERE batch = ? ORDER BY seq", (batch_id,)
        ).fetchall()
        return Batch(batch_id, first, last, [OutboxEvent(*r) for r in rows], attempts)

    def attempt(self, batch_id: str, error: str | None) -> None:
        """Record one failed send of a batch (attempts and the last error, for status and logs)."""
        with self._lock:
            self._db.execute(
                "UPDATE batches SET attempts = attempts + 1, last_error = ? WHERE batch_id = ?", (error, batch_id)
            )

    def ack(self, batch_id: str, duplicate: bool = False) -> int:
        """The cloud committed the batch: delete it and its events; return how many events left.

        ``duplicate``: the cloud already had this batch (an earlier send's answer was lost); counted as
        ``resent``.
        """
        with self._lock, self._tx() as db:
            row = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM events WHERE batch = ?", (batch_id,)
            ).fetchone()
            n, size = int(row[0]), int(row[1])
            db.execute("DELETE FROM events WHERE batch = ?", (batch_id,))
            db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
            self._bump(db, "uploaded", n)
            self._bump(db, "batches_acked", 1)
            if duplicate:
                self._bump(db, "resent", n)
            self._events -= n
            self._bytes -= size + ROW_OVERHEAD * n
            return n

    def reject(self, batch_id: str, bad: dict[int, str]) -> int:
        """The cloud refused events of a batch as invalid (``{index in batch: reason}``).

        The refused events move to ``rejected`` (kept, counted); the rest are released to be cut into
        a new batch (nothing of a refused batch was written in the cloud). Returns how many moved.
        """
        with self._lock, self._tx() as db:
            rows = db.execute(
                "SELECT event_id, camera, kind, ts, body FROM events WHERE batch = ? ORDER BY seq", (batch_id,)
            ).fetchall()
            moved = 0
            now = time.time()
            for i, (event_id, camera, kind, ts, body) in enumerate(rows):
                if i not in bad:
                    continue
                db.execute(
                    "INSERT OR REPLACE INTO rejected(event_id, camera, kind, ts, body, error, at_unix) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (event_id, camera, kind, ts, body, bad[i], now),
                )
                db.execute("DELETE FROM events WHERE event_id = ?", (event_id,))
                self._events -= 1
                self._bytes -= len(body) + ROW_OVERHEAD
                moved += 1
            db.execute("UPDATE events SET batch = NULL WHERE batch = ?", (batch_id,))
            db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
            self._bump(db, "rejected", moved)
            return moved

    def requeue_rejected(self) -> int:
        """Put every rejected event back to be uploaded (after the cause was fixed in the cloud); return how many."""
        with self._lock, self._tx() as db:
            rows = db.execute("SELECT event_id, camera, kind, ts, body FROM rejected ORDER BY at_unix").fetchall()
            n = 0
            for event_id, camera, kind, ts, body in rows:
                cur = db.execute(
                    "INSERT OR IGNORE INTO events(event_id, camera, kind, ts, body) VALUES (?, ?, ?, ?, ?)",
                    (event_id, camera, kind, ts, body),
                )
                if cur.rowcount:
                    n += 1
                    self._events += 1
                    self._bytes += len(body) + ROW_OVERHEAD
            db.execute("DELETE FROM rejected")
            return n

    def batches(self) -> list[tuple[str, int, int, str | None]]:
        """``(batch_id, events, attempts, last_error)`` of every batch cut and not yet acknowledged."""
        with self._lock:
            return [tuple(r) for r in self._db.execute(
                "SELECT batch_id, events, attempts, last_error FROM batches ORDER BY first_seq")]

    def release(self, batch_id: str) -> None:
        """Un-cut a batch (its events are cut again, e.g. smaller after a 413)."""
        with self._lock, self._tx() as db:
            db.execute("UPDATE events SET batch = NULL WHERE batch = ?", (batch_id,))
            db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))

    # -- reading -----------------------------------------------------------------------------------

    @property
    def events(self) -> int:
        """Events stored (not yet acknowledged by the cloud)."""
        return self._events

    @property
    def bytes(self) -> int:
        """Bytes counted against :attr:`max_bytes`."""
        return self._bytes

    def oldest_ts(self) -> float | None:
        """Time (``ts``) of the oldest event still waiting, or None when the outbox is empty."""
        with self._lock:
            row = self._db.execute("SELECT ts FROM events ORDER BY seq LIMIT 1").fetchone()
        return float(row[0]) if row else None

    def counter(self, name: str) -> int:
        """A persistent counter: ``uploaded``, ``batches_acked``, ``resent``, ``rejected``."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
            return int(row[0]) if row else 0

    def drops(self) -> list[Drop]:
        """Every drop/refusal so far, per camera, kind and reason."""
        with self._lock:
            rows = self._db.execute(
                "SELECT camera, kind, reason, events, first_ts, last_ts FROM drops ORDER BY camera, kind, reason"
            ).fetchall()
        return [Drop(*r) for r in rows]

    def dropped_total(self) -> int:
        """Events lost to the full policy."""
        return sum(d.events for d in self.drops())

    def rejected(self) -> list[tuple[str, str, str]]:
        """``(event_id, kind, error)`` of every event the cloud refused as invalid."""
        with self._lock:
            return [tuple(r) for r in self._db.execute("SELECT event_id, kind, error FROM rejected ORDER BY at_unix")]

    def file_bytes(self) -> int:
        """Size of the database files on disk (main + WAL)."""
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    def close(self) -> None:
        """Checkpoint the WAL and close."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._db.close()

    # -- helpers -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; on error ``ROLLBACK`` and recount what the memory counters hold."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM events").fetchone()
            self._events, self._bytes = int(row[0]), int(row[1]) + ROW_OVERHEAD * int(row[0])
            raise
        self._db.execute("COMMIT")

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str, n: int) -> None:
        db.execute(
            "INSERT INTO counters(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
            (name, n, n),
        )

