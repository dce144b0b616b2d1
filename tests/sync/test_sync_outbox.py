"""The SQLite outbox: stable batches across restarts, exact accounting of the full policy, rejects kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rva.core.events import Event, EventType
from rva.sync.outbox import ROW_OVERHEAD, Outbox, OutboxEvent


def _events(n: int, start: int = 0, camera: str = "cam1", body_size: int = 100) -> list[OutboxEvent]:
    out = []
    for i in range(start, start + n):
        ev = Event(EventType.LINE_CROSS if i % 2 else EventType.ZONE_ENTER, camera, 1_700_000_000.0 + i, i,
                   zone="z" if i % 2 == 0 else None, line="door" if i % 2 else None)
        body = ev.to_proto("s1").SerializeToString().ljust(body_size, b"\0")[:max(body_size, 1)]
        out.append(OutboxEvent(ev.event_id("s1"), camera, str(ev.type), ev.ts, body))
    return out


def test_batches_are_cut_once_and_survive_a_restart(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    assert box.add(_events(250)).added == 250
    assert box.oldest_ts() == 1_700_000_000.0
    assert box.add(_events(10)).duplicates == 10  # same event ids: one copy
    first = box.cut_batch(100, "s1")
    assert first is not None and len(first.events) == 100
    box.attempt(first.batch_id, "HTTP 503")
    box.close()

    box = Outbox(tmp_path / "o.sqlite3")
    assert box.events == 250
    again = box.pending_batch()
    assert again is not None
    assert again.batch_id == first.batch_id and again.attempts == 1
    assert [e.event_id for e in again.events] == [e.event_id for e in first.events]
    assert box.ack(first.batch_id) == 100
    second = box.cut_batch(100, "s1")
    third = box.cut_batch(100, "s1")
    assert second and third and len(third.events) == 50
    assert box.pending_batch().batch_id == second.batch_id  # type: ignore[union-attr]
    for b in (second, third):
        box.ack(b.batch_id)
    assert box.events == 0 and box.bytes == 0 and box.counter("uploaded") == 250
    assert box.oldest_ts() is None
    assert box.cut_batch(100, "s1") is None


def test_drop_oldest_counts_exactly_and_never_touches_a_batch_in_flight(tmp_path: Path) -> None:
    cost = 100 + ROW_OVERHEAD
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=cost * 50, full_policy="drop_oldest")
    box.add(_events(30))
    in_flight = box.cut_batch(20, "s1")
    assert in_flight is not None
    result = box.add(_events(40, start=30, camera="cam2"))
    assert result.added == 40 and result.dropped == 20  # 70 offered, 50 fit: the 10 unbatched cam1 + 10 cam2
    assert box.events == 50 and box.bytes == cost * 50
    drops: dict[tuple[str, str], int] = {}
    for d in box.drops():
        drops[d.camera, d.reason] = drops.get((d.camera, d.reason), 0) + d.events
    assert drops == {("cam1", "outbox_full_dropped_oldest"): 10, ("cam2", "outbox_full_dropped_oldest"): 10}
    assert {d.kind for d in box.drops()} == {"zone_enter", "line_cross"}
    assert box.dropped_total() == 20
    still = box.pending_batch()
    assert still is not None and [e.event_id for e in still.events] == [e.event_id for e in in_flight.events]
    # Everything left is in flight: a new event is the one dropped.
    box.cut_batch(1000, "s1")
    result = box.add(_events(1, start=500))
    assert result.dropped == 1 and result.added == 0
    assert box.dropped_total() == 21


def test_reject_new_refuses_without_losing(tmp_path: Path) -> None:
    cost = 100 + ROW_OVERHEAD
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=cost * 10, full_policy="reject_new")
    offered = _events(15)
    result = box.add(offered)
    assert result.added == 10 and result.refused == 5 and result.dropped == 0
    assert result.refused_ids == tuple(e.event_id for e in offered[10:])
    assert box.drops() == []
    batch = box.cut_batch(100, "s1")
    assert batch is not None
    box.ack(batch.batch_id)
    assert box.add(offered[10:]).added == 5  # offered again once there is room


def test_rejected_events_are_kept_and_the_rest_recut(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.add(_events(10))
    batch = box.cut_batch(10, "s1")
    assert batch is not None
    assert box.reject(batch.batch_id, {2: "ts: out of range", 7: "bad kind"}) == 2
    assert box.pending_batch() is None and box.events == 8
    assert {r[0] for r in box.rejected()} == {batch.events[2].event_id, batch.events[7].event_id}
    again = box.cut_batch(100, "s1")
    assert again is not None and again.batch_id != batch.batch_id and len(again.events) == 8


def test_invalid_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="full_policy"):
        Outbox(tmp_path / "o.sqlite3", full_policy="drop_newest")  # type: ignore[arg-type]


_WRITER = """
import sys
from rva.sync.outbox import Outbox, OutboxEvent
box = Outbox(sys.argv[1])
i = 0
while True:
    box.add([OutboxEvent(f"e{i}-{j}", "cam", "zone_enter", float(i), b"x" * 200) for j in range(50)])
    print(i, flush=True)
    i += 1
"""


def test_sigkill_mid_write_keeps_every_committed_event(tmp_path: Path) -> None:
    """A writer killed at a random point: every add() that returned is there, none half-applied."""
    path = tmp_path / "o.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    done = -1
    for line in proc.stdout:
        done = int(line)
        if done >= 40:
            break
    proc.kill()
    proc.wait()
    box = Outbox(path)
    assert box.events % 50 == 0  # transactions are whole
    assert box.events >= (done + 1) * 50


def test_the_cli_shows_an_outbox_and_requeues_rejected(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rva.cli import app

    box = Outbox(tmp_path / "o.sqlite3", max_bytes=(100 + ROW_OVERHEAD) * 5)
    box.add(_events(8))  # 3 dropped
    batch = box.cut_batch(2, "s1")
    assert batch is not None
    box.reject(batch.batch_id, {0: "ts: out of range"})
    box.close()
    result = CliRunner().invoke(app, ["outbox", str(tmp_path / "o.sqlite3")])
    assert result.exit_code == 0, result.output
    for text in ("events waiting", "Dropped (outbox full)", "ts: out of range"):
        assert text in result.output
    dropped = next(ln for ln in result.output.splitlines() if "dropped by the full policy" in ln)
    assert dropped.split()[-2] == "3", dropped
    result = CliRunner().invoke(app, ["outbox", str(tmp_path / "o.sqlite3"), "--requeue-rejected"])
    assert "requeued 1 rejected event(s)" in result.output
    again = Outbox(tmp_path / "o.sqlite3")
    assert again.events == 5 and again.rejected() == []


def test_the_cli_names_a_missing_outbox(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rva.cli import app

    result = CliRunner().invoke(app, ["outbox", str(tmp_path / "nope.sqlite3")])
    assert result.exit_code == 2 and "services.sync.outbox_path" in result.output
