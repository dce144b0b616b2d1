"""Who is calling: JWTs for people (roles per tenant), API keys for edge devices (one store each).

User tokens: signed JWTs whose issuer, audience, expiry (and not-before, issued-at) are checked, with
claims ``sub``, ``tenant``, ``role`` (``admin`` | ``analyst`` | ``viewer``) and optionally ``stores``
(the only stores the user may see). API keys: ``rvak_<id>_<secret>``; only a salted scrypt hash of
the secret is stored, a revoked key fails on its next request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from gateway.errors import Forbidden, Unauthorized
from gateway.registry import Registry
from gateway.settings import GatewaySettings

Role = Literal["admin", "analyst", "viewer", "device"]
Action = Literal["read", "pull_config", "write_rules", "write_config", "admin", "ingest", "upload_snapshot"]

#: Which roles may do what. Devices only push data and pull their store's config.
PERMISSIONS: dict[Action, frozenset[str]] = {
    "read": frozenset({"admin", "analyst", "viewer"}),
    "pull_config": frozenset({"admin", "analyst", "viewer", "device"}),
    "write_rules": frozenset({"admin", "analyst"}),
    "write_config": frozenset({"admin"}),
    "admin": frozenset({"admin"}),
    "ingest": frozenset({"device"}),
    "upload_snapshot": frozenset({"device", "admin"}),
}
USER_ROLES = ("admin", "analyst", "viewer")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_KEY = re.compile(r"^rvak_([a-z0-9]{16})_([A-Za-z0-9_-]{43})$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    Attributes:
        kind: ``user`` (JWT) or ``device`` (API key).
        subject: The token's ``sub``, or the API key id.
        tenant: The only tenant whose data it may touch.
        role: ``admin``, ``analyst``, ``viewer`` or ``device``.
        stores: The stores it may see (None: all of the tenant's).

    """

    kind: Literal["user", "device"]
    subject: str
    tenant: str
    role: Role
    stores: frozenset[str] | None = None

    def sees(self, store: str) -> bool:
        """Whether the store is within this caller's store list (tenant ownership is checked apart)."""
        return self.stores is None or store in self.stores

    def may(self, action: Action) -> bool:
        """Whether the role allows the action."""
        return self.role in PERMISSIONS[action]

    def require(self, action: Action) -> None:
        """Raise :class:`Forbidden` unless the role allows the action."""
        if not self.may(action):
            raise Forbidden(f"role {self.role!r} may not {action.replace('_', ' ')}")

    @property
    def rate_key(self) -> str:
        """The rate-limit bucket of this caller."""
        return f"{self.kind}:{self.tenant}:{self.subject}"


# -- API keys ------------------------------------------------------------------------------------


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` of an API key secret (base64url parts)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, maxmem=64 << 20, **_SCRYPT)
    enc = base64.urlsafe_b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${enc(salt).decode()}${enc(digest).decode()}"


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of a secret against :func:`hash_secret`'s output."""
    try:
        algo, n, r, p, salt, digest = stored.split("$")
        if algo != "scrypt":
            return False
        got = hashlib.scrypt(secret.encode(), salt=base64.urlsafe_b64decode(salt), dklen=32, n=int(n), r=int(r),
                             p=int(p), maxmem=64 << 20)
        return hmac.compare_digest(got, base64.urlsafe_b64decode(digest))
    except (ValueError, TypeError):
        return False


def new_api_key() -> tuple[str, str, str]:
    """A fresh key: ``(key_id, token, hash)``; hand ``token`` out once, store ``hash``."""
    key_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(16))
    secret = secrets.token_urlsafe(32)
    return key_id, f"rvak_{key_id}_{secret}", hash_secret(secret)


# -- JWT -----------------------------------------------------------------------------------------


class JwtVerifier:
    """Checks user tokens against the configured key, algorithms, issuer and audience.

    Args:
        settings: Gateway settings (key material, algorithms, issuer, audience, leeway).

    """

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        secret = settings.jwt_secret or settings.jwt_public_key
        assert secret is not None  # the settings validator guarantees one
        self._key: Any = secret.get_secret_value()

    def verify(self, token: str) -> Principal:
        """Decode and check a token.

        Raises:
            Unauthorized: Bad signature, algorithm not allowed, expired, not yet valid, wrong issuer or
                audience, lifetime too long, or a claim missing or malformed.

        """
        s = self.settings
        try:
            claims = jwt.decode(
                token, self._key, algorithms=list(s.jwt_algorithms), audience=s.jwt_audience, issuer=s.jwt_issuer,
                leeway=s.jwt_leeway_s, options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("token audience is not this gateway") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("token issuer is not trusted") from None
        except jwt.InvalidTokenError as err:
            raise Unauthorized(f"invalid token: {err}") from None
        if float(claims["exp"]) - float(claims["iat"]) > s.jwt_max_lifetime_s:
            raise Unauthorized(f"token lifetime over {s.jwt_max_lifetime_s:.0f} s")
        tenant, role, sub = claims.get("tenant"), claims.get("role"), claims.get("sub")
        if not (isinstance(tenant, str) and _ID.match(tenant)):
            raise Unauthorized("token has no valid tenant claim")
        if role not in USER_ROLES:
            raise Unauthorized(f"token role must be one of {list(USER_ROLES)}")
        stores = claims.get("stores")
        if stores is not None and not (isinstance(stores, list) and all(isinstance(x, str) for x in stores)):
            raise Unauthorized("token stores claim must be a list of store ids")
        return Principal("user", str(sub)[:200], tenant, role, None if stores is None else frozenset(stores))

    def mint(self, subject: str, tenant: str, role: str, *, stores: list[str] | None = None,
             ttl_s: float = 3600.0, **extra: Any) -> str:
        """Sign a token with this gateway's HMAC key (development, tests, service accounts).

        Raises:
            ValueError: The gateway verifies with a public key (mint with the identity provider instead).

        """
        alg = self.settings.jwt_algorithms[0]
        if not alg.startswith("HS"):
            raise ValueError("mint: only HMAC-configured gateways can sign tokens; use your identity provider")
        now = int(time.time())
        claims: dict[str, Any] = {"sub": subject, "tenant": tenant, "role": role, "iss": self.settings.jwt_issuer,
                                  "aud": self.settings.jwt_audience, "iat": now, "nbf": now, "exp": now + int(ttl_s)}
        if stores is not None:
            claims["stores"] = stores
        claims.update(extra)
        return jwt.encode(claims, self._key, algorithm=alg)


class Authenticator:
    """Turns request credentials into a :class:`Principal`.

    ``Authorization: Bearer <jwt | api key>`` or ``X-API-Key: <api key>``. API key hashes are
    verified once per process (scrypt is slow on purpose) but the key row, and so revocation, is
    read on every request.

    Args:
        settings: Gateway settings.
        registry: Where API keys live.

    """

    def __init__(self, settings: GatewaySettings, registry: Registry) -> None:
        self.jwt = JwtVerifier(settings)
        self.registry = registry
        self._verified: dict[str, str] = {}  # sha256(token) -> stored hash it matched
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None, api_key: str | None = None) -> Principal:
        """Check the credentials of one request.

        Raises:
            Unauthorized: None given, or they do not check out.

        """
        token = api_key
        if token is None and authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise Unauthorized("expected 'Authorization: Bearer <token>'")
            token = value.strip()
        if not token:
            raise Unauthorized("credentials required (Authorization: Bearer <token>, or X-API-Key)")
        if token.startswith("rvak_"):
            return self._api_key(token)
        return self.jwt.verify(token)

    def _api_key(self, token: str) -> Principal:
        m = _KEY.match(token)
        if not m:
            raise Unauthorized("malformed API key")
        record = self.registry.api_key(m.group(1))
        if record is None:
            raise Unauthorized("unknown API key")
        if record.revoked_at is not None:
            raise Unauthorized("API key revoked")
        fingerprint = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            known = self._verified.get(fingerprint) == record.hash
        if not known:
            if not verify_secret(m.group(2), record.hash):
                raise Unauthorized("API key does not match")
            with self._lock:
                if len(self._verified) > 10_000:
                    self._verified.clear()
                self._verified[fingerprint] = record.hash
        return Principal("device", record.id, record.tenant, "device", frozenset({record.store}))


def websocket_token(protocols: list[str]) -> str | None:
    """The token a browser passes as a ``bearer.<token>`` WebSocket subprotocol (browsers cannot set headers)."""
    for proto in protocols:
        if proto.startswith("bearer."):
            return proto.removeprefix("bearer.")
    return None
