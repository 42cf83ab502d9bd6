"""Decoder on synthetic records built with the pinned struct formats (no kernel needed)."""

from __future__ import annotations

import socket
import struct

import pytest

from schemas.events import Event
from sensors import decoder as D
from sensors.flags import map_flags, open_flags, prot_flags


def hdr(
    t: int, a: tuple[int, ...] = (0,) * 6, ret: int = 0, flags: int = 0, aux: int = 0
) -> tuple[object, ...]:
    return (1_000_000_000, 4242, ret, *a, t, 100, 101, 1, 0, 0, flags, aux, 777_000_000, b"evil")


def test_openat() -> None:
    raw = D.EVENT2.pack(
        *hdr(
            10,
            ((-100) & 0xFFFFFFFFFFFFFFFF, 0, 0o2 | 0o100 | 0o2000000, 0o644, 0, 0),
            ret=3,
            flags=D.F_PATH_RESOLVED,
        ),
        b"/proc/1/mem\0junk",
        b"mem",
    )
    e = D.Decoder("h", 100.0).decode(raw)
    assert e["syscall"] == "openat" and e["ret"] == 3
    assert e["args"] == {
        "dirfd": -100,
        "path": "/proc/1/mem",
        "path_typed": "mem",
        "path_truncated": False,
        "flags": ["O_RDWR", "O_CREAT", "O_CLOEXEC"],
        "mode": "0o644",
    }
    assert e["id"] == "h:1000000000:101" and e["time"] == pytest.approx(101.0)
    assert e["process"] == {
        "pid": 100,
        "tid": 101,
        "ppid": 1,
        "uid": 0,
        "gid": 0,
        "comm": "evil",
        "start_boottime_ns": 777_000_000,
    }
    Event.model_validate(e)


def test_exec_record() -> None:
    argv = b"/bin/x\0-a\0b c\0"
    raw = D.EXEC.pack(
        *hdr(2, (0, 5, 0x1000, 0, 0, 0), flags=D.F_EXE_MEMFD | D.F_EXE_DELETED, aux=len(argv)),
        b"/dev/fd/5",
        argv,
        b"/tmp/x.so",
        b"",
        b"memfd:x",
        b"libpod-" + b"a" * 64,
        b"libpod_parent",
        *NO_STDIO,
        b"/dev/shm/x",
        *(77, 0x01021994, (0 << 20) | 25, 0, 0, 0o104755, 0),  # ino, tmpfs, dev, uid, nlink, mode, pad
        *(0, 0, 0, 0),  # fd_ino
        b"/tmp/audit.so",
        b"glibc.malloc.mxfast=" + b"A" * 107,
        *(D.ENV_PRESENT | 9, 0, D.ENV_PRESENT | 13, D.ENV_PRESENT | 5000),  # env_vlen
        *(40000, 32768, 300, 0),  # env_size, env_scanned, env_count, pad
    )
    e = D.Decoder("h", 0.0).decode(raw)
    assert e["cgroup_name"] == "libpod_parent/libpod-" + "a" * 64
    a = e["args"]
    assert a["argv"] == ["/bin/x", "-a", "b c"] and a["flags"] == ["AT_EMPTY_PATH"] and a["dirfd"] == 5
    assert (
        a["exe_memfd"]
        and a["exe_deleted"]
        and a["ld_preload"] == "/tmp/x.so"
        and a["ld_library_path"] is None
    )
    # the loader variables: values bounded, a full length and a truncation flag each
    assert (a["ld_preload_len"], a["ld_preload_truncated"]) == (9, False)
    assert (a["ld_library_path_len"], a["ld_library_path_truncated"]) == (None, False)
    assert (a["ld_audit"], a["ld_audit_len"]) == ("/tmp/audit.so", 13)
    assert a["glibc_tunables"].startswith("glibc.malloc.mxfast=A")
    assert (a["glibc_tunables_len"], a["glibc_tunables_truncated"]) == (5000, True)
    assert (a["env_size"], a["env_scanned"], a["env_count"]) == (40000, 32768, 300)
    assert a["env_truncated"] is False  # hdr flag, not set here
    # no MT_F_PATH_RESOLVED: the exe_path field is not trusted
    assert a["exe_path"] is None and a["exe_path_truncated"] is False
    assert a["exe_file"] == {
        "fs": "tmpfs",
        "dev": "0:25",
        "ino": 77,
        "nlink": 0,
        "uid": 0,
        "mode": "0o4755",
        "setuid": True,
        "setgid": False,
        "upper_layer": None,  # not on overlayfs
        "in_image": None,
        "interp": True,
    }


def test_exec_overlay_and_loader_facts() -> None:
    """Overlay upper/lower and "no ELF interpreter" come from hdr.flags."""
    flags = D.F_OVL_UPPER | D.F_EXE_NO_INTERP | D.F_ENV_LDTRACE
    raw = D.EXEC.pack(
        *hdr(1, flags=flags),
        *(b"/tmp/x", b"", b"", b"", b"x", b"", b""),
        *NO_STDIO,
        b"",
        *(9, 0x794C7630, 0, 0, 1, 0o100755, 0),  # overlayfs
        *(0, 0, 0, 0),
        *ENV_NONE,
    )
    a = D.Decoder("h", 0.0).decode(raw)["args"]
    f = a["exe_file"]
    assert f["fs"] == "overlayfs" and f["upper_layer"] is True and f["in_image"] is False
    assert f["interp"] is False and a["ld_trace"] is True


NO_STDIO = (0,) * 16
ENV_NONE = (b"", b"", *(0,) * 8)


def stdio(
    rdev: tuple[int, ...], family: tuple[int, ...], ftype: tuple[int, ...], is_open: tuple[int, ...]
) -> tuple[int, ...]:
    return (*rdev, 0, *family, 0, *ftype, 0, *is_open, 0)


def test_exec_stdio() -> None:
    """fd facts: socket + family, pipe, tty by device major, /dev/null, closed, anonymous inode."""

    def decode(facts: tuple[int, ...], ret: int = 0, ino: tuple[int, ...] = (0,) * 4) -> dict[str, object]:
        raw = D.EXEC.pack(
            *hdr(1, ret=ret),
            b"/bin/sh",
            b"",
            b"",
            b"",
            b"sh",
            b"",
            b"",
            *facts,
            b"",
            *(0,) * 7,
            *ino,
            *ENV_NONE,
        )
        return D.Decoder("h", 0.0).decode(raw)["args"]

    tty = (136 << 20) | 3
    a = decode(stdio((0, 0, tty), (2, 10, 0), (0xC, 0xC, 0x2), (1, 1, 1)))
    assert a["stdio"] == {
        "stdin": "socket",
        "stdin_family": "AF_INET",
        "stdout": "socket",
        "stdout_family": "AF_INET6",
        "stderr": "tty",
        "network": ["stdin", "stdout"],
    }
    a = decode(stdio(((1 << 20) | 3, 0, 0), (0, 1, 0), (0x2, 0xC, 0x1), (1, 1, 1)))
    assert a["stdio"] == {
        "stdin": "null",
        "stdout": "socket",
        "stdout_family": "AF_UNIX",
        "stderr": "pipe",
        "network": [],
    }
    a = decode(stdio((0, 0, 0), (0, 1, 0), (0x1, 0xC, 0x1), (1, 1, 1)), ino=(4242, 99, 4243, 0))
    assert a["stdio"] == {
        "stdin": "pipe",
        "stdin_ino": 4242,
        "stdout": "socket",
        "stdout_family": "AF_UNIX",
        "stderr": "pipe",
        "stderr_ino": 4243,
        "network": [],
    }
    a = decode(stdio((0, 0, 0), (0, 0, 0), (0x8, 0, 0), (1, 0, 1)))
    assert a["stdio"] == {"stdin": "file", "stdout": "closed", "stderr": "other", "network": []}
    assert "stdio" not in decode(NO_STDIO, ret=-2)  # a failed exec has no new image


def test_mprotect_w_to_x() -> None:
    flags = D.F_W_TO_X | D.F_PREV_KNOWN | (1 << D.F_WREG_SHIFT)
    raw = D.EVENT.pack(*hdr(7, (0x7000, 4096, 5, 0x6000, 16384, 2), flags=flags, aux=3), b"")
    for decode in (D.Decoder("h", 0.0).decode,):
        a = decode(raw)["args"]
        assert a == {
            "addr": 0x7000,
            "len": 4096,
            "prot": ["PROT_READ", "PROT_EXEC"],
            "prev_prot": ["PROT_READ", "PROT_WRITE"],
            "wx": False,
            "w_to_x": True,
            "region_start": 0x6000,
            "region_len": 16384,
            "region_kind": "anon",
            "wx_count": 2,
            "region_overflow": False,
        }
    raw = D.EVENT.pack(*hdr(7, (0x7000, 4096, 7, 0, 0, 0), flags=D.F_WX | D.F_WREG_OVERFLOW), b"")
    a = D.Decoder("h", 0.0).decode(raw)["args"]
    assert a["prev_prot"] is None and a["wx"] is True and a["w_to_x"] is False
    assert a["region_start"] is None and a["region_kind"] is None and a["region_overflow"] is True


def test_mmap_map_fixed_w_to_x() -> None:
    flags = D.F_W_TO_X | (2 << D.F_WREG_SHIFT)
    raw = D.EVENT.pack(*hdr(8, (0x7000, 4096, 5, 0x11, 4, 0), ret=0x7000, flags=flags, aux=7), b"")
    for decode in (D.Decoder("h", 0.0).decode,):
        a = decode(raw)["args"]
        assert a["flags"] == ["MAP_SHARED", "MAP_FIXED"] and a["fd"] == 4
        assert a["w_to_x"] is True and a["region_kind"] == "file" and a["wx_count"] == 7
        assert a["region_overflow"] is False


def test_connect_ipv4_ipv6() -> None:
    sa = struct.pack("<H", 2) + struct.pack(">H", 4444) + socket.inet_aton("10.1.2.3")
    a = D.Decoder("h", 0.0).decode(D.EVENT.pack(*hdr(14, (3, 0, 16, 0, 0, 0), ret=-111), sa))["args"]
    assert a == {"fd": 3, "family": "AF_INET", "addr": "10.1.2.3", "port": 4444}
    sa6 = (
        struct.pack("<H", 10) + struct.pack(">H", 443) + b"\0" * 4 + socket.inet_pton(socket.AF_INET6, "::1")
    )
    a = D.Decoder("h", 0.0).decode(D.EVENT.pack(*hdr(14, (3, 0, 28, 0, 0, 0)), sa6))["args"]
    assert a["family"] == "AF_INET6" and a["addr"] == "::1" and a["port"] == 443


def test_ptrace_and_flags() -> None:
    a = D.Decoder("h", 0.0).decode(D.EVENT.pack(*hdr(4, (4, 77, 0x400000, 0x90, 0, 0)), b""))["args"]
    assert a == {"request": "PTRACE_POKETEXT", "target_pid": 77, "addr": 0x400000, "data": 0x90}
    assert prot_flags(0) == ["PROT_NONE"]
    assert map_flags(0x22) == ["MAP_PRIVATE", "MAP_ANONYMOUS"]
    assert open_flags(0o1 | 0o1000) == ["O_WRONLY", "O_TRUNC"]
    assert open_flags(0o40000000000)[-1] == hex(0o40000000000)  # unknown bits are kept


def test_bad_records_raise_clear_errors() -> None:
    d = D.Decoder("h", 0.0)
    with pytest.raises(D.DecodeError, match="shorter than the header"):
        d.decode(b"\0" * 10)
    with pytest.raises(D.DecodeError, match="unknown event type 99"):
        d.decode(D.EVENT.pack(*hdr(99), b""))
    with pytest.raises(D.DecodeError, match="execve record of"):
        d.decode(D.EVENT.pack(*hdr(1), b""))


def test_write_open_owners() -> None:
    """a[5] = file uid | dir uid << 32, aux bits 1/2 say which was read; warm and cold caches agree."""
    d = D.Decoder("h", 0.0)
    a = (0, 0, 0o1 | 0o100, 0o644, 0, 200000 | (0 << 32))
    for aux, want in ((3, {"file_uid": 200000, "dir_uid": 0}), (1, {"file_uid": 200000}), (0, {})):
        raw = D.EVENT2.pack(*hdr(10, a, ret=3, flags=D.F_PATH_RESOLVED, aux=aux), b"/usr/bin/x", b"x")
        fast, general = d.decode(raw), D.Decoder("h", d.clock_offset).decode(raw)
        assert fast == general
        assert {k: v for k, v in fast["args"].items() if k in ("file_uid", "dir_uid")} == want
    raw = D.EVENT2.pack(*hdr(10, (*a[:5], 7 | 4294967294 << 32), ret=3, aux=2), b"", b"/etc/x")
    assert d.decode(raw)["args"]["dir_uid"] == 4294967294 and "file_uid" not in d.decode(raw)["args"]


def test_cached_names_give_what_a_fresh_decoder_gives() -> None:
    """The comm and flag-name caches change nothing: a warm decoder's events (keys in order)
    are a fresh one's."""
    d = D.Decoder("h", 7.5)
    neg = (-100) & 0xFFFFFFFFFFFFFFFF
    sockaddr = struct.pack("<H", 2) + struct.pack("!H4s", 443, bytes([10, 0, 0, 1]))
    opens = [
        (10, (neg, 0, 0o2 | 0o100 | 0o2000000, 0o644, 0, 0), D.F_PATH_RESOLVED, b"/etc/x\0junk", b"x"),
        (9, (0, 0, 0o1 | 0o1000, 0o755, 0, 0), 0, b"", b"/tmp/y"),
        (11, (3, 0, 0o2000000, 0, 0x4, 0), D.F_PATH_RESOLVED | D.F_PATH_TRUNC, b"/deep/tail", b"passwd"),
        (10, (3, 0, 0, 0, 0, 0), D.F_PATH_RESOLVED, b"", b"/proc/self/fd/0"),
    ]
    for t, a, flags, resolved, typed in opens:
        raw = D.EVENT2.pack(*hdr(t, a, ret=3, flags=flags), resolved, typed)
        fast, general = d.decode(raw), D.Decoder("h", d.clock_offset).decode(raw)
        assert fast == general and list(fast["args"]) == list(general["args"]), t
        Event.model_validate(fast)
    cases = [
        (8, (0, 4096, 5, 0x2, 3, 0), D.F_PATH_RESOLVED, 0, b"/usr/lib/libc.so.6"),
        (8, (0, 8192, 7, 0x22, 2**64 - 1, 4096), D.F_WX, 0, b""),
        (8, (0, 4096, 0, 0x1, 5, 0), 0, 0, b""),
        (7, (0x7F00, 4096, 5, 0, 0, 0), D.F_W_TO_X | D.F_PREV_KNOWN, 3, b""),
        (7, (0x7F00, 4096, 0, 0, 0, 0), 0, 0, b""),
        (3, (0, 3, 0, 0, 0, 0), 0, 0, b"payload"),
        (14, (3, 0, 16, 0, 0, 0), 0, 0, sockaddr),
        (16, (0x0100, 0, 0, 0, 0, 0), 0, 0, b""),
    ]
    for _ in range(2):  # the second round hits the caches
        for t, a, flags, aux, s in cases:
            raw = D.EVENT.pack(*hdr(t, a, ret=-2, flags=flags, aux=aux), s)
            fast, general = d.decode(raw), D.Decoder("h", d.clock_offset).decode(raw)
            assert fast == general and list(fast) == list(general), t
            assert list(fast["args"]) == list(general["args"]) and list(fast["process"]) == list(
                general["process"]
            )
            Event.model_validate(fast)


def test_setns_kernel_resolved_facts() -> None:
    raw = D.EVENT.pack(*hdr(13, (3, 0, 0x40000000, 1, 0, 4026532290), flags=D.F_NS_HOST), b"")
    a = D.Decoder("h", 0.0).decode(raw)["args"]
    assert a == {
        "fd": 3,
        "nstype": [],
        "ns_joined": ["CLONE_NEWNET"],
        "fd_kind": "nsfs",
        "target_pid": None,
        "ns_inum": 4026532290,
        "ns_host": True,
    }
    raw = D.EVENT.pack(*hdr(13, (4, 0x44000000, 0x44000000, 2, 812, 0)), b"")
    a = D.Decoder("h", 0.0).decode(raw)["args"]
    assert (
        a["fd_kind"] == "pidfd" and a["target_pid"] == 812 and a["ns_inum"] is None and a["ns_host"] is False
    )
    raw = D.EVENT.pack(*hdr(13, (99, 0, 0, 0, 0, 0), ret=-9), b"")
    assert D.Decoder("h", 0.0).decode(raw)["args"]["fd_kind"] is None  # fd not open


def test_resolved_paths() -> None:
    """The kernel's path wins; a truncated walk or a nameless fd falls back to the typed text."""
    assert D.resolved_path(b"/etc/shadow", D.F_PATH_RESOLVED, "shadow") == ("/etc/shadow", True, False)
    assert D.resolved_path(b"/x/y", D.F_PATH_RESOLVED | D.F_PATH_TRUNC, "y") == ("y", False, True)
    assert D.resolved_path(b"", D.F_PATH_RESOLVED, "/proc/self/fd/0") == ("/proc/self/fd/0", False, False)
    assert D.resolved_path(b"/etc/shadow", 0, "shadow") == ("shadow", False, False)


def test_joined_paths_are_normalised() -> None:
    assert D.normalize("//dev/./shm//x") == "/dev/shm/x"
    assert D.normalize("/proc//1/mem") == "/proc/1/mem"
    assert D.joined("/etc", "shadow", True, False) == ("/etc/shadow", True)
    assert D.joined("/tmp", "../etc/./cron.d//x", True, False) == ("/etc/cron.d/x", True)
    assert D.joined("/", "tmp/x", True, False) == ("/tmp/x", True)
    assert D.joined("/a", "x", True, True) == ("x", False)  # truncated base: the typed text
    assert D.joined("", "x", False, False) == ("x", False)
    assert D.joined("", "//tmp/./x", False, False) == ("/tmp/x", False)


def test_unlink_rename_chmod_records() -> None:
    d = D.Decoder("h", 0.0)
    neg = (-100) & 0xFFFFFFFFFFFFFFFF
    raw = D.EVENT4.pack(
        *hdr(18, (neg, 0, 0, 0, 0, 0), flags=D.F_PATH_RESOLVED), b"./x", b"", b"/dev/shm", b""
    )
    a = d.decode(raw)["args"]
    assert a["path"] == "/dev/shm/x" and a["path_typed"] == "./x" and a["path_resolved"] is True
    raw = D.EVENT4.pack(
        *hdr(17, (neg, 0, 5, 0, 0, 0), flags=D.F_PATH_RESOLVED | D.F_PATH2_RESOLVED),
        b"a",
        b"../bin/ls",
        b"/tmp",
        b"/usr/lib",
    )
    a = d.decode(raw)["args"]
    assert (a["oldpath"], a["newpath"], a["newpath_typed"]) == ("/tmp/a", "/usr/bin/ls", "../bin/ls")
    raw = D.EVENT4.pack(*hdr(19, (neg, 0, 0o755, 0, 0, 0), flags=D.F_PATH_RESOLVED), b"x", b"", b"/tmp", b"")
    e = d.decode(raw)
    assert e["args"]["path"] == "/tmp/x" and e["args"]["mode"] == "0o755"
    Event.model_validate(e)


def test_lean_events_come_back_whole_from_wire_v2() -> None:
    """A sensor publishing v2 decodes lean (no v, id, time, host, source): the worker's
    expansion of the batch gives exactly the full decoder's events."""
    import copy

    import orjson

    from schemas import wire

    full_d, lean_d = D.Decoder("node-1", 1234.5), D.Decoder("node-1", 1234.5, lean=True)
    neg = (-100) & 0xFFFFFFFFFFFFFFFF
    raws = [
        D.EVENT2.pack(
            *hdr(10, (neg, 0, 0, 0, 0, 0), ret=3, flags=D.F_PATH_RESOLVED), b"/etc/shadow", b"shadow"
        ),
        D.EVENT.pack(*hdr(7, (0x7F00, 4096, 5, 0, 0, 0), flags=D.F_W_TO_X | D.F_PREV_KNOWN, aux=3), b""),
        D.EVENT.pack(*hdr(3, (0, 3, 0, 0, 0, 0), ret=4), b"payload"),
    ]
    full = [full_d.decode(r) for r in raws]
    lean = [lean_d.decode(r) for r in raws]
    assert all(not {"v", "id", "time", "host", "source"} & set(e) for e in lean)
    doc = orjson.loads(orjson.dumps(wire.encode("node-1", "host:node-1", lean, lean_d.clock_offset)))
    back = wire.events_of(doc)
    assert back == orjson.loads(orjson.dumps(copy.deepcopy(full)))
    for e in back:
        Event.model_validate(e)
