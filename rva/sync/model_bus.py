"""Detector models handed from the sync service to the inference replicas over JetStream (no shared disk).

The sync service downloads and verifies a store's model (:class:`~rva.sync.models.ModelUpdater`), and
:class:`AnnounceTarget` proves it loads and answers a blank frame, then announces it:
:func:`announce_model` puts the file into the JetStream object store ``RVA_MODELS`` as
``<store>/<version>`` (chunked by JetStream) and the manifest into the key-value bucket ``RVA_MODEL``
under key ``<store>``: the model in force, with 8 versions of history (``nats kv history RVA_MODEL <store>``).

Each inference replica running the in-process detector follows that key (:func:`watch_models`),
fetches a new version (:func:`fetch_model`: written atomically, size and SHA-256 checked against
the manifest), swaps it in (:class:`~rva.sync.targets.EmbeddedTarget`; a model that fails leaves the
old one serving) and reports what happened under ``<store>.status.<replica>`` in the same bucket
(:func:`report_model`, read back with :func:`model_status`).

The sync service wires it like this (``apply`` blocks, so it runs in a worker thread; the
announcement runs on the service's event loop, where its NATS connection lives)::

    loop = asyncio.get_running_loop()
    target = AnnounceTarget(config.detector, announcer(js, config.store, loop))
    updater = ModelUpdater(sync_cfg.state_dir, target, timeout_s=sync_cfg.request_timeout_s)
    update = await asyncio.to_thread(updater.apply, manifest)

where ``announcer`` makes the callable::

    def announce(manifest: ModelManifest, path: Path) -> None:
        asyncio.run_coroutine_threadsafe(announce_model(js, store, manifest, path), loop).result(timeout_s)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rva.assets import sha256_of
from rva.bus.kv import get_entry, key_value, watch_entries
from rva.config import OnnxDetectorConfig
from rva.sync.models import (
    MODEL_FILE,
    DownloadError,
    ModelManifest,
    ModelRejected,
    ModelTarget,
    ModelUpdate,
    ModelUpdateError,
    fsync_dir,
)
from rva.sync.targets import open_probed

log = logging.getLogger(__name__)

MODEL_BUCKET = "RVA_MODEL"
MODEL_OBJECTS = "RVA_MODELS"
#: A replica's name in a status key: one KV token.
REPLICA_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """What one inference replica did with the latest model it was offered (``<store>.status.<replica>``).

    Attributes:
        replica: The replica's name.
        version: The version offered.
        previous_version: What it ran before (None: the model it started with).
        rolled_back: The new model failed and the previous one serves again.
        error: Empty when ``version`` serves; else why not.
        at: Unix time of the outcome.

    """

    replica: str
    version: str
    previous_version: str | None
    rolled_back: bool
    error: str
    at: float

    @property
    def ok(self) -> bool:
        """True when ``version`` serves on this replica."""
        return not self.error


def object_name(store: str, version: str) -> str:
    """``<store>/<version>``: the model file's name in ``RVA_MODELS``."""
    return f"{store}/{version}"


def replica_name(raw: str | None = None) -> str:
    """``raw`` (default: the host name, a pod's name) as one KV token: other characters become ``-``."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", raw or socket.gethostname())[:128]
    return name or "replica"


def _nats_digest(sha256_hex: str) -> str:
    """The object store's form of a SHA-256 (``SHA-256=<urlsafe base64>``)."""
    return "SHA-256=" + base64.urlsafe_b64encode(bytes.fromhex(sha256_hex)).decode()


# --- buckets -------------------------------------------------------------------------------------


async def model_bucket(js: Any) -> Any:
    """The ``RVA_MODEL`` key-value bucket (created with 8 versions of history when missing)."""
    return await key_value(js, MODEL_BUCKET, history=8, description="RVA detector model in force, by store")


async def model_objects(js: Any) -> Any:
    """The ``RVA_MODELS`` object store (created when missing)."""
    from nats.js.api import ObjectStoreConfig
    from nats.js.errors import BucketNotFoundError, NotFoundError

    try:
        return await js.object_store(MODEL_OBJECTS)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_object_store(MODEL_OBJECTS, ObjectStoreConfig(
            description="RVA detector model files, <store>/<version>"))


# --- the sync service's side ---------------------------------------------------------------------


async def current_model(js: Any, store: str) -> tuple[ModelManifest, int] | None:
    """The manifest in force for ``store`` and its KV revision, or None."""
    entry = await get_entry(await model_bucket(js), store)
    if entry is None:
        return None
    return ModelManifest.model_validate_json(entry.value), int(entry.revision)


async def announce_model(js: Any, store: str, manifest: ModelManifest, path: Path, *, timeout_s: float = 300.0) -> int:
    """Put ``path`` into ``RVA_MODELS`` as ``<store>/<version>`` and ``manifest`` in force; return the KV revision.

    Idempotent: a version already in force is not sent again (its revision is returned), and a file
    already stored with the manifest's digest is not uploaded again. The previous version's file is
    kept (a replica may still be fetching it); older ones are deleted.

    Args:
        js: A JetStream context.
        store: Store id.
        manifest: The verified model's manifest.
        path: The verified file.
        timeout_s: Deadline of the upload.

    Raises:
        ModelUpdateError: ``manifest.version`` is in force with another digest, or ``path`` is not
            the file the manifest describes.

    """
    kv = await model_bucket(js)
    objects = await model_objects(js)
    current = await current_model(js, store)
    if current is not None and current[0].version == manifest.version:
        if current[0].sha256 == manifest.sha256:
            return current[1]
        raise ModelUpdateError(f"version {manifest.version} is in force for {store} with sha256 {current[0].sha256}, "
                               f"not {manifest.sha256}: a changed model needs a new version")
    name = object_name(store, manifest.version)
    if not await _stored(objects, name, manifest):
        with path.open("rb") as data:
            info = await asyncio.wait_for(objects.put(name, data), timeout_s)
        if (info.size, info.digest) != (manifest.size_bytes, _nats_digest(manifest.sha256)):
            await objects.delete(name)
            raise ModelUpdateError(f"{path} is {info.size} bytes with digest {info.digest}, the manifest says "
                                   f"{manifest.size_bytes} bytes, sha256 {manifest.sha256}")
    revision = int(await kv.put(store, manifest.model_dump_json().encode()))
    log.info("model %s announced for %s (KV revision %d), was %s", manifest.version, store, revision,
             current[0].version if current else None)
    keep = {name} | ({object_name(store, current[0].version)} if current else set())
    await _prune(objects, store, keep)
    return revision


async def _stored(objects: Any, name: str, manifest: ModelManifest) -> bool:
    """True when ``name`` is stored with the manifest's size and digest."""
    from nats.js.errors import ObjectNotFoundError

    try:
        info = await objects.get_info(name)
    except ObjectNotFoundError:
        return False
    return bool(info.size == manifest.size_bytes and info.digest == _nats_digest(manifest.sha256))


async def _prune(objects: Any, store: str, keep: set[str]) -> None:
    """Delete ``store``'s model files other than ``keep`` (best effort: a failure is logged, not raised)."""
    try:
        infos = await asyncio.wait_for(objects.list(ignore_deletes=True), 30)
        for info in infos:
            if info.name.startswith(f"{store}/") and info.name not in keep and not info.deleted:
                await objects.delete(info.name)
                log.info("deleted old model file %s/%s", MODEL_OBJECTS, info.name)
    except Exception as err:  # nats errors and timeouts: stale files cost disk, not correctness
        log.warning("could not prune old model files of %s: %r", store, err)


class AnnounceTarget(ModelTarget):
    """The sync service's target: prove the model like the inference replicas will, then announce it.

    The file is opened and run on a blank frame exactly as :class:`~rva.sync.targets.EmbeddedTarget`
    does (:func:`~rva.sync.targets.open_probed`); only a model that answers reaches ``announce``.

    Args:
        cfg: The detector config the inference replicas run with.
        announce: Puts the model in force (see the module: :func:`announcer`); raises on failure.

    """

    def __init__(self, cfg: OnnxDetectorConfig, announce: Callable[[ModelManifest, Path], None]) -> None:
        self.cfg = cfg
        self.announce = announce

    def activate(self, model: Path, manifest: ModelManifest) -> str:
        """Probe ``model``, then announce it (see the class)."""
        open_probed(self.cfg, model, manifest).close()
        try:
            self.announce(manifest, model)
        except Exception as err:  # NATS down, timeouts: the next poll tries again
            raise ModelRejected(f"{manifest.version} works but was not announced: {err!r}", rolled_back=False) from err
        return str(model)


def announcer(js: Any, store: str, loop: asyncio.AbstractEventLoop, *,
              timeout_s: float = 300.0) -> Callable[[ModelManifest, Path], None]:
    """A blocking ``announce(manifest, path)`` for :class:`AnnounceTarget` that runs :func:`announce_model` on ``loop``.

    Call the result from a worker thread, never from ``loop`` itself (it would wait on itself).
    """

    def announce(manifest: ModelManifest, path: Path) -> None:
        future = asyncio.run_coroutine_threadsafe(announce_model(js, store, manifest, path, timeout_s=timeout_s), loop)
        try:
            future.result(timeout_s + 30)
        finally:
            future.cancel()  # a no-op when done; stops a late upload otherwise

    return announce


# --- the inference replicas' side ----------------------------------------------------------------


async def watch_models(js: Any, store: str) -> AsyncIterator[ModelManifest]:
    """Yield the manifest in force now (if any) and each one put later."""
    async for entry in watch_entries(await model_bucket(js), store):
        try:
            yield ModelManifest.model_validate_json(entry.value)
        except ValidationError as err:
            log.error("%s/%s revision %s is not a model manifest: %s", MODEL_BUCKET, store, entry.revision, err)


async def fetch_model(js: Any, store: str, manifest: ModelManifest, dest_dir: Path, *,
                      timeout_s: float = 300.0) -> Path:
    """The verified file of ``manifest`` at ``dest_dir/<version>/model.onnx``, fetched from ``RVA_MODELS``.

    A file already there with the manifest's size and digest is reused. Otherwise the object is
    written to a ``.part`` file of its own (replicas may share ``dest_dir``), checked, fsynced and
    renamed: a failed or tampered fetch leaves nothing behind.

    Raises:
        DownloadError: The object is missing or unreadable, or its size or SHA-256 is not the manifest's.

    """
    import nats.errors
    from nats.js.errors import ObjectNotFoundError

    folder = Path(dest_dir) / manifest.version
    final = folder / MODEL_FILE
    if final.is_file() and final.stat().st_size == manifest.size_bytes \
            and await asyncio.to_thread(sha256_of, final) == manifest.sha256:
        return final
    name = f"{MODEL_OBJECTS}/{object_name(store, manifest.version)}"
    partial = folder / f"{MODEL_FILE}.{uuid.uuid4().hex[:12]}.part"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        objects = await model_objects(js)
        with partial.open("wb") as out:
            await asyncio.wait_for(objects.get(object_name(store, manifest.version), writeinto=out), timeout_s)
            out.flush()
            os.fsync(out.fileno())
        size = partial.stat().st_size
        if size != manifest.size_bytes:
            raise DownloadError(f"{name}: {size} bytes, the manifest says {manifest.size_bytes}")
        digest = await asyncio.to_thread(sha256_of, partial)
        if digest != manifest.sha256:
            raise DownloadError(f"{name}: sha256 {digest}, the manifest says {manifest.sha256}")
    except (DownloadError, nats.errors.Error, TimeoutError, OSError) as err:
        partial.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty
        if isinstance(err, DownloadError):
            raise
        if isinstance(err, ObjectNotFoundError):
            raise DownloadError(f"{name}: no such object") from err
        raise DownloadError(f"{name}: {type(err).__name__}: {err}") from err
    os.replace(partial, final)
    fsync_dir(folder)
    return final


async def report_model(js: Any, store: str, replica: str, update: ModelUpdate, *, at: float | None = None) -> int:
    """Record ``replica``'s outcome under ``<store>.status.<replica>``; return the KV revision.

    Raises:
        ValueError: ``replica`` is not one KV token (see :func:`replica_name`).

    """
    if not REPLICA_PATTERN.match(replica):
        raise ValueError(f"replica name: expected {REPLICA_PATTERN.pattern}, got {replica!r}")
    kv = await model_bucket(js)
    body = {"version": update.version, "previous_version": update.previous_version,
            "rolled_back": update.rolled_back, "error": update.error, "at": time.time() if at is None else at}
    return int(await kv.put(f"{store}.status.{replica}", json.dumps(body).encode()))


async def model_status(js: Any, store: str, *, timeout_s: float = 5.0) -> dict[str, ModelStatus]:
    """Each replica's last reported outcome for ``store``, by replica name."""
    kv = await model_bucket(js)
    prefix = f"{store}.status."
    watcher = await kv.watch(f"{prefix}*")
    found: dict[str, ModelStatus] = {}
    try:
        while (entry := await watcher.updates(timeout_s)) is not None:
            if not entry.value:
                continue
            try:
                body = json.loads(entry.value)
                replica = entry.key.removeprefix(prefix)
                found[replica] = ModelStatus(replica, str(body["version"]), body["previous_version"],
                                             bool(body["rolled_back"]), str(body["error"]), float(body["at"]))
            except (ValueError, KeyError, TypeError) as err:
                log.error("%s/%s is not a model status: %r", MODEL_BUCKET, entry.key, err)
    finally:
        await watcher.stop()
    return found
