"""API authentication and roles.

Two roles: ``read`` (the read token, or HTTP basic auth) lists events, stats, status and
patterns; ``admin`` (the admin token only) may also delete events, change patterns and send
the self-test event. Credentials come as ``Authorization: Bearer``, ``X-API-Key`` or basic auth.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from sinks.shim.config import ShimSettings

Role = Literal["read", "admin"]

# Declared for the OpenAPI document (and /docs "Authorize"); checked below, never auto-erroring,
# so that every failure is the same 401 with a Bearer challenge (basic auth is checked by hand:
# FastAPI's HTTPBasic would answer a "Basic" challenge, and browsers pop up a password dialog).
_bearer = HTTPBearer(auto_error=False, description="read or admin token")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="read or admin token")


@dataclass(frozen=True)
class Principal:
    """Who called: the role, and a stable, non-secret name of the credential (for limits and audit)."""

    role: Role
    credential: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def _eq(a: str, b: str | None) -> bool:
    return b is not None and secrets.compare_digest(a.encode(), b.encode())


def fingerprint(secret: str) -> str:
    """A short hash naming a token in logs and limits without revealing it."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def _token_principal(cfg: ShimSettings, value: str) -> Principal | None:
    # Both comparisons always run: the time taken does not tell which token matched.
    is_admin = _eq(value, cfg.admin_token)
    is_read = _eq(value, cfg.token)
    if is_admin:
        return Principal("admin", f"admin-token:{fingerprint(value)}")
    if is_read:
        return Principal("read", f"read-token:{fingerprint(value)}")
    return None


def identify(cfg: ShimSettings, request: Request) -> Principal:
    """The caller's role, or 401 unless the request carries a valid credential (or auth is off)."""
    if not cfg.auth_enabled:
        return Principal("admin", "no-auth")
    key = request.headers.get("x-api-key")
    if key is not None and (p := _token_principal(cfg, key)) is not None:
        return p
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and (p := _token_principal(cfg, value.strip())) is not None:
        return p
    if scheme == "basic" and cfg.basic_user is not None:
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        if _eq(user, cfg.basic_user) & _eq(password, cfg.basic_password):
            return Principal("read", f"basic:{user}")
    # No "Basic" challenge: browsers would pop up a password dialog over the page's own login.
    raise HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="missing or invalid credentials: send Authorization: Bearer <token>, X-API-Key or basic auth",
        headers={"WWW-Authenticate": 'Bearer realm="memtrail"'},
    )


def require_read(
    request: Request,
    _b: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    _k: Annotated[str | None, Security(_api_key)] = None,
) -> Principal:
    principal = identify(request.app.state.ctx.cfg, request)
    request.state.principal = principal
    return principal


def require_admin(principal: Annotated[Principal, Depends(require_read)]) -> Principal:
    if not principal.admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="this change needs the admin credential (MEMTRAIL_SHIM_ADMIN_TOKEN); "
            "the read token and basic auth only read",
        )
    return principal


Reader = Annotated[Principal, Depends(require_read)]
Admin = Annotated[Principal, Depends(require_admin)]
