"""The Python struct formats are pinned to ebpf/sensor.h: gcc compiles the header and prints the layout."""

from __future__ import annotations

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
