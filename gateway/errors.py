"""The gateway's typed errors and how each becomes an HTTP response (one JSON shape for all of them).

Every error body is ``{"error": <code>, "detail": <message>}``; validation errors add
``"fields": [{"field": "cameras.0.zones.1.polygon", "message": ..., "type": ...}]``.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rva.errors import RVAError
from rva.stores.errors import StoreError, StoreRejected, StoreUnavailable

log = logging.getLogger(__name__)


class GatewayError(RVAError):
    """Base of the errors the gateway raises on purpose; ``status`` and ``code`` shape the response."""

    status = 500
    code = "internal"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class BadRequest(GatewayError):
    """The request cannot be read (bad encoding, missing header)."""

    status, code = 400, "bad_request"


class Unauthorized(GatewayError):
    """No valid credentials: missing, expired, forged, wrong audience, revoked."""

    status, code = 401, "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="rva"'})


class Forbidden(GatewayError):
    """Valid credentials that may not do this (a viewer writing, a device reading metrics)."""

    status, code = 403, "forbidden"


class NotFound(GatewayError):
    """Absent, or not visible to the caller: the two are never told apart (no existence leaks)."""

    status, code = 404, "not_found"


class Conflict(GatewayError):
    """The resource exists already."""

    status, code = 409, "conflict"


class PreconditionFailed(GatewayError):
    """``If-Match`` names a version that is no longer current."""

    status, code = 412, "precondition_failed"


class PayloadTooLarge(GatewayError):
    """The body is over the route's limit."""

    status, code = 413, "payload_too_large"


class UnsupportedMediaType(GatewayError):
    """The body's Content-Type or Content-Encoding is not one the route takes."""

    status, code = 415, "unsupported_media_type"


class Unprocessable(GatewayError):
    """The body is well-formed but invalid; ``fields`` name what is wrong."""

    status, code = 422, "validation"

    def __init__(self, detail: str, fields: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.fields = fields or []


class RateLimited(GatewayError):
    """Too many requests; ``Retry-After`` says when to come back."""

    status, code = 429, "rate_limited"


class Unavailable(GatewayError):
    """A backing store is down; retry later."""

    status, code = 503, "unavailable"


def field_errors(errors: list[Any], prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Pydantic/FastAPI error dicts as ``{"field": dotted.path, "message", "type"}``."""
    out = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path", "header")]
        out.append({"field": ".".join([*prefix, *loc]) or "(body)", "message": str(e.get("msg", "")),
                    "type": str(e.get("type", ""))})
    return out


def _body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, **extra}


def install_handlers(app: FastAPI) -> None:
    """Map every error the gateway can meet to its JSON response (never an HTML page or a traceback)."""

    @app.exception_handler(GatewayError)
    async def _gateway(_: Request, err: GatewayError) -> JSONResponse:
        extra = {"fields": err.fields} if isinstance(err, Unprocessable) else {}
        return JSONResponse(_body(err.code, err.detail, **extra), err.status, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError) -> JSONResponse:
        fields = field_errors(list(err.errors()))
        detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        return JSONResponse(_body("validation", detail, fields=fields), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
        return JSONResponse(_body(codes.get(err.status_code, "http_error"), str(err.detail)), err.status_code,
                            headers=getattr(err, "headers", None))

    @app.exception_handler(StoreUnavailable)
    async def _store_down(_: Request, err: StoreUnavailable) -> JSONResponse:
        log.warning("store unavailable: %s", err)
        return JSONResponse(_body("unavailable", "a backing store is unavailable; retry later"), 503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(StoreRejected)
    async def _store_rejected(_: Request, err: StoreRejected) -> JSONResponse:
        log.warning("store rejected a request: %s", err)
        return JSONResponse(_body("validation", "the store refused the request's values"), 422)

    @app.exception_handler(StoreError)
    async def _store(_: Request, err: StoreError) -> JSONResponse:
        log.error("store error: %s", err)
        return JSONResponse(_body("unavailable", "a backing store failed"), 503)

    @app.exception_handler(psycopg.DataError)
    async def _data(_: Request, err: psycopg.DataError) -> JSONResponse:
        return JSONResponse(_body("validation", f"a value was refused by the database: {str(err)[:200]}"), 422)

    @app.exception_handler(ArithmeticError)
    async def _arithmetic(_: Request, err: ArithmeticError) -> JSONResponse:
        return JSONResponse(_body("validation", f"a number is out of range: {err}"), 422)

    @app.exception_handler(ValueError)
    async def _value(_: Request, err: ValueError) -> JSONResponse:
        # The query layer raises ValueError naming the parameter and what it expected.
        return JSONResponse(_body("validation", str(err)[:500]), 422)
