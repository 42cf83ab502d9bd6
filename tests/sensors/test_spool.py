"""The disk spool: order, bound, persistence across restarts, torn writes."""

from __future__ import annotations

from pathlib import Path

from sensors.spool import Spool


def test_order_and_segments(tmp_path: Path) -> None:
    s = Spool(tmp_path, segment_bytes=100)
    for i in range(20):
        assert s.append(b"k%d" % i, b"v" * 30)
    assert s.depth == 20 and len(list(tmp_path.glob("seg-*"))) > 1
    seen = []
    while (got := s.oldest()) is not None:
        seg, recs = got
        seen += [k for k, _ in recs]
        s.remove(seg, len(recs))
    assert seen == [b"k%d" % i for i in range(20)]
    assert s.depth == 0 and s.size_bytes == 0 and not s


def test_bounded(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=1000)
    accepted = sum(s.append(b"k", b"x" * 100) for _ in range(20))
    assert accepted == 9 and s.depth == 9  # 109 bytes each with the length prefix
    assert not s.append(b"k", b"x" * 100)


def test_survives_restart_and_torn_tail(tmp_path: Path) -> None:
    s = Spool(tmp_path)
    s.append(b"a", b"1")
    s.append(b"b", b"2")
    s.close()
    seg = next(tmp_path.glob("seg-*"))
    with seg.open("ab") as f:
        f.write(b"\x05\x00\x00\x00\x09")  # a record cut short by a crash
    s2 = Spool(tmp_path)
    assert s2.depth == 2
    s2.append(b"c", b"3")  # goes to a new segment, after the old ones
    recs = []
    while (got := s2.oldest()) is not None:
        recs += got[1]
        s2.remove(got[0], len(got[1]))
    assert recs == [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
