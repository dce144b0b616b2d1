"""FastAPI dependencies: the gateway's services, the authenticated and rate-limited caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from gateway.auth import Principal
from gateway.errors import RateLimited
from gateway.state import Gateway

bearer = HTTPBearer(auto_error=False, description="A user JWT, or an edge device's API key (rvak_…).")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An edge device's API key.")


def get_gateway(request: Request) -> Gateway:
    """The running gateway's services."""
    gw: Gateway = request.app.state.gateway
    return gw


def get_principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    api_key: Annotated[str | None, Security(api_key_header)],
) -> Principal:
    """Authenticate the request, then spend one token of the caller's rate-limit bucket.

    Raises:
        Unauthorized: No credentials, or they do not check out.
        RateLimited: The caller's bucket is empty (``Retry-After`` says for how long).

    """
    gw = get_gateway(request)
    authorization = f"Bearer {creds.credentials}" if creds is not None else request.headers.get("authorization")
    principal = gw.auth.authenticate(authorization, api_key)
    if gw.limiter is not None:
        s = gw.settings
        limit = s.rate_limit_device if principal.kind == "device" else s.rate_limit_user
        decision = gw.limiter.check(principal.rate_key, limit)
        request.state.rate_limit_headers = decision.headers()
        if not decision.allowed:
            raise RateLimited(f"rate limit of {limit.rate:g}/s (burst {limit.burst}) reached",
                              headers=decision.headers())
    return principal


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
