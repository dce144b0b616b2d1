"""Detector model updates pulled from the cloud: download, verify, swap in atomically, roll back on failure.

The cloud publishes one :class:`ModelManifest` per store (``GET /v1/stores/{store}/model``, ETag
``"v<revision>"``). Each poll, the sync service hands the manifest it read to :meth:`ModelUpdater.apply`:

1. the file is streamed to ``<state_dir>/models/<version>/model.onnx.part``, its size and SHA-256
   checked, fsynced and renamed to ``model.onnx`` (a failed or tampered download never reaches the
   detector, and the active model stays as it was);
2. a :class:`ModelTarget` puts it in service and proves it with one inference on a blank frame:
   :class:`~rva.sync.targets.TritonTarget` (a new version directory + ``load_model`` on a Triton started
   with ``--model-control-mode=explicit``) or :class:`~rva.sync.targets.EmbeddedTarget` (an in-process onnxruntime
   detector handed to a callback). A model that does not load or answer is taken out again and the
   previous one serves (``rolled_back``);
3. ``<state_dir>/models/active.json`` records what serves (written atomically), so a restart knows it;
   ``models/active.onnx`` links to the active file. The active and the previous downloads are kept.

:meth:`ModelUpdater.apply` blocks (download, load): call it from a worker thread in an asyncio service.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rva.assets import sha256_of
from rva.errors import RVAError
from rva.sync.tls import client_context

log = logging.getLogger(__name__)

#: A model version names a directory on the edge: no separators, no leading dot.
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MODEL_FILE = "model.onnx"


class ModelManifest(BaseModel):
    """Which detector model a store should run: what the cloud publishes and the edge applies."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Model manifest")

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{1,128}$", description="Model name on the edge (Triton's model name, rva_detector)."
    )
    version: str = Field(
        pattern=VERSION_PATTERN, description="Release of the model; the edge keeps each in a directory of this name."
    )
    url: str = Field(
        max_length=2048, pattern=r"^https?://[!-~]+$", description="Where the edge downloads the file (http/https)."
    )
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the file, lowercase hex.")
    size_bytes: int = Field(gt=0, le=1 << 34, description="Exact size of the file in bytes (at most 16 GiB).")
    format: Literal["onnx"] = Field("onnx", description="File format: an Ultralytics-format YOLO ONNX export.")

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("version")
    @classmethod
    def _not_reserved(cls, version: str) -> str:
        if version.startswith("active."):
            raise ValueError("versions named active.* are reserved (the edge's record of the active model)")
        return version

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"expected an http(s) URL with a host, got {url[:80]!r}")
        return url


class ModelUpdateError(RVAError):
    """A model update could not be applied; the message says why."""


class DownloadError(ModelUpdateError):
    """The file could not be downloaded, or its size or SHA-256 is not the manifest's."""


class ModelRejected(ModelUpdateError):
    """The target could not serve the new model.

    Attributes:
        rolled_back: The previous model serves again (False: the target was not touched, or the
            previous model could not be brought back; the message says which).

    """

    def __init__(self, message: str, *, rolled_back: bool) -> None:
        super().__init__(message)
        self.rolled_back = rolled_back


@dataclass(frozen=True, slots=True)
class ModelUpdate:
    """What :meth:`ModelUpdater.apply` did.

    Attributes:
        version: The manifest's version (the one applied or tried).
        previous_version: The version active before the call (None: the one the edge was installed with).
        rolled_back: The new model reached the target, failed, and the previous one serves again.
        error: Empty on success; else why the update was refused or rolled back.
        changed: False when ``version`` was already active (nothing was done).

    """

    version: str
    previous_version: str | None
    rolled_back: bool = False
    error: str = ""
    changed: bool = True

    @property
    def ok(self) -> bool:
        """True when ``version`` is in service."""
        return not self.error


@dataclass(frozen=True, slots=True)
class ActiveModel:
    """The model in service, as ``active.json`` records it.

    Attributes:
        name: Model name of the manifest.
        version: Manifest version.
        sha256: Digest of ``path``.
        path: The verified file under ``<state_dir>/models/<version>/``.
        serving: What the target calls it (Triton: the repository's version number; embedded: the path).
        applied_at: Unix time it went into service.

    """

    name: str
    version: str
    sha256: str
    path: Path
    serving: str
    applied_at: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "path": str(self.path)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActiveModel:
        """Parse :meth:`to_dict`'s output."""
        return cls(str(data["name"]), str(data["version"]), str(data["sha256"]), Path(data["path"]),
                   str(data["serving"]), float(data["applied_at"]))


# --- files ---------------------------------------------------------------------------------------


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``path.part``, fsync it, rename it over ``path``, fsync the directory."""
    partial = path.with_name(path.name + ".part")
    with partial.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    fsync_dir(path.parent)


def copy_synced(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` and fsync it (the directory entry is the caller's)."""
    with src.open("rb") as inp, dst.open("wb") as out:
        shutil.copyfileobj(inp, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())


def _redacted(url: str) -> str:
    """The URL without its query (pre-signed URLs carry credentials there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


# --- targets -------------------------------------------------------------------------------------


class ModelTarget(ABC):
    """Where a verified model goes into service.

    Attributes:
        model_name: The only manifest ``name`` accepted (None: any).

    """

    model_name: str | None = None

    @abstractmethod
    def activate(self, model: Path, manifest: ModelManifest) -> str:
        """Put ``model`` in service and prove it answers; on failure bring the previous model back.

        Returns:
            What the target calls the new model (recorded as :attr:`ActiveModel.serving`).

        Raises:
            ModelRejected: The model did not load or answer (``rolled_back`` says whether the
                previous model serves again).

        """


# --- the updater ---------------------------------------------------------------------------------


class ModelUpdater:
    """Applies model manifests to one target, keeping the downloads and the record under ``state_dir``.

    Args:
        state_dir: The sync service's state directory (``SyncServiceConfig.state_dir``).
        target: Where models go into service.
        http_client: Client for the downloads (its timeouts and TLS settings apply); default one made
            from ``timeout_s`` and ``ca_file``, closed by :meth:`close`.
        timeout_s: Connect and per-read deadline of a download (``SyncServiceConfig.request_timeout_s``).
        ca_file: CA bundle for https downloads (None: the system's).

    """

    def __init__(
        self,
        state_dir: Path | str,
        target: ModelTarget,
        *,
        http_client: httpx.Client | None = None,
        timeout_s: float = 15.0,
        ca_file: str | None = None,
    ) -> None:
        self.dir = Path(state_dir) / "models"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.target = target
        self._owns_client = http_client is None
        self._client = http_client or httpx.Client(timeout=timeout_s, verify=client_context(ca_file),
                                                   follow_redirects=True)
        self._lock = threading.Lock()

    @property
    def record_path(self) -> Path:
        """``<state_dir>/models/active.json``."""
        return self.dir / "active.json"

    def active(self) -> ActiveModel | None:
        """The model in service per ``active.json`` (None: none was applied yet)."""
        try:
            return ActiveModel.from_dict(json.loads(self.record_path.read_text())["active"])
        except FileNotFoundError:
            return None

    def apply(self, manifest: ModelManifest | Mapping[str, Any]) -> ModelUpdate:
        """Download, verify and activate ``manifest``'s model unless it is already active.

        Never raises for a bad manifest, download or model: the returned :class:`ModelUpdate` says
        what happened, and the active model is unchanged unless ``ok``.
        """
        if not isinstance(manifest, ModelManifest):
            raw = manifest
            try:
                manifest = ModelManifest.model_validate(raw)
            except ValidationError as err:
                problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in err.errors())
                return ModelUpdate(str(raw.get("version", "")), self._active_version(), error=f"manifest: {problems}")
        with self._lock:
            current = self.active()
            previous = current.version if current else None
            if current is not None and current.version == manifest.version:
                if current.sha256 == manifest.sha256:
                    return ModelUpdate(manifest.version, previous, changed=False)
                return ModelUpdate(manifest.version, previous, error=f"version {manifest.version} is active with "
                                   "another sha256: a changed model needs a new version")
            if self.target.model_name is not None and manifest.name != self.target.model_name:
                return ModelUpdate(manifest.version, previous, error=f"manifest names model {manifest.name!r}, this "
                                   f"edge serves {self.target.model_name!r}")
            try:
                path = self._download(manifest)
            except DownloadError as err:
                log.warning("model %s not downloaded: %s", manifest.version, err)
                return ModelUpdate(manifest.version, previous, error=str(err))
            try:
                serving = self.target.activate(path, manifest)
            except ModelRejected as err:
                log.warning("model %s rejected (rolled back: %s): %s", manifest.version, err.rolled_back, err)
                shutil.rmtree(path.parent, ignore_errors=True)  # a file that does not work is not kept
                return ModelUpdate(manifest.version, previous, rolled_back=err.rolled_back, error=str(err))
            self._record(ActiveModel(manifest.name, manifest.version, manifest.sha256, path, serving, time.time()),
                         current)
            self._prune({manifest.version, previous})
            log.info("model %s in service (%s), was %s", manifest.version, serving, previous)
            return ModelUpdate(manifest.version, previous)

    def close(self) -> None:
        """Close the HTTP client if this updater made it."""
        if self._owns_client:
            self._client.close()

    def _active_version(self) -> str | None:
        active = self.active()
        return active.version if active else None

    def _download(self, manifest: ModelManifest) -> Path:
        """The verified file of ``manifest`` in ``models/<version>/`` (reused when already there and intact)."""
        folder = self.dir / manifest.version
        final = folder / MODEL_FILE
        if final.is_file() and final.stat().st_size == manifest.size_bytes and sha256_of(final) == manifest.sha256:
            return final
        partial = folder / f"{MODEL_FILE}.part"
        url = _redacted(manifest.url)
        digest, size = hashlib.sha256(), 0
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # identity: the bytes as published, so Content-Length, size and digest all describe the file
            with self._client.stream("GET", manifest.url, headers={"Accept-Encoding": "identity"}) as response:
                if response.status_code != 200:
                    raise DownloadError(f"GET {url}: HTTP {response.status_code}")
                declared = response.headers.get("content-length", "")
                encoded = response.headers.get("content-encoding", "identity") != "identity"
                if declared.isdigit() and not encoded and int(declared) != manifest.size_bytes:
                    raise DownloadError(f"GET {url}: {declared} bytes offered, the manifest says {manifest.size_bytes}")
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        size += len(chunk)
                        if size > manifest.size_bytes:
                            raise DownloadError(f"GET {url}: more than the manifest's {manifest.size_bytes} bytes")
                        digest.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            if size != manifest.size_bytes:
                raise DownloadError(f"GET {url}: {size} bytes, the manifest says {manifest.size_bytes}")
            if digest.hexdigest() != manifest.sha256:
                raise DownloadError(f"GET {url}: sha256 {digest.hexdigest()}, the manifest says {manifest.sha256}")
        except (DownloadError, httpx.HTTPError, OSError) as err:
            partial.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: an earlier verified file stays
            if isinstance(err, DownloadError):
                raise
            raise DownloadError(f"GET {url}: {type(err).__name__}: {err}") from err
        os.replace(partial, final)
        fsync_dir(folder)
        return final

    def _record(self, active: ActiveModel, previous: ActiveModel | None) -> None:
        record = {"active": active.to_dict(), "previous": previous.to_dict() if previous else None}
        _write_atomic(self.record_path, json.dumps(record, indent=2).encode())
        link = self.dir / "active.onnx"
        staged = self.dir / "active.onnx.part"
        staged.unlink(missing_ok=True)
        staged.symlink_to(active.path.relative_to(self.dir))
        os.replace(staged, link)
        fsync_dir(self.dir)

    def _prune(self, keep: set[str | None]) -> None:
        """Delete downloads other than the active and the previous one."""
        for entry in self.dir.iterdir():
            if entry.is_dir() and entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)
