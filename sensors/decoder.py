"""Ring-buffer records (``ebpf/sensor.h``) → event dicts shaped like ``schemas.events.Event``.

Pure: bytes in, dicts out; no bcc, no Kafka. The ``struct.Struct`` formats below are
pinned to the C header by ``tests/ebpf/test_layout.py`` (gcc compiles the header
and prints sizes and offsets). Context the kernel does not give (exe, cmdline,
ancestors, container id) is added by :mod:`sensors.context`.
"""

from __future__ import annotations

import ipaddress
import posixpath
import struct
from collections.abc import Callable
from typing import Any

from sensors import flags as F
from sensors.exe import busybox_applet, script_run

COMM_LEN, PATH_LEN, ARGV_LEN, ENV_LEN, EXE_NAME_LEN, CGNAME_LEN = 16, 256, 1024, 128, 64, 128

# struct mt_hdr: ts_ns, cgroup_id, ret, a[6], type, pid, tid, ppid, uid, gid, flags, aux, pstart_ns, comm
HDR = struct.Struct("<QQq6Q8IQ16s")
EVENT = struct.Struct(f"<{HDR.format[1:]}{PATH_LEN}s")
EVENT2 = struct.Struct(f"<{HDR.format[1:]}{PATH_LEN}s{PATH_LEN}s")
# unlink/rename/chmod: typed path, rename's new typed path, their resolved base directories
EVENT4 = struct.Struct(f"<{HDR.format[1:]}{PATH_LEN}s{PATH_LEN}s{PATH_LEN}s{PATH_LEN}s")
# ..., cgroup_parent, then the stdio facts: fd_rdev[4], fd_family[4], fd_type[4], fd_open[4],
# then exe_path (mm->exe_file resolved in the kernel) and the executed file's facts:
# exe_ino, exe_magic, exe_dev, exe_uid, exe_nlink, exe_mode, pad
EXEC = struct.Struct(
    f"<{HDR.format[1:]}{PATH_LEN}s{ARGV_LEN}s{ENV_LEN}s{ENV_LEN}s{EXE_NAME_LEN}s{CGNAME_LEN}s{CGNAME_LEN}s"
    f"4I4H4B4B{PATH_LEN}sQQIIIHH4Q"
    # the loader variables of the environment: ld_audit, glibc_tunables, env_vlen[4],
    # env_size, env_scanned, env_count, pad
    f"{ENV_LEN}s{ENV_LEN}s4I4I"
)
ENV_TAIL_LEN = 2 * ENV_LEN + 32  # the environment facts at the very end of struct mt_exec
FD_INO_LEN = 32  # fd_ino[4] before them
EXE_FACTS_LEN = 32  # bytes of the file facts at the end of struct mt_exec
STDIO_LEN = 32  # bytes of the stdio facts before exe_path (and the file facts) in struct mt_exec
TYPE_OFFSET = 72  # offsetof(struct mt_hdr, type)

# hdr.flags: MT_F_<NAME> in ebpf/sensor.h is F_<NAME> here (pinned by tests/ebpf/test_layout.py).
F_EXE_MEMFD, F_EXE_DELETED, F_ARGV_TRUNC, F_WX, F_W_TO_X, F_PREV_KNOWN = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
#: W->X region facts (mmap/mprotect): region kind in bits 16..19, table overflow
F_WREG_SHIFT, F_WREG_KIND_MASK, F_WREG_OVERFLOW = 16, 0xF0000, 0x100000
#: MT_WK_* (kind of the writable region a W->X overlapped) → ``args.region_kind``
REGION_KINDS = {1: "anon", 2: "file", 3: "stack", 4: "data", 5: "heap", 6: "unknown"}
F_PATH_RESOLVED, F_PATH_TRUNC, F_PATH2_RESOLVED, F_PATH2_TRUNC = 0x40, 0x80, 0x100, 0x200
F_MAP_SHMEM, F_MAP_NLINK0 = 0x400, 0x800
F_ENV_TRUNC = 0x1000  # exec: the environment scan stopped before its end
F_EXE_NO_INTERP = 0x2000  # exec: AT_BASE 0 (no ELF interpreter: static, or ld.so run as a program)
F_ENV_LDTRACE = 0x800000  # exec: LD_TRACE_LOADED_OBJECTS in the environment (ldd)
#: overlayfs (exec's file, an executable mmap's file): in the upper layer / has a lower copy
F_OVL_UPPER, F_OVL_LOWER = 0x4000, 0x8000
ENV_PRESENT = 0x80000000  # env_vlen: the variable was seen (its value may be empty)

# enum mt_type (ebpf/sensor.h): MT_<NAME> is T_<NAME>; tests/ebpf/test_layout.py parses the header.
T_EXECVE, T_EXECVEAT, T_MEMFD_CREATE, T_PTRACE, T_PROCESS_VM_WRITEV, T_PROCESS_VM_READV = 1, 2, 3, 4, 5, 6
T_MPROTECT, T_MMAP, T_OPEN, T_OPENAT, T_OPENAT2, T_UNSHARE, T_SETNS, T_CONNECT = 7, 8, 9, 10, 11, 12, 13, 14
T_FORK, T_EXIT, T_RENAME, T_UNLINK, T_CHMOD, T_MOUNT = 15, 16, 17, 18, 19, 20

#: enum mt_type → syscall name in events
EVENT_TYPES: dict[int, str] = {
    T_EXECVE: "execve",
    T_EXECVEAT: "execveat",
    T_MEMFD_CREATE: "memfd_create",
    T_PTRACE: "ptrace",
    T_PROCESS_VM_WRITEV: "process_vm_writev",
    T_PROCESS_VM_READV: "process_vm_readv",
    T_MPROTECT: "mprotect",
    T_MMAP: "mmap",
    T_OPEN: "open",
    T_OPENAT: "openat",
    T_OPENAT2: "openat2",
    T_UNSHARE: "unshare",
    T_SETNS: "setns",
    T_CONNECT: "connect",
    T_FORK: "process_fork",
    T_EXIT: "process_exit",
    T_RENAME: "rename",
    T_UNLINK: "unlink",
    T_CHMOD: "chmod",
    T_MOUNT: "mount",
}
EXEC_TYPES = frozenset({T_EXECVE, T_EXECVEAT})
OPEN_TYPES = frozenset({T_OPEN, T_OPENAT, T_OPENAT2})
EVENT2_TYPES = OPEN_TYPES | {T_MOUNT}  # opens (resolved, typed) and mount (source, target)
EVENT4_TYPES = frozenset({T_RENAME, T_UNLINK, T_CHMOD})  # typed paths + resolved base directories

# Positions in an unpacked record: struct mt_hdr, then the type's strings (S1, S2: s, s2;
# event4 adds BASE, BASE2; an exec record's fields follow in EXEC's order from X_FILENAME).
I_TS, I_CGROUP, I_RET, I_A, I_TYPE, I_PID, I_TID, I_PPID, I_UID, I_GID = 0, 1, 2, 3, 9, 10, 11, 12, 13, 14
I_FLAGS, I_AUX, I_PSTART, I_COMM, I_S1, I_S2, I_BASE, I_BASE2 = 15, 16, 17, 18, 19, 20, 21, 22
X_FILENAME, X_ARGV, X_PRELOAD, X_LIBPATH, X_EXE_NAME, X_CG_LEAF, X_CG_PARENT = 19, 20, 21, 22, 23, 24, 25
X_STDIO, X_EXE_PATH, X_EXE_FACTS, X_FD_INO, X_AUDIT, X_TUNABLES, X_VLEN, X_SIZES = (
    26,
    42,
    43,
    50,
    54,
    55,
    56,
    60,
)


STDIO_NAMES = ("stdin", "stdout", "stderr")
#: (i_mode & S_IFMT) >> 12 → name in ``args.stdio``
FILE_TYPES = {0xC: "socket", 0x1: "pipe", 0x2: "chr", 0x8: "file", 0x4: "dir", 0x6: "block", 0xA: "symlink"}
#: char-device majors that are terminals: tty/ttyS, /dev/tty + console + ptmx, /dev/pts/*
TTY_MAJORS = frozenset({4, 5, *range(136, 144)})
NETWORK_FAMILIES = frozenset({"AF_INET", "AF_INET6"})


def _stdio(f: tuple[Any, ...], ino: tuple[int, ...] = (0, 0, 0, 0)) -> dict[str, Any]:
    """``args.stdio`` from the fd facts of an exec record (see docs/sensor.md).

    ``{"stdin": "socket", "stdin_family": "AF_INET", "stdout": ..., "stderr": "tty",
    "network": ["stdin", "stdout"]}``: a type per fd (``closed`` when not open,
    ``other`` for anonymous inodes like eventfd), a ``<name>_family`` for sockets, and
    ``network`` listing the streams that are AF_INET/AF_INET6 sockets.
    """
    rdev, family, ftype, is_open = f[0:4], f[4:8], f[8:12], f[12:16]
    out: dict[str, Any] = {}
    network: list[str] = []
    for i, name in enumerate(STDIO_NAMES):
        if not is_open[i]:
            out[name] = "closed"
            continue
        kind = FILE_TYPES.get(ftype[i], "other")
        if kind == "chr":
            major, minor = rdev[i] >> 20, rdev[i] & 0xFFFFF
            kind = "tty" if major in TTY_MAJORS else "null" if (major, minor) == (1, 3) else "chr"
        out[name] = kind
        if kind == "pipe" and ino[i]:  # pipe:[N]: the same N at both ends
            out[f"{name}_ino"] = ino[i]
        if kind == "socket":
            fam = F.AF_NAMES.get(family[i], str(family[i]))
            out[f"{name}_family"] = fam
            if fam in NETWORK_FAMILIES:
                network.append(name)
    out["network"] = network
    return out


class DecodeError(ValueError):
    """A record whose size or type does not match the header: reported, never dropped silently."""


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _argv(raw: bytes, length: int) -> list[str]:
    data = raw[:length].rstrip(b"\0")
    return [a.decode("utf-8", "replace") for a in data.split(b"\0")] if data else []


def _sockaddr(raw: bytes) -> dict[str, Any]:
    family = int.from_bytes(raw[0:2], "little")
    out: dict[str, Any] = {"family": F.AF_NAMES.get(family, str(family)), "addr": None, "port": None}
    if family == 2:
        out["port"] = int.from_bytes(raw[2:4], "big")
        out["addr"] = str(ipaddress.IPv4Address(raw[4:8]))
    elif family == 10:
        out["port"] = int.from_bytes(raw[2:4], "big")
        out["addr"] = str(ipaddress.IPv6Address(raw[8:24]))
    elif family == 1:
        path = raw[2:110]
        out["addr"] = ("@" + _cstr(path[1:])) if path[:1] == b"\0" else _cstr(path)
    return out


def normalize(path: str) -> str:
    """``.``, ``..`` and ``//`` removed lexically (no symlink is followed): "//dev/./shm//x" -> "/dev/shm/x"."""
    out = posixpath.normpath(path)
    return "/" + out.lstrip("/") if out.startswith("//") else out


def joined(base: str, typed: str, resolved: bool, truncated: bool) -> tuple[str, bool]:
    """The path of ``typed`` against its kernel-resolved directory ``base``; (path, resolved).

    A truncated or missing base leaves the typed text (normalised when absolute)."""
    if typed.startswith("/"):
        return normalize(typed), resolved and not truncated
    if not resolved or truncated or not base.startswith("/"):
        return typed, False
    return normalize(f"{base}/{typed}") if typed else base, True


def resolved_path(raw: bytes, hflags: int, typed: str) -> tuple[str, bool, bool]:
    """(path, path_resolved, path_truncated) of an open/mmap/exec record's resolved field.

    A truncated walk keeps only the tail, never a wrong absolute path: then ``path`` is
    the typed text. An fd with no name of its own (pipe, anon inode) keeps the typed text."""
    if not hflags & F_PATH_RESOLVED:
        return typed, False, False
    if hflags & F_PATH_TRUNC:
        return typed, False, True
    p = _cstr(raw)
    return (p, True, False) if p else (typed, False, False)


def exe_facts(
    ino: int, magic: int, dev: int, uid: int, nlink: int, mode: int, hflags: int = 0
) -> dict[str, Any]:
    """``args.exe_file``: what the kernel knows about the executed file (None when unknown).

    ``upper_layer`` (overlayfs only, else None): the file is in the container's writable
    layer, created or modified (copied up) since the container started: drift.
    ``in_image``: it also has a lower (image) copy, so it was modified, not created.
    ``interp``: the image has an ELF interpreter (AT_BASE != 0); false for a static
    program and for the dynamic loader run as a program.
    """
    if not mode:
        return {"exe_file": None}
    ovl = F.fs_name(magic) == "overlayfs"
    return {
        "exe_file": {
            "upper_layer": bool(hflags & F_OVL_UPPER) if ovl else None,
            "in_image": bool(hflags & F_OVL_LOWER) if ovl else None,
            "interp": not hflags & F_EXE_NO_INTERP,
            "fs": F.fs_name(magic),
            "dev": f"{dev >> 20}:{dev & 0xFFFFF}",
            "ino": ino,
            "nlink": nlink,
            "uid": uid,
            "mode": oct(mode & 0o7777),
            "setuid": bool(mode & 0o4000),
            "setgid": bool(mode & 0o2000),
        }
    }


def env_facts(
    preload: bytes,
    library_path: bytes,
    audit: bytes,
    tunables: bytes,
    vlen: tuple[int, ...],
    sizes: tuple[int, ...],
    hflags: int,
) -> dict[str, Any]:
    """The loader's variables found by the kernel's scan of the new environment.

    Each of ``ld_preload``, ``ld_library_path``, ``ld_audit``, ``glibc_tunables`` is the
    value's first ``ENV_LEN - 1`` bytes (None when absent); ``<name>_len`` its full length
    and ``<name>_truncated`` whether the value is longer than what was kept.
    """
    out: dict[str, Any] = {}
    for name, raw, v in zip(_ENV_NAMES, (preload, library_path, audit, tunables), vlen, strict=True):
        present = bool(v & ENV_PRESENT)
        n = v & ~ENV_PRESENT
        out[name] = (_cstr(raw) or None) if present else None  # "LD_PRELOAD=" alone loads nothing
        out[f"{name}_len"] = n if present else None
        out[f"{name}_truncated"] = present and n > ENV_LEN - 1
    size, scanned, count = sizes
    out["env_size"] = size
    out["env_scanned"] = scanned
    out["env_count"] = count
    out["env_truncated"] = bool(hflags & F_ENV_TRUNC)
    out["ld_trace"] = bool(hflags & F_ENV_LDTRACE)
    return out


_ENV_NAMES = ("ld_preload", "ld_library_path", "ld_audit", "glibc_tunables")


def _mode(mode: int) -> dict[str, Any]:
    return {"mode": oct(mode & 0o7777), "mode_bits": F.bits(mode & 0o7000 | mode & 0o111, F.MODE_BITS)}


def _mprotect_wregion(h_flags: int, a: tuple[int, ...]) -> dict[str, Any]:
    """W->X facts of an mprotect (a[3..5]: region start, length, earlier W->X count)."""
    hit = bool(h_flags & F_W_TO_X)
    return {
        "w_to_x": hit,
        "region_start": a[3] if hit else None,
        "region_len": a[4] if hit else None,
        "region_kind": REGION_KINDS.get((h_flags & F_WREG_KIND_MASK) >> F_WREG_SHIFT) if hit else None,
        "wx_count": a[5] if hit else 0,
        "region_overflow": bool(h_flags & F_WREG_OVERFLOW),
    }


def open_owners(a5: int, known: int) -> dict[str, int]:
    """Write opens: the owner (host kernel uid) of the opened file and of its directory.

    a[5] = file uid | dir uid << 32; ``known`` bit 1 / 2 says which was read.
    """
    out: dict[str, int] = {}
    if known & 1:
        out["file_uid"] = a5 & 0xFFFFFFFF
    if known & 2:
        out["dir_uid"] = a5 >> 32
    return out


def _mmap_wregion(h_flags: int, h_aux: int) -> dict[str, Any]:
    """W->X facts of a MAP_FIXED executable mmap over writable memory (aux: earlier W->X count)."""
    hit = bool(h_flags & F_W_TO_X)
    return {
        "w_to_x": hit,
        "region_kind": REGION_KINDS.get((h_flags & F_WREG_KIND_MASK) >> F_WREG_SHIFT) if hit else None,
        "wx_count": h_aux if hit else 0,
        "region_overflow": bool(h_flags & F_WREG_OVERFLOW),
    }


#: setns fd kinds (a[3]) → ``args.fd_kind``; 0: the fd was not open
FD_KINDS = {0: None, 1: "nsfs", 2: "pidfd", 3: "other"}
F_NS_HOST = 0x200000
F_MOUNT_API = 0x400000


def _setns(a: tuple[int, ...], h_flags: int) -> dict[str, Any]:
    """setns facts resolved in the kernel: a[2] types joined, a[3] fd kind, a[4] pidfd target, a[5] ns inode."""
    kind = FD_KINDS.get(a[3], "other")
    return {
        "fd": F.s32(a[0]),
        "nstype": F.bits(a[1], F.CLONE_FLAGS),
        "ns_joined": F.bits(a[2], F.CLONE_FLAGS),
        "fd_kind": kind,
        "target_pid": a[4] if kind == "pidfd" else None,
        "ns_inum": a[5] if kind == "nsfs" else None,
        "ns_host": bool(h_flags & F_NS_HOST),
    }


_CACHE_MAX = 4096


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - 0x100000000 if v & 0x80000000 else v


class Decoder:
    """Decodes raw records; ``clock_offset`` = wall − monotonic seconds at start-up.

    One path for every type: the type in the header picks its row of ``_ROWS`` (the
    struct to unpack, the function that builds ``args``); sizes and types are checked
    for every record. Comm and flag names are cached (flag lists are shared between
    events: read-only).
    """

    def __init__(self, host: str, clock_offset: float, *, lean: bool = False) -> None:
        self.host = host
        self.clock_offset = clock_offset
        #: leave out what wire v2 restores on the worker side (``v``, ``id``, ``time``,
        #: ``host``, ``source``: schemas.wire): the sensor publishing v2 never builds them
        self.lean = lean
        # value -> decoded name(s); bounded.
        self._comms: dict[bytes, str] = {}
        self._open_flags: dict[int, list[str]] = {}
        self._prot_flags: dict[int, list[str]] = {}
        self._map_flags: dict[int, list[str]] = {}

    def _cached(self, cache: dict[Any, Any], key: Any, fn: Callable[[Any], Any]) -> Any:
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        value = cache[key] = fn(key)
        return value

    def _prot(self, v: int) -> list[str]:
        return self._prot_flags.get(v) or self._cached(self._prot_flags, v, F.prot_flags)

    def decode(self, raw: bytes) -> dict[str, Any]:
        n = len(raw)
        if n < HDR.size:
            raise DecodeError(f"record of {n} bytes is shorter than the header ({HDR.size})")
        t = _type_of(raw, TYPE_OFFSET)[0]
        row = _ROWS.get(t)
        if row is None:
            raise DecodeError(f"unknown event type {t}")
        size, unpack, build = row
        if n < size:
            raise DecodeError(f"{EVENT_TYPES[t]} record of {n} bytes, expected {size}")
        f = unpack(raw)
        ts_ns, tid = f[I_TS], f[I_TID]
        c = f[I_COMM]
        process = {
            "pid": f[I_PID],
            "tid": tid,
            "ppid": f[I_PPID],
            "uid": f[I_UID],
            "gid": f[I_GID],
            "comm": self._comms.get(c) or self._cached(self._comms, c, _cstr),
            "start_boottime_ns": f[I_PSTART],
        }
        args = build(self, f, f[I_A:I_TYPE], f[I_FLAGS], f[I_AUX])
        out = {
            "ts_ns": ts_ns,
            "syscall": EVENT_TYPES[t],
            "ret": f[I_RET],
            "args": args,
            "process": process,
            "cgroup_id": f[I_CGROUP],
            "container_id": None,
        }
        if not self.lean:
            out = {
                "v": 1,
                "id": f"{self.host}:{ts_ns}:{tid}",
                "time": ts_ns / 1e9 + self.clock_offset,
                "host": self.host,
                **out,
                "source": "syscall",
            }
        if t in EXEC_TYPES and f[X_CG_LEAF][0]:
            # the kernel's name for the cgroup directory: "<parent>/<leaf>"
            out["cgroup_name"] = f"{_cstr(f[X_CG_PARENT])}/{_cstr(f[X_CG_LEAF])}"
        return out


#: (decoder, the unpacked record, its hdr.a[6], hdr.flags, hdr.aux) -> ``args``
Build = Callable[["Decoder", tuple[Any, ...], tuple[int, ...], int, int], dict[str, Any]]


def _exec(d: Decoder, f: tuple[Any, ...], a: tuple[int, ...], hflags: int, aux: int) -> dict[str, Any]:
    exe_path, _, exe_trunc = resolved_path(f[X_EXE_PATH], hflags, "")
    args: dict[str, Any] = {
        "filename": _cstr(f[X_FILENAME]),
        "argv": _argv(f[X_ARGV], aux),
        "argv_truncated": bool(hflags & F_ARGV_TRUNC),
        "dirfd": F.s32(a[1]),
        "flags": F.bits(a[2], F.AT_FLAGS),
        "exe_memfd": bool(hflags & F_EXE_MEMFD),
        "exe_deleted": bool(hflags & F_EXE_DELETED),
        "exe_name": _cstr(f[X_EXE_NAME]) or None,
        **env_facts(
            f[X_PRELOAD],
            f[X_LIBPATH],
            f[X_AUDIT],
            f[X_TUNABLES],
            f[X_VLEN : X_VLEN + 4],
            f[X_SIZES : X_SIZES + 3],
            hflags,
        ),
        "exe_path": exe_path or None,
        "exe_path_truncated": exe_trunc,
        **exe_facts(
            f[X_EXE_FACTS],
            f[X_EXE_FACTS + 1],
            f[X_EXE_FACTS + 2],
            f[X_EXE_FACTS + 3],
            f[X_EXE_FACTS + 4],
            f[X_EXE_FACTS + 5],
            hflags,
        ),
    }
    if f[I_RET] == 0:  # a failed exec has no new image to describe
        args["stdio"] = _stdio(f[X_STDIO:X_EXE_PATH], f[X_FD_INO : X_FD_INO + 4])
        args["script"] = script_run(args["filename"], args["argv"])
        # a multi-call binary picks its program from argv, not from its file or comm
        args["applet"] = busybox_applet(args["argv"]) if exe_path.endswith("/busybox") else None
    return args


def _open(d: Decoder, f: tuple[Any, ...], a: tuple[int, ...], hflags: int, aux: int) -> dict[str, Any]:
    typed = _cstr(f[I_S2])
    s = f[I_S1]
    if hflags & F_PATH_RESOLVED and not hflags & F_PATH_TRUNC and s[:1] == b"/":
        path, trunc = _cstr(s), False  # the common case: a whole resolved path
    else:
        path, _, trunc = resolved_path(s, hflags, typed)
    v = a[2]
    args = {
        "dirfd": _s32(a[0]),
        "path": path,
        "path_typed": typed,
        "path_truncated": trunc,
        "flags": d._open_flags.get(v) or d._cached(d._open_flags, v, F.open_flags),
        "mode": oct(a[3] & 0o7777),
    }
    if f[I_TYPE] == T_OPENAT2:
        args["resolve"] = F.bits(a[4], F.RESOLVE_FLAGS)
    if aux:
        args.update(open_owners(a[5], aux))
    return args


def _mount(d: Decoder, f: tuple[Any, ...], a: tuple[int, ...], hflags: int, aux: int) -> dict[str, Any]:
    return {
        "source": _cstr(f[I_S1]),
        "target": _cstr(f[I_S2]),
        "fstype": _cstr(struct.pack("<QQ", a[4], a[5])),
        "flags": F.bits(a[2], F.MS_FLAGS),
        # mount(2), or the new mount API's move_mount (fsopen/fsmount, open_tree)
        "api": "move_mount" if f[I_FLAGS] & F_MOUNT_API else "mount",
    }


def _path_side(f: tuple[Any, ...], hflags: int) -> tuple[str, str, bool, dict[str, Any]]:
    """(typed path, joined path, resolved, common args) of an unlink/rename/chmod record."""
    s1 = _cstr(f[I_S1])
    p1, r1 = joined(_cstr(f[I_BASE]), s1, bool(hflags & F_PATH_RESOLVED), bool(hflags & F_PATH_TRUNC))
    side = {"path_typed": s1, "path_resolved": r1, "path_truncated": bool(hflags & F_PATH_TRUNC)}
    return s1, p1, r1, side


def _rename(d: Decoder, f: tuple[Any, ...], a: tuple[int, ...], hflags: int, aux: int) -> dict[str, Any]:
    s1, p1, r1, _ = _path_side(f, hflags)
    s2 = _cstr(f[I_S2])
    p2, r2 = joined(_cstr(f[I_BASE2]), s2, bool(hflags & F_PATH2_RESOLVED), bool(hflags & F_PATH2_TRUNC))
    return {
        "olddirfd": F.s32(a[0]),
        "oldpath": p1,
        "oldpath_typed": s1,
        "newdirfd": F.s32(a[2]),
        "newpath": p2,
        "newpath_typed": s2,
        "path_resolved": r1 and r2,
        "path_truncated": bool(hflags & (F_PATH_TRUNC | F_PATH2_TRUNC)),
        "flags": F.bits(a[4], F.RENAME_FLAGS),
    }


def _unlink(d: Decoder, f: tuple[Any, ...], a: tuple[int, ...], hflags: int, aux: int) -> dict[str, Any]:
    _, p1, _, side = _path_side(f, hflags)
    return {"dirfd": F.s32(a[0]), "path": p1, **side, "flags": F.bits(a[2], F.AT_FLAGS)}


def _chmod(d: Decoder, f: tuple[Any, ...], a: tuple[int, ...], hflags: int, aux: int) -> dict[str, Any]:
    _, p1, _, side = _path_side(f, hflags)
    return {"dirfd": F.s32(a[0]), "path": p1, **side, **_mode(a[2])}


def _mmap(d: Decoder, f: tuple[Any, ...], a: tuple[int, ...], hflags: int, aux: int) -> dict[str, Any]:
    v = a[3]
    args = {
        "addr": a[0],
        "len": a[1],
        "prot": d._prot(a[2]),
        "flags": d._map_flags.get(v) or d._cached(d._map_flags, v, F.map_flags),
        "fd": _s32(a[4]),
        "offset": a[5],
        "wx": bool(hflags & F_WX),
        **_mmap_wregion(hflags, aux),
    }
    if hflags & F_PATH_RESOLVED:  # a file-backed executable mapping
        path, _, trunc = resolved_path(f[I_S1], hflags, "")
        args["path"], args["path_truncated"] = path or None, trunc
        args["file_shmem"] = bool(hflags & F_MAP_SHMEM)
        args["file_nlink0"] = bool(hflags & F_MAP_NLINK0)
        args["file_upper_layer"] = bool(hflags & F_OVL_UPPER)
        args["file_in_image"] = bool(hflags & F_OVL_LOWER) if hflags & F_OVL_UPPER else None
    return args


def _mprotect(d: Decoder, f: tuple[Any, ...], a: tuple[int, ...], hflags: int, aux: int) -> dict[str, Any]:
    return {
        "addr": a[0],
        "len": a[1],
        "prot": d._prot(a[2]),
        "prev_prot": d._prot(aux) if hflags & F_PREV_KNOWN else None,
        "wx": bool(hflags & F_WX),
        **_mprotect_wregion(hflags, a),
    }


def _memfd(d: Decoder, f: tuple[Any, ...], a: tuple[int, ...], hflags: int, aux: int) -> dict[str, Any]:
    return {"name": _cstr(f[I_S1]), "flags": F.bits(a[1], F.MFD_FLAGS)}


def _ptrace(d: Decoder, f: tuple[Any, ...], a: tuple[int, ...], hflags: int, aux: int) -> dict[str, Any]:
    return {"request": F.ptrace_request(a[0]), "target_pid": F.s32(a[1]), "addr": a[2], "data": a[3]}


def _process_vm(d: Decoder, f: tuple[Any, ...], a: tuple[int, ...], hflags: int, aux: int) -> dict[str, Any]:
    return {"target_pid": F.s32(a[0]), "liovcnt": a[2], "riovcnt": a[4], "flags": a[5]}


def _unshare(d: Decoder, f: tuple[Any, ...], a: tuple[int, ...], hflags: int, aux: int) -> dict[str, Any]:
    return {"flags": F.bits(a[0], F.CLONE_FLAGS)}


def _setns_args(d: Decoder, f: tuple[Any, ...], a: tuple[int, ...], hflags: int, aux: int) -> dict[str, Any]:
    return _setns(a, f[I_FLAGS])


def _connect(d: Decoder, f: tuple[Any, ...], a: tuple[int, ...], hflags: int, aux: int) -> dict[str, Any]:
    return {"fd": F.s32(a[0]), **_sockaddr(f[I_S1])}


def _fork(d: Decoder, f: tuple[Any, ...], a: tuple[int, ...], hflags: int, aux: int) -> dict[str, Any]:
    return {"child_pid": a[0]}


def _exit(d: Decoder, f: tuple[Any, ...], a: tuple[int, ...], hflags: int, aux: int) -> dict[str, Any]:
    code = a[0]
    return {"exit_code": (code >> 8) & 0xFF, "signal": code & 0x7F or None}


#: enum mt_type → (the record's struct, the builder of its ``args``): the one decoding table.
LAYOUTS: dict[int, tuple[struct.Struct, Build]] = {
    T_EXECVE: (EXEC, _exec),
    T_EXECVEAT: (EXEC, _exec),
    T_MEMFD_CREATE: (EVENT, _memfd),
    T_PTRACE: (EVENT, _ptrace),
    T_PROCESS_VM_WRITEV: (EVENT, _process_vm),
    T_PROCESS_VM_READV: (EVENT, _process_vm),
    T_MPROTECT: (EVENT, _mprotect),
    T_MMAP: (EVENT, _mmap),
    T_OPEN: (EVENT2, _open),
    T_OPENAT: (EVENT2, _open),
    T_OPENAT2: (EVENT2, _open),
    T_UNSHARE: (EVENT, _unshare),
    T_SETNS: (EVENT, _setns_args),
    T_CONNECT: (EVENT, _connect),
    T_FORK: (EVENT, _fork),
    T_EXIT: (EVENT, _exit),
    T_RENAME: (EVENT4, _rename),
    T_UNLINK: (EVENT4, _unlink),
    T_CHMOD: (EVENT4, _chmod),
    T_MOUNT: (EVENT2, _mount),
}
#: The table as decode reads it: (size, unpack, build) per type.
_ROWS: dict[int, tuple[int, Callable[[bytes], tuple[Any, ...]], Build]] = {
    t: (layout.size, layout.unpack_from, build) for t, (layout, build) in LAYOUTS.items()
}
_type_of = struct.Struct("<I").unpack_from
#: Types carried by ``struct mt_event`` (one string): the ones a wide-open node emits most.
SIMPLE_TYPES = frozenset(t for t, (layout, _) in LAYOUTS.items() if layout is EVENT)
