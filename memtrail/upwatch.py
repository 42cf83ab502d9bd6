"""What ``memtrail up`` watches besides its children: its own broker, and the run's sensor spool.

The local broker keeps everything in memory. If it dies, nothing else notices by itself (the
clients retry forever and keep answering ready), so ``up`` restarts it on the same port a
bounded number of times, re-creating the topics, or stops everything with a clear message.
A sensor spool that still holds batches the broker never acknowledged is never deleted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memtrail.core.broker import BrokerError, LocalBroker
from memtrail.core.settings import Settings

Say = Callable[[str], None]


@dataclass
class BrokerWatch:
    """Restarts the local broker up to ``max_restarts`` times per run."""

    broker: LocalBroker
    settings: Settings
    max_restarts: int
    say: Say
    restarts: int = 0

    def check(self) -> str | None:
        """None while the broker runs (or was just restarted); else why ``up`` must stop."""
        if self.broker.running:
            return None
        code = self.broker.exit_code
        why = f"the local broker (Tansu, pid {self.broker.pid}) exited with code {code}"
        tail = self._log_tail()
        if tail:
            why += "; its last log lines:\n" + "\n".join(f"    {line}" for line in tail)
        while self.restarts < self.max_restarts:
            self.restarts += 1
            self.say(f"warning: {why}")
            try:
                self._restart()
            except (BrokerError, OSError) as exc:
                why = f"restart {self.restarts} of {self.max_restarts} failed: {exc}"
                time.sleep(1.0)
                continue
            self.say(
                f"local broker restarted on {self.broker.bootstrap} (restart {self.restarts} of "
                f"{self.max_restarts}); it starts empty: topics re-created, the sensor replays what it spooled"
            )
            return None
        limit = (
            f"no restart allowed (--broker-restarts {self.max_restarts})"
            if not self.max_restarts
            else f"all {self.max_restarts} restarts used"
        )
        return f"{why}; {limit}: stopping everything"

    def _restart(self) -> None:
        from memtrail.core.kafka import BrokerUnreachable, ensure_topics

        fresh = LocalBroker(port=self.broker.port, log_path=self.broker.log_path).start()
        self.broker = fresh
        try:
            ensure_topics(self.settings)
        except BrokerUnreachable as exc:
            raise BrokerError(str(exc)) from None

    def _log_tail(self, n: int = 5) -> list[str]:
        path = self.broker.log_path
        if path is None:
            return []
        try:
            lines = path.read_bytes()[-4096:].decode(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines if line.strip()][-n:]


def spool_depth(directory: Path) -> tuple[int, int]:
    """(batches, bytes) waiting in a sensor spool directory; (0, 0) when there is none."""
    from sensors.spool import Spool

    if not directory.is_dir() or not any(directory.glob("seg-*.spool")):
        return 0, 0
    spool = Spool(directory)
    try:
        return spool.depth, spool.size_bytes
    finally:
        spool.close()


def leftover_spools(base: Path) -> list[tuple[Path, int]]:
    """Spools earlier runs of ``up`` kept (``base/spool-*``) that still hold batches."""
    found = []
    for d in sorted(base.glob("spool-*")):
        depth, _ = spool_depth(d)
        if depth:
            found.append((d, depth))
    return found


def release_spool(directory: Path, say: Say) -> bool:
    """Remove the run's spool when it is empty; keep it, and say where, when it holds batches.

    Returns True when it was removed."""
    import shutil

    depth, size = spool_depth(directory)
    if depth:
        say(
            f"warning: the sensor spool {directory} holds {depth} undelivered batches ({size} bytes) "
            f"that the broker never acknowledged; it is left in place. To deliver them, start again "
            f"with MEMTRAIL_SENSOR_SPOOL_DIR={directory} (the sensor replays a spool at start)"
        )
        return False
    shutil.rmtree(directory, ignore_errors=True)
    return True
