"""The ``rva`` command line: ``rva demo``, ``rva run``, ``rva check``, ``rva fetch``, ``rva outbox``."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rva.config import RVAConfig, load_config
from rva.errors import RVAError

app = typer.Typer(
    name="rva",
    help="Retail Vision Analytics: people counts, dwell, queues and heatmaps from store cameras.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True, soft_wrap=True)
out_console = Console()

DEMO_CONFIG = "vtest.yaml"


def _fail(err: Exception, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {err}")
    return typer.Exit(code)


def _frame_totals(runner: Any) -> dict[str, int | None]:
    return {cid: src.total_frames for cid, src in runner.open_sources().items()}


def _execute(config: RVAConfig, out: Path, max_frames: int | None, quiet: bool) -> dict[str, Any]:
    from rva.pipeline.runner import StandaloneRunner

    runner = StandaloneRunner(config, out, max_frames=max_frames)
    totals = _frame_totals(runner)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console, disable=quiet,
    )
    tasks = {}
    with progress:
        for cid, total in totals.items():
            limit = min(x for x in (total, max_frames) if x is not None) if (total or max_frames) else None
            tasks[cid] = progress.add_task(cid, total=limit, rate="")
        elapsed = {"t0": None}

        def on_frame(camera: str, done: int) -> None:
            import time

            now = time.perf_counter()
            if elapsed["t0"] is None:
                elapsed["t0"] = now  # type: ignore[assignment]
            span = now - elapsed["t0"]  # type: ignore[operator]
            rate = f"{done / span:5.1f} fps" if span > 0 and done > 1 else ""
            progress.update(tasks[camera], completed=done, rate=rate)

        runner.progress = on_frame
        return runner.run()


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    head = Table(title="RVA run", show_header=False, title_justify="left")
    head.add_row("frames", str(summary["frames"]))
    head.add_row("video seconds", f"{summary['seconds']:.1f}")
    head.add_row("processing rate", f"{summary['fps']:.1f} fps")
    head.add_row("confirmed tracks", str(summary["tracks"]))
    head.add_row("events", str(summary["events"]))
    out_console.print(head)
    if summary["zones"]:
        t = Table(title="Zones", title_justify="left")
        for col in ("zone", "visits", "peak", "mean occupancy", "mean dwell (s)", "now"):
            t.add_column(col, justify="right" if col != "zone" else "left")
        for name, z in summary["zones"].items():
            t.add_row(name, str(z["visits"]), str(z["peak"]), _num(z["mean_occupancy"], 2),
                      _num(z["mean_dwell_s"]), str(z.get("occupancy", "")))
        out_console.print(t)
    if summary["lines"]:
        t = Table(title="Lines", title_justify="left")
        for col in ("line", "in", "out"):
            t.add_column(col, justify="right" if col != "line" else "left")
        for name, ln in summary["lines"].items():
            t.add_row(name, str(ln["in"]), str(ln["out"]))
        out_console.print(t)
    if summary["queues"]:
        t = Table(title="Queues", title_justify="left")
        for col in ("queue", "joined", "served", "abandoned", "waiting", "mean wait (s)"):
            t.add_column(col, justify="right" if col != "queue" else "left")
        for name, q in summary["queues"].items():
            t.add_row(name, str(q["joined"]), str(q["served"]), str(q["abandoned"]), str(q["waiting"]),
                      _num(q["mean_wait_s"]))
        out_console.print(t)
    if summary.get("alerts"):
        t = Table(title="Alerts (events.jsonl, type alert)", title_justify="left")
        for col in ("rule", "kind", "severity", "fired", "first at (s)"):
            t.add_column(col, justify="right" if col in ("fired", "first at (s)") else "left")
        for name, a in summary["alerts"].items():
            t.add_row(name, a["kind"], a["severity"], str(a["fired"]), _num(a["first_ts"]))
        out_console.print(t)
    files = ", ".join(sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.endswith(".part")))
    out_console.print(f"[bold green]wrote[/] {out}/: {files}")


def demo_config() -> RVAConfig:
    """The bundled config for the vtest.avi demo."""
    with resources.as_file(resources.files("rva.configs") / DEMO_CONFIG) as path:
        return load_config(path)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("out/demo"),
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many frames.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Run the whole pipeline on the vtest.avi sample (fetched with the model on first run)."""
    try:
        summary = _execute(demo_config(), out, max_frames, quiet)
    except RVAError as err:
        raise _fail(err) from None
    _print_summary(summary, out)


@app.command()
def run(
    config: Annotated[Path, typer.Option(help="YAML config file.", exists=False)],
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("out/run"),
    max_frames: Annotated[int | None, typer.Option(help="Stop each camera after this many frames.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Run the pipeline on the cameras of a config file (Ctrl-C stops a live run cleanly)."""
    try:
        cfg = load_config(config)
        summary = _execute(cfg, out, max_frames, quiet)
    except RVAError as err:
        raise _fail(err) from None
    _print_summary(summary, out)


@app.command()
def check(config: Annotated[Path, typer.Argument(help="YAML config file.")]) -> None:
    """Validate a config file and print what it sets up."""
    try:
        cfg = load_config(config)
    except RVAError as err:
        raise _fail(err) from None
    for cam in cfg.cameras:
        out_console.print(
            f"[green]ok[/] camera {cam.id}: {cam.source.type} source, {len(cam.zones)} zones, "
            f"{len(cam.lines)} lines, {len(cam.queues)} queues"
        )


@app.command()
def fetch() -> None:
    """Download the default model and the sample video into the cache."""
    from rva.assets import sample_video
    from rva.config import OnnxDetectorConfig
    from rva.detect.models import resolve_model

    try:
        out_console.print(f"sample video: {sample_video()}")
        out_console.print(f"default model: {resolve_model(OnnxDetectorConfig())}")
    except RVAError as err:
        raise _fail(err) from None


@app.command()
def outbox(
    path: Annotated[Path, typer.Argument(help="The sync service's outbox (services.sync.outbox_path).")],
    requeue_rejected: Annotated[bool, typer.Option(
        help="Upload the events the cloud refused again (stop the sync service first: it keeps the outbox's "
        "size in memory).")] = False,
) -> None:
    """Show an edge outbox: events waiting, batches in flight, what the full policy dropped, what was refused."""
    from rva.sync.outbox import Outbox

    if not path.is_file():
        raise _fail(FileNotFoundError(f"no outbox at {path} (services.sync.outbox_path of the edge's config)"))
    box = Outbox(path, max_bytes=1 << 62)  # the bound is the sync service's business, not this reader's
    try:
        if requeue_rejected:
            out_console.print(f"requeued {box.requeue_rejected()} rejected event(s); the sync service uploads them")
        head = Table(title=f"Outbox {path}", show_header=False, title_justify="left")
        for key, value in (("events waiting", box.events), ("bytes (bound's measure)", box.bytes),
                           ("file bytes", box.file_bytes()), ("uploaded (all time)", box.counter("uploaded")),
                           ("re-sent, de-duplicated by the cloud", box.counter("resent")),
                           ("dropped by the full policy", box.dropped_total()), ("rejected by the cloud",
                                                                                 len(box.rejected()))):
            head.add_row(key, f"{value:,}")
        out_console.print(head)
        if batches := box.batches():
            t = Table(title="Batches in flight", title_justify="left")
            for col in ("batch id", "events", "attempts", "last error"):
                t.add_column(col)
            for batch_id, n, attempts, error in batches:
                t.add_row(batch_id, str(n), str(attempts), error or "")
            out_console.print(t)
        if drops := box.drops():
            t = Table(title="Dropped (outbox full)", title_justify="left")
            for col in ("camera", "kind", "reason", "events", "first ts", "last ts"):
                t.add_column(col)
            for d in drops:
                t.add_row(d.camera, d.kind, d.reason, str(d.events), f"{d.first_ts:.3f}", f"{d.last_ts:.3f}")
            out_console.print(t)
        if rejected := box.rejected():
            t = Table(title="Rejected by the cloud (kept; --requeue-rejected uploads them again)", title_justify="left")
            for col in ("event id", "kind", "error"):
                t.add_column(col)
            for event_id, kind, error in rejected[:50]:
                t.add_row(event_id, kind, error)
            out_console.print(t)
    finally:
        box.close()


@app.command()
def schema() -> None:
    """Print the config file's JSON schema (every field with its description and bounds)."""
    json.dump(RVAConfig.model_json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    app()
