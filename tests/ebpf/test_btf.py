"""Kernel field offsets from BTF: a hand-built blob and the running kernel."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from ebpf.btf import BTF, BTF_PATH, BTFError, sensor_offsets


def _blob() -> bytes:
    strings = b"\0int\0outer\0x\0inner\0y\0"
    off = {name: strings.index(name.encode() + b"\0") for name in ("int", "outer", "x", "inner", "y")}
    types = b""
    types += struct.pack("<III", off["int"], 1 << 24, 4) + struct.pack("<I", 32)  # [1] int
    # [2] anonymous union { int y; } ; [3] struct outer { int x; union {int y;}; } with y at 64 bits
    types += struct.pack("<III", 0, (5 << 24) | 1, 4) + struct.pack("<III", off["y"], 1, 0)
    types += struct.pack("<III", off["outer"], (4 << 24) | 2, 16)
    types += struct.pack("<III", off["x"], 1, 0) + struct.pack("<III", 0, 2, 64)
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return hdr + types + strings


def test_anonymous_members() -> None:
    btf = BTF(_blob())
    assert btf.offset("outer.x") == 0
    assert btf.offset("outer.y") == 8
    with pytest.raises(BTFError, match="field z"):
        btf.offset("outer.z")
    with pytest.raises(BTFError, match="struct nope"):
        btf.offset("nope.x")


def test_bad_blob() -> None:
    with pytest.raises(BTFError, match="magic"):
        BTF(b"\0" * 64)
    with pytest.raises(BTFError, match="cannot read"):
        BTF.load(Path("/nonexistent/btf"))


@pytest.mark.skipif(not BTF_PATH.exists(), reason="kernel without BTF")
def test_running_kernel() -> None:
    offs = sensor_offsets()
    assert all(0 <= v < 16384 for v in offs.values())
    assert offs["OFF_MM_ARG_END"] == offs["OFF_MM_ARG_START"] + 8
    assert offs["OFF_MM_ENV_START"] == offs["OFF_MM_ARG_END"] + 8
