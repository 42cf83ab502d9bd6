"""The Python struct formats are pinned to ebpf/sensor.h: gcc compiles the header and prints the layout."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ebpf.loader import HEADER
from sensors import decoder as D

PROGRAM = r"""
#include <stdio.h>
#include <stddef.h>
#include <linux/types.h>
#include "sensor.h"
#define P(x) printf(#x " %zu\n", (size_t)(x))
int main(void) {
    P(sizeof(struct mt_hdr)); P(sizeof(struct mt_event)); P(sizeof(struct mt_event2)); P(sizeof(struct mt_exec)); P(sizeof(struct mt_event4));
    P(offsetof(struct mt_hdr, ts_ns)); P(offsetof(struct mt_hdr, cgroup_id)); P(offsetof(struct mt_hdr, ret));
    P(offsetof(struct mt_hdr, a)); P(offsetof(struct mt_hdr, type)); P(offsetof(struct mt_hdr, pid));
    P(offsetof(struct mt_hdr, flags)); P(offsetof(struct mt_hdr, aux)); P(offsetof(struct mt_hdr, pstart_ns)); P(offsetof(struct mt_hdr, comm));
    P(offsetof(struct mt_exec, filename)); P(offsetof(struct mt_exec, argv)); P(offsetof(struct mt_exec, ld_preload));
    P(offsetof(struct mt_exec, ld_library_path)); P(offsetof(struct mt_exec, exe_name));
    P(offsetof(struct mt_exec, cgroup_leaf)); P(offsetof(struct mt_exec, cgroup_parent));
    P(offsetof(struct mt_exec, fd_rdev)); P(offsetof(struct mt_exec, fd_family));
    P(offsetof(struct mt_exec, fd_type)); P(offsetof(struct mt_exec, fd_open)); P(MT_STDIO_FDS);
    P(offsetof(struct mt_exec, exe_path)); P(offsetof(struct mt_exec, exe_ino)); P(offsetof(struct mt_exec, exe_mode)); P(offsetof(struct mt_exec, fd_ino)); P(offsetof(struct mt_exec, ld_audit)); P(offsetof(struct mt_exec, env_vlen)); P(offsetof(struct mt_exec, env_count)); P(MT_F_ENV_TRUNC); P(MT_ENV_VARS); P(offsetof(struct mt_event4, base)); P(offsetof(struct mt_event4, base2));
    P(MT_F_PATH_RESOLVED); P(MT_F_PATH_TRUNC); P(MT_F_PATH2_RESOLVED); P(MT_F_PATH2_TRUNC);
    P(MT_F_MAP_SHMEM); P(MT_F_MAP_NLINK0);
    P(MT_EXECVE); P(MT_EXECVEAT); P(MT_MOUNT); P(MT_F_EXE_MEMFD); P(MT_F_EXE_DELETED); P(MT_F_W_TO_X);
    P(MT_F_PREV_KNOWN); P(MT_PREFIX_LEN);
    return 0;
}
"""


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    if not shutil.which("gcc"):
        pytest.skip("gcc not installed")
    d = tmp_path_factory.mktemp("layout")
    (d / "layout.c").write_text(PROGRAM)
    subprocess.run(
        ["gcc", "-I", str(Path(HEADER).parent), "-o", str(d / "layout"), str(d / "layout.c")], check=True
    )
    out = subprocess.run([str(d / "layout")], capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in (line.rsplit(" ", 1) for line in out.splitlines())}


def test_sizes(layout: dict[str, int]) -> None:
    assert layout["sizeof(struct mt_hdr)"] == D.HDR.size
    assert layout["sizeof(struct mt_event)"] == D.EVENT.size
    assert layout["sizeof(struct mt_event2)"] == D.EVENT2.size
    assert layout["sizeof(struct mt_exec)"] == D.EXEC.size
    assert layout["sizeof(struct mt_event4)"] == D.EVENT4.size


def test_offsets(layout: dict[str, int]) -> None:
    assert layout["offsetof(struct mt_hdr, type)"] == D.TYPE_OFFSET
    assert layout["offsetof(struct mt_hdr, a)"] == 24
    assert layout["offsetof(struct mt_hdr, comm)"] == D.HDR.size - D.COMM_LEN
    assert layout["offsetof(struct mt_hdr, pstart_ns)"] == D.HDR.size - D.COMM_LEN - 8
    tail = D.EXEC.size - D.ENV_TAIL_LEN - D.FD_INO_LEN
    stdio = tail - D.EXE_FACTS_LEN - D.PATH_LEN - D.STDIO_LEN
    assert layout["offsetof(struct mt_exec, exe_path)"] == tail - D.EXE_FACTS_LEN - D.PATH_LEN
    assert layout["offsetof(struct mt_exec, exe_ino)"] == tail - D.EXE_FACTS_LEN
    assert layout["offsetof(struct mt_exec, exe_mode)"] == tail - 4
    assert layout["offsetof(struct mt_exec, fd_ino)"] == tail
    env = D.EXEC.size - D.ENV_TAIL_LEN
    assert layout["offsetof(struct mt_exec, ld_audit)"] == env
    assert layout["offsetof(struct mt_exec, env_vlen)"] == env + 2 * D.ENV_LEN
    assert layout["offsetof(struct mt_exec, env_count)"] == D.EXEC.size - 8
    assert layout["MT_F_ENV_TRUNC"] == D.F_ENV_TRUNC
    assert layout["MT_ENV_VARS"] == 4
    assert layout["offsetof(struct mt_event4, base)"] == D.HDR.size + 2 * D.PATH_LEN
    assert layout["offsetof(struct mt_event4, base2)"] == D.HDR.size + 3 * D.PATH_LEN
    assert layout["offsetof(struct mt_exec, cgroup_parent)"] == stdio - D.CGNAME_LEN
    assert layout["offsetof(struct mt_exec, exe_name)"] == stdio - D.EXE_NAME_LEN - 2 * D.CGNAME_LEN
    # fd_rdev[4] u32, fd_family[4] u16, fd_type[4] u8, fd_open[4] u8: the "4I4H4B4B" tail
    assert layout["offsetof(struct mt_exec, fd_rdev)"] == stdio
    assert layout["offsetof(struct mt_exec, fd_family)"] == stdio + 16
    assert layout["offsetof(struct mt_exec, fd_type)"] == stdio + 24
    assert layout["offsetof(struct mt_exec, fd_open)"] == stdio + 28
    assert layout["MT_STDIO_FDS"] == len(D.STDIO_NAMES)
    assert layout["offsetof(struct mt_exec, argv)"] == D.HDR.size + D.PATH_LEN


def test_constants(layout: dict[str, int]) -> None:
    assert D.EVENT_TYPES[layout["MT_EXECVE"]] == "execve"
    assert D.EVENT_TYPES[layout["MT_EXECVEAT"]] == "execveat"
    assert D.EVENT_TYPES[layout["MT_MOUNT"]] == "mount"
    assert (layout["MT_F_EXE_MEMFD"], layout["MT_F_EXE_DELETED"]) == (D.F_EXE_MEMFD, D.F_EXE_DELETED)
    assert (layout["MT_F_W_TO_X"], layout["MT_F_PREV_KNOWN"]) == (D.F_W_TO_X, D.F_PREV_KNOWN)
    assert (layout["MT_F_PATH_RESOLVED"], layout["MT_F_PATH_TRUNC"]) == (D.F_PATH_RESOLVED, D.F_PATH_TRUNC)
    assert (layout["MT_F_PATH2_RESOLVED"], layout["MT_F_PATH2_TRUNC"]) == (
        D.F_PATH2_RESOLVED,
        D.F_PATH2_TRUNC,
    )
    from ebpf.loader import MT_PREFIX_LEN

    assert layout["MT_PREFIX_LEN"] == MT_PREFIX_LEN


def _header() -> str:
    return Path(HEADER).read_text()


def header_defines() -> dict[str, int]:
    """Every ``#define MT_NAME <integer>`` of sensor.h."""
    out: dict[str, int] = {}
    for name, value in re.findall(r"^#define\s+(MT_\w+)\s+(0x[0-9A-Fa-f]+|\d+)\b", _header(), re.M):
        out[name] = int(value, 0)
    return out


def header_enum(name: str) -> dict[str, int]:
    body = re.search(rf"enum {name} \{{(.*?)\}};", _header(), re.S)
    assert body, f"enum {name} not in sensor.h"
    return {k: int(v, 0) for k, v in re.findall(r"(MT_\w+)\s*=\s*(0x[0-9A-Fa-f]+|\d+)", body.group(1))}


def test_every_event_type_is_decoded_under_its_name() -> None:
    """enum mt_type and the decoder's T_* / EVENT_TYPES / decoding table are the same set."""
    enum = header_enum("mt_type")
    assert enum, "no enum values parsed"
    py = {name: getattr(D, "T_" + name[3:]) for name in enum}
    assert py == enum
    assert {getattr(D, n) for n in dir(D) if re.fullmatch(r"T_[A-Z0-9_]+", n)} == set(enum.values())
    assert set(D.EVENT_TYPES) == set(enum.values()) == set(D.LAYOUTS)
    renamed = {"MT_FORK": "process_fork", "MT_EXIT": "process_exit"}
    for name, value in enum.items():
        assert D.EVENT_TYPES[value] == renamed.get(name, name[3:].lower())


def test_every_header_flag_is_the_decoder_s() -> None:
    """Each MT_F_* of sensor.h is the decoder's F_* (and the decoder has no flag of its own)."""
    flags = {k: v for k, v in header_defines().items() if k.startswith("MT_F_")}
    assert len(flags) >= 20
    for name, value in flags.items():
        assert getattr(D, name[3:], None) == value, name
    py = {n for n in dir(D) if re.fullmatch(r"F_[A-Z0-9_]+", n)}
    assert py == {name[3:] for name in flags}
    defs = header_defines()
    assert defs["MT_ENV_PRESENT"] == D.ENV_PRESENT
    kinds = {k: v for k, v in defs.items() if k.startswith("MT_WK_")}
    assert {v: k[6:].lower() for k, v in kinds.items()} == D.REGION_KINDS
    fds = {k: v for k, v in defs.items() if k.startswith("MT_FD_")}
    assert {v: k[6:].lower() for k, v in fds.items()} == {k: v for k, v in D.FD_KINDS.items() if v}


def test_every_config_and_counter_slot_is_the_loader_s() -> None:
    """Config map (MT_CFG_*) and counter (MT_CNT_*) slots: the loader writes and reads the same."""
    from ebpf import loader as L

    defs = header_defines()
    for prefix, py in (("MT_CFG_", "CFG_"), ("MT_CNT_", "CNT_")):
        slots = {
            k[len(prefix) :]: v for k, v in defs.items() if k.startswith(prefix) and k != prefix + "SLOTS"
        }
        assert slots, prefix
        loader = {n[len(py) :]: getattr(L, n) for n in dir(L) if n.startswith(py)}
        assert loader == slots, prefix
        assert max(slots.values()) < defs[prefix + "SLOTS"]


def test_lengths_and_env_indexes() -> None:
    defs = header_defines()
    for name in ("COMM_LEN", "PATH_LEN", "ARGV_LEN", "ENV_LEN", "EXE_NAME_LEN", "CGNAME_LEN"):
        assert getattr(D, name) == defs["MT_" + name], name
    env = [defs[f"MT_ENV_{n}"] for n in ("PRELOAD", "LIBRARY_PATH", "AUDIT", "TUNABLES")]
    assert env == [0, 1, 2, 3] and defs["MT_ENV_VARS"] == len(D._ENV_NAMES)
