"""Worker readiness beyond "started": agents that stopped or are stuck, and the broker.

``/readyz`` is served from a thread, so it answers even while the event loop is blocked
by a stuck batch. Every reason readiness is false is a label of
``memtrail_stream_not_ready`` (1 while it holds), so an operator sees why.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from prometheus_client import Gauge

NOT_READY = Gauge(
    "memtrail_stream_not_ready",
    "1 while this reason keeps the worker not ready (agent_stopped:<agent>, agent_stuck:<agent>, "
    "broker_unreachable, starting)",
    ["reason"],
)


@dataclass
class Health:
    #: An agent busy on one batch for longer than this is stuck (wedged).
    stuck_after_s: float = 60.0
    _busy_since: dict[str, float] = field(default_factory=dict)
    _stopped: set[str] = field(default_factory=set)
    #: Set by the broker watch (``streams.brokerwatch``): why the broker is not usable, or None.
    broker_problem: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _shown: set[str] = field(default_factory=set)

    def begin(self, agent: str) -> None:
        self._busy_since[agent] = time.monotonic()
        self._stopped.discard(agent)  # Faust's supervisor restarted it: it consumes again

    def end(self, agent: str) -> None:
        self._busy_since.pop(agent, None)

    def stopped(self, agent: str) -> None:
        """The agent's loop ended (an exception escaped the guards): not ready until restart."""
        self._stopped.add(agent)

    def problems(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        out = [f"agent_stopped:{a}" for a in sorted(self._stopped)]
        out += [
            f"agent_stuck:{a}" for a, t in sorted(self._busy_since.items()) if now - t > self.stuck_after_s
        ]
        if self.broker_problem:
            out.append("broker_unreachable")
        return out

    def ready(self, started: bool) -> bool:
        problems = self.problems()
        if not started:
            problems.append("starting")
        with self._lock:  # the gauge shows exactly the current reasons
            for r in self._shown - set(problems):
                NOT_READY.labels(r).set(0)
            for r in problems:
                NOT_READY.labels(r).set(1)
            self._shown = set(problems)
        return not problems
