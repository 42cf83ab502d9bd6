"""What the routers share, held on ``app.state.ctx`` and injected with ``Ctx``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry

from memtrail.core.settings import Settings
from sinks.shim.config import ShimSettings
from sinks.shim.consumer import ShimConsumer
from sinks.shim.limits import RateLimiter
from sinks.shim.mitre import safe_url, technique_url
from sinks.shim.opensearch import OpenSearchPoller
from sinks.shim.portainer import PortainerClient
from sinks.shim.publisher import Publisher
from sinks.shim.store import Store


@dataclass
class ShimContext:
    cfg: ShimSettings
    settings: Settings
    store: Store
    registry: CollectorRegistry
    publisher: Publisher | None = None
    portainer: PortainerClient | None = None
    consumer: ShimConsumer | None = None
    opensearch: OpenSearchPoller | None = None
    selftest_limit: RateLimiter = field(init=False)
    change_limit: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        # Small bursts: a script that loops on POST /test or on pattern changes is throttled
        # within seconds, a person clicking is not.
        self.selftest_limit = RateLimiter(self.cfg.selftest_per_min, burst=min(3, self.cfg.selftest_per_min))
        self.change_limit = RateLimiter(self.cfg.changes_per_min, burst=min(10, self.cfg.changes_per_min))

    def decorate(self, item: dict[str, Any]) -> dict[str, Any]:
        """Add the Portainer link/name and ATT&CK urls the page shows beside each row."""
        container = item.get("container") or {}
        pc = self.portainer.resolve(container.get("id")) if self.portainer else None
        item["portainer"] = pc.as_dict() if pc else None
        if item["portainer"] is not None and safe_url(item["portainer"].get("url")) is None:
            item["portainer"] = None  # only http(s) links reach the page
        if pc and not container.get("name"):
            container["name"] = pc.name
        tech = (item.get("threat") or {}).get("technique") or {}
        item["techniques"] = [
            {"id": t, "name": n, "url": technique_url(t)}
            for t, n in zip(
                tech.get("id") or [], _pad(tech.get("name") or [], len(tech.get("id") or [])), strict=True
            )
        ]
        return item


def _pad(names: list[str], n: int) -> list[str | None]:
    return [names[i] if i < len(names) else None for i in range(n)]


def get_ctx(request: Request) -> ShimContext:
    ctx: ShimContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ShimContext, Depends(get_ctx)]
