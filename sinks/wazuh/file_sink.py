"""JSON-lines file route for a Wazuh agent (``<localfile><log_format>json</log_format>``).

One line per alert, appended; on commit the file is flushed and fsync'ed before the
offsets are committed, so a crash loses nothing (at worst lines repeat). Rotation-safe:
before each batch the path is checked, and when logrotate moved or removed the file
(different inode, or gone) a new file is opened at the path; copytruncate also works
because the file is opened in append mode. Writes are unbuffered; a line torn by a crash
is terminated when the file is opened again, and its alert is written again whole.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from io import FileIO
from pathlib import Path

from sinks.base import Incoming, Rejected
from sinks.wazuh.config import WazuhSettings
from sinks.wazuh.payload import MAX_MESSAGE_BYTES, event_json


class WazuhFileSink:
    name = "wazuh-file"

    def __init__(self, cfg: WazuhSettings) -> None:
        self.path = cfg.file_path
        self._fh: FileIO | None = None
        self._inode: int | None = None

    def _open(self) -> FileIO:
        try:
            st = os.stat(self.path)
            current: int | None = st.st_ino
        except FileNotFoundError:
            current = None
        if self._fh is not None and current == self._inode:
            return self._fh
        if self._fh is not None:
            self._fh.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open across batches
        st = os.fstat(self._fh.fileno())
        self._inode = st.st_ino
        if st.st_size and _last_byte(self.path) != b"\n":
            # A crash mid-write left a torn last line: end it so the next alert starts a
            # line of its own (the torn alert was not committed and is written again).
            self._write(b"\n")
        return self._fh

    def _write(self, data: bytes) -> None:
        assert self._fh is not None
        view = memoryview(data)
        while view:
            n = self._fh.write(view)
            view = view[n or 0 :]

    async def start(self) -> None:
        self._open()

    async def deliver(self, batch: Sequence[Incoming]) -> list[Rejected]:
        self._open()
        rejected: list[Rejected] = []
        lines = []
        for it in batch:
            line = event_json(it.alert)
            if len(line) > MAX_MESSAGE_BYTES:  # the agent would cut it: keep it whole in dead letters
                rejected.append(Rejected(it, f"alert is {len(line)} bytes; Wazuh reads {MAX_MESSAGE_BYTES}"))
                continue
            lines.append(line + b"\n")
        self._write(b"".join(lines))  # unbuffered: a batch never waits half-written in memory
        return rejected

    async def flush(self) -> None:
        if self._fh is not None:
            os.fsync(self._fh.fileno())

    async def close(self) -> None:
        if self._fh is not None:
            await self.flush()
            self._fh.close()
            self._fh = None


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1)
