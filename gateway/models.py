"""The REST resources' models. Cameras, zones, lines, queues and alert rules are the config's own models.

A store's configuration is one :class:`StoreDocument` (cameras with their zones, lines and queues;
alert rules; the dashboard funnel), stored as numbered versions: every change makes a new version
that edge devices pull.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rva.config import AlertRuleConfig, CameraConfig
from rva.sync.models import ModelManifest

ID = r"^[A-Za-z0-9_-]{1,64}$"
#: Store ids that would clash with a NATS subject namespace (``rva.dlq.<reason>``).
RESERVED_STORE_IDS = frozenset({"dlq"})


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrivacyPolicy(_In):
    """What leaves the edge: camera snapshots and heatmap backgrounds."""

    snapshots: Literal["blur_people", "blur_all", "off"] = Field(
        "blur_people",
        description="blur_people: people found by the gateway's detector (and any boxes the edge sent) are "
        "blurred; blur_all: the whole image is blurred; off: stored as sent.",
    )
    blur_sigma_px: float = Field(12.0, ge=2, le=100, description="Gaussian blur strength.")


class RetentionPolicy(_In):
    """How long a tenant's data is kept and served."""

    raw_days: int = Field(90, ge=1, le=3650, description="Events, visits, heatmap snapshots.")
    rollup_days: int = Field(400, ge=1, le=3650, description="30 s rollups and hourly counts.")

    @model_validator(mode="after")
    def _order(self) -> RetentionPolicy:
        if self.rollup_days < self.raw_days:
            raise ValueError("rollup_days must be >= raw_days")
        return self


class TenantIn(_In):
    """A new tenant (a retailer)."""

    id: str = Field(pattern=ID, description="Tenant id (letters, digits, _ -).")
    name: str = Field(min_length=1, max_length=200, description="Display name.")
    privacy: PrivacyPolicy = Field(default_factory=PrivacyPolicy)
    retention: RetentionPolicy = Field(default_factory=RetentionPolicy)


class TenantPatch(_In):
    """Changes to a tenant; absent fields stay."""

    name: str | None = Field(None, min_length=1, max_length=200)
    privacy: PrivacyPolicy | None = None
    retention: RetentionPolicy | None = None


class TenantOut(BaseModel):
    """A tenant."""

    id: str
    name: str
    privacy: PrivacyPolicy
    retention: RetentionPolicy
    created_at: datetime


def _check_tz(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"expected an IANA time zone like 'Europe/Paris', got {tz!r}") from None
    return tz


class StoreIn(_In):
    """A new store. Store ids are unique across tenants: NATS subjects carry only the store id."""

    id: str = Field(pattern=ID, description="Store id, as in the edge config's `store`.")
    name: str = Field(min_length=1, max_length=200)
    timezone: str = Field("UTC", max_length=64, description="IANA zone whose hours footfall is counted in.")

    _tz = field_validator("timezone")(lambda cls, v: _check_tz(v))

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v in RESERVED_STORE_IDS:
            raise ValueError(f"store id {v!r} is reserved")
        return v


class StorePatch(_In):
    """Changes to a store; absent fields stay."""

    name: str | None = Field(None, min_length=1, max_length=200)
    timezone: str | None = Field(None, max_length=64)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return None if v is None else _check_tz(v)


class StoreOut(BaseModel):
    """A store and the version of its configuration in force."""

    id: str
    tenant: str
    name: str
    timezone: str
    config_version: int
    created_at: datetime


class StoreDocument(_In):
    """A store's whole configuration: what edge devices pull."""

    cameras: list[CameraConfig] = Field(default_factory=list, max_length=256)
    alert_rules: list[AlertRuleConfig] = Field(default_factory=list, max_length=1000)
    funnel: list[str] = Field(
        default_factory=list, max_length=20, description="Zone names in visiting order, for the dashboard funnel."
    )

    @model_validator(mode="after")
    def _consistent(self) -> StoreDocument:
        for kind, names in (("cameras", [c.id for c in self.cameras]),
                            ("alert_rules", [r.name for r in self.alert_rules])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{kind}: duplicate {'ids' if kind == 'cameras' else 'names'} {dupes}")
        zones = {z.name for c in self.cameras for z in c.zones}
        missing = [z for z in self.funnel if z not in zones]
        if missing:
            raise ValueError(f"funnel: zones {missing} are not configured on any camera")
        cameras = {c.id for c in self.cameras}
        for rule in self.alert_rules:
            if rule.camera is not None and rule.camera not in cameras:
                raise ValueError(f"alert rule {rule.name!r}: camera {rule.camera!r} is not configured")
        return self


class ConfigVersion(BaseModel):
    """One version of a store's configuration."""

    store: str
    version: int = Field(description="Starts at 1 and grows by one per change; edges compare it.")
    document: StoreDocument
    created_at: datetime
    created_by: str


class ConfigVersionInfo(BaseModel):
    """A version without its document."""

    version: int
    created_at: datetime
    created_by: str


class ModelManifestRevision(BaseModel):
    """One revision of a store's model manifest (what ``GET /v1/stores/{store}/model`` answers)."""

    store: str
    revision: int = Field(description="Starts at 1 and grows by one per change; the ETag is \"v<revision>\".")
    manifest: ModelManifest
    created_at: datetime
    created_by: str


class ApiKeyIn(_In):
    """A new API key for an edge device of one store."""

    name: str = Field(min_length=1, max_length=100, description="What the key is for (e.g. the box's name).")


class ApiKeyOut(BaseModel):
    """An API key (never its secret)."""

    id: str
    store: str
    name: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    """A new API key: ``token`` is shown this once and stored only as a salted scrypt hash."""

    token: str


class IngestEvent(BaseModel):
    """One event of a JSON ingest batch: ``Event.to_dict()`` plus optional ``event_id`` and ``schema_version``."""

    model_config = ConfigDict(extra="allow")

    type: str
    camera: str
    ts: float


class IngestBatch(_In):
    """A JSON ingest batch (the protobuf form is ``rva.sync.v1.EventBatch``)."""

    batch_id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$", description="Idempotency key of the batch.")
    store: str = Field(pattern=ID)
    first_sequence: int = Field(0, ge=0)
    last_sequence: int = Field(0, ge=0)
    events: list[IngestEvent] = Field(default_factory=list)


class IngestResult(BaseModel):
    """What the gateway did with a batch."""

    batch_id: str
    store: str
    events: int = Field(description="Events in the batch.")
    new_events: int = Field(description="Events no store had before (0 when the whole batch is a replay).")
    duplicate_batch: bool = Field(description="This batch id was accepted before; nothing was written again.")
    sinks: dict[str, int] = Field(description="New events per sink (postgres, redis, clickhouse, jetstream).")


class Alert(BaseModel):
    """An alert raised by a rule."""

    rule: str
    kind: str
    severity: str
    store: str
    camera: str | None
    target: str | None
    value: float | None
    threshold: float | None
    ts: float
    message: str


def dump(model: BaseModel) -> dict[str, Any]:
    """JSON-ready dict of a model (for JSONB columns)."""
    out: dict[str, Any] = model.model_dump(mode="json")
    return out
