"""Shared route pieces: path parameters, version tags, the operator check."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Path

from gateway.auth import Principal
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.models import ID
from gateway.settings import GatewaySettings

StoreId = Annotated[str, Path(pattern=ID, description="Store id.")]
CameraId = Annotated[str, Path(pattern=ID, description="Camera id.")]
TenantId = Annotated[str, Path(pattern=ID, description="Tenant id.")]
Name = Annotated[str, Path(min_length=1, max_length=64, description="Zone, line, queue or rule name.")]

_TAG = re.compile(r'^(?:W/)?"?v?(\d{1,9})"?$')


def version_tag(version: int) -> str:
    """The ``ETag`` of a config version: ``"v<version>"``."""
    return f'"v{version}"'


def parse_version(header: str | None) -> int | None:
    """The version in an ``If-Match``/``If-None-Match`` header (``"v3"``, ``v3`` or ``3``), or None.

    Raises:
        BadRequest: The header is present but names no version.

    """
    if header is None or header.strip() in ("", "*"):
        return None
    m = _TAG.match(header.strip())
    if not m:
        raise BadRequest(f'expected a version tag like "v3", got {header[:40]!r}')
    return int(m.group(1))


def is_operator(p: Principal, settings: GatewaySettings) -> bool:
    """Whether the caller administers the whole platform."""
    return p.kind == "user" and p.role == "admin" and p.tenant == settings.operator_tenant


def own_tenant(p: Principal, tenant: str, settings: GatewaySettings) -> None:
    """404 unless the tenant is the caller's own (or the caller is the operator)."""
    if tenant != p.tenant and not is_operator(p, settings):
        raise NotFound(f"tenant {tenant!r} not found")


def require_operator(p: Principal, settings: GatewaySettings) -> None:
    """403 unless the caller is the operator."""
    if not is_operator(p, settings):
        raise Forbidden(f"only admins of the operator tenant {settings.operator_tenant!r} may do this")
