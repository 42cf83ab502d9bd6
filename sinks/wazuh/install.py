"""Install Memtrail's Wazuh rules and decoder through the manager's API (the one the sink uses).

``PUT /decoders/files/<name>?overwrite=true`` then ``PUT /rules/files/<name>?overwrite=true``
(raw XML, ``application/octet-stream``), ``GET /manager/configuration/validation``, and only
when the manager says the configuration is valid ``PUT /manager/restart``, so a broken file
never takes analysisd down. Every step's answer is checked (``error`` and ``failed_items``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from sinks.wazuh.config import WazuhSettings
from sinks.wazuh.content import DATA_DIR, DECODERS_FILE, RULES_FILE


class InstallFailed(RuntimeError):
    """The manager refused a step: the message says which and why."""


def _check(step: str, resp: httpx.Response) -> dict[str, Any]:
    try:
        body: dict[str, Any] = resp.json()
    except ValueError:
        body = {}
    if resp.status_code >= 400 or body.get("error"):
        detail = body.get("detail") or body.get("message") or resp.text[:300]
        raise InstallFailed(f"{step}: HTTP {resp.status_code}: {detail}")
    data = body.get("data") or {}
    failed = data.get("failed_items") or []
    if failed:
        reasons = "; ".join(str((f.get("error") or {}).get("message", f)) for f in failed)
        raise InstallFailed(f"{step}: {reasons}")
    return data


def install(
    cfg: WazuhSettings,
    directory: Path = DATA_DIR,
    *,
    restart: bool = True,
    client: httpx.Client | None = None,
) -> list[str]:
    """Upload the decoder and rules; validate; restart the manager. Returns what was done."""
    if cfg.password is None:
        raise InstallFailed("no Wazuh API password (MEMTRAIL_WAZUH_PASSWORD)")
    verify: bool | str = str(cfg.ca_certs) if cfg.ca_certs else cfg.verify_certs
    c = client or httpx.Client(base_url=cfg.url, verify=verify, timeout=cfg.request_timeout)
    done: list[str] = []
    try:
        try:
            auth = c.post("/security/user/authenticate", auth=(cfg.user, cfg.password.get_secret_value()))
            token = _check("authenticate", auth)["token"]
        except httpx.HTTPError as exc:
            raise InstallFailed(f"cannot reach the Wazuh API at {cfg.url}: {exc}") from exc
        headers = {"Authorization": f"Bearer {token}"}
        for kind, name in (("decoders", DECODERS_FILE), ("rules", RULES_FILE)):
            resp = c.put(
                f"/{kind}/files/{name}",
                params={"overwrite": "true"},
                content=(directory / name).read_bytes(),
                headers={**headers, "Content-Type": "application/octet-stream"},
            )
            _check(f"upload {kind}/{name}", resp)
            done.append(f"uploaded {kind}/{name}")
        data = _check("validate", c.get("/manager/configuration/validation", headers=headers))
        bad = [i for i in data.get("affected_items") or [] if i.get("status") != "OK"]
        if bad:
            raise InstallFailed(f"the manager's configuration does not validate: {bad}")
        done.append("configuration valid")
        if restart:
            _check("restart", c.put("/manager/restart", headers=headers))
            done.append("manager restarting")
    finally:
        if client is None:
            c.close()
    return done
