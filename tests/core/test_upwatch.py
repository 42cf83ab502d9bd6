"""``memtrail up``'s spool rules on real spool directories (the broker watch is tested end to end
in tests/e2e/test_up_broker.py)."""

from __future__ import annotations

from pathlib import Path

from memtrail.upwatch import leftover_spools, release_spool, spool_depth
from sensors.spool import Spool


def _spool_with(directory: Path, n: int) -> None:
    spool = Spool(directory)
    for i in range(n):
        assert spool.append(b"host:x", b'{"events": [%d]}' % i)
    spool.close()


def test_a_spool_with_batches_is_kept_and_named(tmp_path: Path) -> None:
    run = tmp_path / "spool-run1"
    _spool_with(run, 3)
    said: list[str] = []
    assert release_spool(run, said.append) is False
    assert run.is_dir() and spool_depth(run)[0] == 3
    assert len(said) == 1 and f"{run} holds 3 undelivered batches" in said[0]
    assert f"MEMTRAIL_SENSOR_SPOOL_DIR={run}" in said[0]
    assert leftover_spools(tmp_path) == [(run, 3)]


def test_an_empty_spool_is_removed(tmp_path: Path) -> None:
    empty = tmp_path / "spool-run2"
    _spool_with(empty, 0)
    replayed = tmp_path / "spool-run3"
    _spool_with(replayed, 2)
    spool = Spool(replayed)  # replayed and acknowledged: segments removed
    while (oldest := spool.oldest()) is not None:
        spool.remove(oldest[0], len(oldest[1]))
    spool.close()
    said: list[str] = []
    assert release_spool(empty, said.append) and release_spool(replayed, said.append)
    assert not empty.exists() and not replayed.exists() and said == []
    assert leftover_spools(tmp_path) == []
