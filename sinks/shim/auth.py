"""API authentication: a token (``Authorization: Bearer`` or ``X-API-Key``) or HTTP basic auth."""

from __future__ import annotations

import base64
import binascii
import secrets

from fastapi import HTTPException, Request, status

from sinks.shim.config import ShimSettings


def _eq(a: str, b: str | None) -> bool:
    return b is not None and secrets.compare_digest(a.encode(), b.encode())


def check_request(cfg: ShimSettings, request: Request) -> None:
    """Raise 401 unless the request carries a valid credential (or auth is explicitly off)."""
    if not cfg.auth_enabled:
        return
    key = request.headers.get("x-api-key")
    if key is not None and _eq(key, cfg.token):
        return
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and _eq(value.strip(), cfg.token):
        return
    if scheme == "basic" and cfg.basic_user is not None:
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        if _eq(user, cfg.basic_user) & _eq(password, cfg.basic_password):
            return
    # No "Basic" challenge: browsers would pop up a password dialog over the page's own login.
    raise HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="missing or invalid credentials: send Authorization: Bearer <token>, X-API-Key or basic auth",
        headers={"WWW-Authenticate": 'Bearer realm="memtrail"'},
    )
