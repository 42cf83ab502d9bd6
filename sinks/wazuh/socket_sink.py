"""analysisd queue socket route: one ``1:<location>:<json>`` datagram per alert (same host as the manager).

A datagram socket either takes the whole message or fails: a missing socket or a full
queue (ENOBUFS/EAGAIN) is backpressure — the batch is held and sent again, so an alert can
reach Wazuh twice but never zero times. Messages longer than analysisd accepts are
dead-lettered instead of being truncated by the manager.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence

from sinks.base import Incoming, Rejected, SinkBackpressure
from sinks.metrics import FAILURES
from sinks.wazuh.config import WazuhSettings
from sinks.wazuh.payload import MAX_MESSAGE_BYTES, socket_message

_TRANSIENT = {errno.ENOENT, errno.ECONNREFUSED, errno.ENOBUFS, errno.EAGAIN, errno.ENOTCONN}


class WazuhSocketSink:
    name = "wazuh-socket"

    def __init__(self, cfg: WazuhSettings) -> None:
        self.cfg = cfg
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.connect(str(self.cfg.socket_path))
            except OSError as exc:
                sock.close()
                FAILURES.labels(self.name, "connection").inc()
                raise SinkBackpressure(
                    f"analysisd socket {self.cfg.socket_path}: {exc.strerror}", 2.0
                ) from exc
            self._sock = sock
        return self._sock

    async def start(self) -> None:
        self._connect()

    async def deliver(self, batch: Sequence[Incoming]) -> list[Rejected]:
        rejected: list[Rejected] = []
        for it in batch:
            msg = socket_message(it.alert, self.cfg.location)
            if len(msg) > MAX_MESSAGE_BYTES:
                rejected.append(
                    Rejected(it, f"alert is {len(msg)} bytes; analysisd accepts {MAX_MESSAGE_BYTES}")
                )
                continue
            sock = self._connect()
            try:
                sock.send(msg)
            except OSError as exc:
                self.close_socket()  # the manager may have restarted: reconnect next time
                if exc.errno in _TRANSIENT:
                    FAILURES.labels(self.name, "connection").inc()
                    raise SinkBackpressure(f"analysisd socket: {exc.strerror}", 1.0) from exc
                raise
        return rejected

    async def flush(self) -> None:
        """Datagrams are handed to analysisd when send() returns."""

    def close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def close(self) -> None:
        self.close_socket()
