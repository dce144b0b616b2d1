"""Config hot reload: the cloud's versioned store document -> validated -> a NATS KV entry -> analytics.

The cloud keeps one document per store (``GET /v1/stores/{store}/config``, ``ETag: "v<n>"``): cameras
with their zones, lines, queues and heatmap settings, and alert rules. The sync service polls it with
``If-None-Match`` and, for a new version, merges it into the edge's own config (:func:`merge_document`:
sources, frame sizes, detector and services stay local; cameras the edge does not have are ignored),
validates the result with the config models, and only then puts the document into the JetStream
key-value bucket ``RVA_CONFIG`` under the store's id. A document that does not validate is refused
and the version in force stays (reported as a rolled-back update).

Analytics watches that key (:func:`watch_config`): it receives the version in force when it starts
and every later one as it is put, in any pod of the store, and swaps zones, lines and queues in place
(:meth:`rva.analytics.CameraAnalytics.reconfigure`) without restarting or losing its tracks. The KV
bucket keeps a few versions of history, so what was applied when is visible with ``nats kv history``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from rva.bus.kv import get_entry, key_value, watch_entries
from rva.config import RVAConfig, parse_config
from rva.errors import ConfigError

log = logging.getLogger(__name__)

CONFIG_BUCKET = "RVA_CONFIG"
#: What the cloud's store document may change on the edge, per camera.
CAMERA_KEYS = ("zones", "lines", "queues", "heatmap", "analysis_fps")


@dataclass(frozen=True, slots=True)
class ConfigUpdate:
    """One config update as applied (or refused)."""

    version: str
    previous_version: str
    rolled_back: bool = False
    error: str = ""
    ignored_cameras: tuple[str, ...] = ()


def merge_document(base: RVAConfig, document: dict[str, Any]) -> tuple[RVAConfig, list[str]]:
    """Apply a cloud store document to the edge's config; return the validated config and ignored cameras.

    Raises:
        ConfigError: The merged config is invalid (the message names the field).

    """
    if not isinstance(document, dict) or not isinstance(document.get("cameras"), list):
        raise ConfigError("the cloud's store document: expected an object with a 'cameras' list")
    raw = base.model_dump(mode="json")
    cloud = {c.get("id"): c for c in document.get("cameras", []) if isinstance(c, dict)}
    for camera in raw["cameras"]:
        remote = cloud.get(camera["id"])
        if remote is None:
            continue
        for key in CAMERA_KEYS:
            if key in remote:
                camera[key] = remote[key]
    ignored = sorted(set(cloud) - {c["id"] for c in raw["cameras"]})
    if "alert_rules" in document and "alerts" in raw:
        raw["alerts"]["rules"] = document["alert_rules"]
    return parse_config(raw, "the cloud's store document"), ignored


def version_of(etag: str | None) -> str:
    """``"v12"`` -> ``"v12"`` (quotes and weak markers stripped); empty when missing."""
    return (etag or "").removeprefix("W/").strip('"')


class ConfigPuller:
    """Polls the cloud for the store document and hands validated new versions to ``publish``.

    Args:
        base: The edge's own config (sources, detector, services).
        client: An ``httpx.AsyncClient`` with the cloud's base URL and the device key.
        store: Store id.

    """

    def __init__(self, base: RVAConfig, client: httpx.AsyncClient, store: str) -> None:
        self.base = base
        self.client = client
        self.store = store
        self.version = ""
        self.config: RVAConfig = base
        self.last_check_unix_s = 0.0
        self.last_error = ""

    async def poll(self) -> tuple[ConfigUpdate, dict[str, Any]] | None:
        """Ask the cloud once; return the update and the document when there is a new valid (or refused) one.

        Raises:
            httpx.HTTPError: The cloud is unreachable (the caller retries next interval).

        """
        headers = {"If-None-Match": f'"{self.version}"'} if self.version else {}
        response = await self.client.get(f"/v1/stores/{self.store}/config", headers=headers)
        self.last_check_unix_s = time.time()
        if response.status_code == 304:
            return None
        if response.status_code == 404:
            self.last_error = f"the cloud has no config for store {self.store!r} yet"
            return None
        if response.status_code != 200:
            self.last_error = f"config pull: HTTP {response.status_code}: {response.text[:200]}"
            log.warning("%s", self.last_error)
            return None
        version = version_of(response.headers.get("ETag"))
        body = response.json()
        document = body.get("document") if isinstance(body, dict) else None  # ConfigVersion: {version, document}
        if version and version == self.version:
            return None
        previous = self.version
        try:
            config, ignored = merge_document(self.base, document)  # type: ignore[arg-type]
        except ConfigError as err:
            self.last_error = f"config {version} refused: {err}"
            log.error("%s; %s stays in force", self.last_error, previous or "the local config")
            self.version = version  # do not re-download the same bad version every interval
            return ConfigUpdate(version, previous, rolled_back=True, error=str(err)), document
        if ignored:
            log.warning("config %s: cameras %s have no local source here; ignored", version, ignored)
        self.version, self.config, self.last_error = version, config, ""
        return ConfigUpdate(version, previous, ignored_cameras=tuple(ignored)), document


async def config_bucket(js: Any) -> Any:
    """The ``RVA_CONFIG`` key-value bucket (created with 8 versions of history when missing)."""
    return await key_value(js, CONFIG_BUCKET, history=8, description="RVA store documents in force, by store")


async def put_config(js: Any, store: str, version: str, document: dict[str, Any]) -> int:
    """Put a validated document in force for ``store``; return the KV revision."""
    kv = await config_bucket(js)
    value = json.dumps({"version": version, "document": document, "applied_unix_s": time.time()}).encode()
    return int(await kv.put(store, value))


async def current_config(js: Any, store: str) -> tuple[str, dict[str, Any]] | None:
    """The version and document in force for ``store``, or None."""
    entry = await get_entry(await config_bucket(js), store)
    if entry is None:
        return None
    body = json.loads(entry.value)
    return str(body["version"]), body["document"]


async def watch_config(js: Any, store: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Yield ``(version, document)`` for the one in force now (if any) and each one put later."""
    async for entry in watch_entries(await config_bucket(js), store):
        try:
            body = json.loads(entry.value)
            yield str(body["version"]), body["document"]
        except (ValueError, KeyError) as err:
            log.error("RVA_CONFIG/%s revision %s is not a store document: %r", store, entry.revision, err)
