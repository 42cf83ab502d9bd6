"""Bounded on-disk queue of Kafka messages for when the broker is unreachable.

Segment files ``seg-<seq>.spool`` hold length-prefixed (key, value) records and are
replayed oldest first. When the byte bound is reached, new messages are refused
(the caller counts and logs the drop): the oldest evidence is kept, not overwritten.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)
_LEN = struct.Struct("<II")


class Spool:
    def __init__(self, directory: Path, max_bytes: int = 256 << 20, segment_bytes: int = 4 << 20) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._segments: list[Path] = sorted(self.dir.glob("seg-*.spool"))
        self._bytes = sum(p.stat().st_size for p in self._segments)
        self._messages = sum(self._count(p) for p in self._segments)
        self._next = int(self._segments[-1].name[4:-6]) + 1 if self._segments else 0
        self._fh: object | None = None
        self._cur: Path | None = None
        self._cur_size = 0

    @staticmethod
    def _count(path: Path) -> int:
        return sum(1 for _ in Spool._read(path))

    @staticmethod
    def _read(path: Path) -> Iterator[tuple[bytes, bytes]]:
        data = path.read_bytes()
        pos = 0
        while pos + _LEN.size <= len(data):
            klen, vlen = _LEN.unpack_from(data, pos)
            pos += _LEN.size
            if pos + klen + vlen > len(data):
                log.warning("spool segment %s: truncated record at byte %d (crash while writing?)", path, pos)
                return
            yield data[pos : pos + klen], data[pos + klen : pos + klen + vlen]
            pos += klen + vlen

    @property
    def depth(self) -> int:
        """Messages waiting."""
        return self._messages

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __bool__(self) -> bool:
        return self._messages > 0

    def append(self, key: bytes, value: bytes) -> bool:
        """Store one message; False when the spool is full (the caller counts the drop)."""
        rec = _LEN.pack(len(key), len(value)) + key + value
        if self._bytes + len(rec) > self.max_bytes:
            return False
        if self._fh is None or self._cur_size >= self.segment_bytes:
            self._roll()
        fh = self._fh
        assert fh is not None
        fh.write(rec)  # type: ignore[attr-defined]
        self._cur_size += len(rec)
        self._bytes += len(rec)
        self._messages += 1
        return True

    def _roll(self) -> None:
        self.sync()
        self._cur = self.dir / f"seg-{self._next:012d}.spool"
        self._next += 1
        self._fh = open(self._cur, "ab")  # noqa: SIM115 - kept open across calls
        self._cur_size = 0
        self._segments.append(self._cur)

    def sync(self) -> None:
        if self._fh is not None:
            self._fh.flush()  # type: ignore[attr-defined]
            os.fsync(self._fh.fileno())  # type: ignore[attr-defined]
            self._fh.close()  # type: ignore[attr-defined]
            self._fh = None

    def oldest(self) -> tuple[Path, list[tuple[bytes, bytes]]] | None:
        """The oldest segment and its records (the segment being written is closed first)."""
        if not self._segments:
            return None
        seg = self._segments[0]
        if seg == self._cur:
            self.sync()
            self._cur = None
        return seg, list(self._read(seg))

    def remove(self, seg: Path, messages: int) -> None:
        """Drop a segment after every record in it was delivered."""
        size = seg.stat().st_size
        seg.unlink()
        self._segments.remove(seg)
        self._bytes -= size
        self._messages -= messages

    def close(self) -> None:
        self.sync()
