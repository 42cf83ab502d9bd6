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

F_EXE_MEMFD, F_EXE_DELETED, F_ARGV_TRUNC, F_WX, F_W_TO_X, F_PREV_KNOWN = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
#: W->X region facts (mmap/mprotect): region kind in bits 16..19, table overflow (sensor.bpf.c)
F_WREG_SHIFT, F_WREG_KIND_MASK, F_WREG_OVERFLOW = 16, 0xF0000, 0x100000
#: kind of the writable region a W->X overlapped → ``args.region_kind``
REGION_KINDS = {1: "anon", 2: "file", 3: "stack", 4: "data", 5: "heap", 6: "unknown"}
F_PATH_RESOLVED, F_PATH_TRUNC, F_PATH2_RESOLVED, F_PATH2_TRUNC = 0x40, 0x80, 0x100, 0x200
F_MAP_SHMEM, F_MAP_NLINK0 = 0x400, 0x800
F_ENV_TRUNC = 0x1000  # exec: the environment scan stopped before its end
F_EXE_NO_INTERP = 0x2000  # exec: AT_BASE 0 (no ELF interpreter: static, or ld.so run as a program)
F_ENV_LDTRACE = 0x800000  # exec: LD_TRACE_LOADED_OBJECTS in the environment (ldd)
#: overlayfs (exec's file, an executable mmap's file): in the upper layer / has a lower copy
F_OVL_UPPER, F_OVL_LOWER = 0x4000, 0x8000
ENV_PRESENT = 0x80000000  # env_vlen: the variable was seen (its value may be empty)

#: enum mt_type → syscall name in events
EVENT_TYPES: dict[int, str] = {
    1: "execve",
    2: "execveat",
    3: "memfd_create",
    4: "ptrace",
    5: "process_vm_writev",
    6: "process_vm_readv",
    7: "mprotect",
    8: "mmap",
    9: "open",
    10: "openat",
    11: "openat2",
    12: "unshare",
    13: "setns",
    14: "connect",
    15: "process_fork",
    16: "process_exit",
    17: "rename",
    18: "unlink",
    19: "chmod",
    20: "mount",
}
EXEC_TYPES = {1, 2}
OPEN_TYPES = frozenset({9, 10, 11})
EVENT2_TYPES = {9, 10, 11, 20}  # opens (resolved, typed) and mount (source, target)
EVENT4_TYPES = {17, 18, 19}  # unlink, rename, chmod: typed paths + resolved base directories


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


def _path_args(typed: str, s: bytes, hflags: int) -> dict[str, Any]:
    path, _, trunc = resolved_path(s, hflags, typed)
    return {"path": path, "path_typed": typed, "path_truncated": trunc}


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


def _args_simple(t: int, a: tuple[int, ...], s: bytes, h_aux: int, h_flags: int) -> dict[str, Any]:
    if t == 8:  # mmap
        out = {
            "addr": a[0],
            "len": a[1],
            "prot": F.prot_flags(a[2]),
            "flags": F.map_flags(a[3]),
            "fd": F.s32(a[4]),
            "offset": a[5],
            "wx": bool(h_flags & F_WX),
            **_mmap_wregion(h_flags, h_aux),
        }
        if h_flags & F_PATH_RESOLVED:  # a file-backed executable mapping
            path, _, trunc = resolved_path(s, h_flags, "")
            out["path"], out["path_truncated"] = path or None, trunc
            out["file_shmem"], out["file_nlink0"] = bool(h_flags & F_MAP_SHMEM), bool(h_flags & F_MAP_NLINK0)
            out["file_upper_layer"] = bool(h_flags & F_OVL_UPPER)
            out["file_in_image"] = bool(h_flags & F_OVL_LOWER) if h_flags & F_OVL_UPPER else None
        return out
    if t == 7:  # mprotect
        return {
            "addr": a[0],
            "len": a[1],
            "prot": F.prot_flags(a[2]),
            "prev_prot": F.prot_flags(h_aux) if h_flags & F_PREV_KNOWN else None,
            "wx": bool(h_flags & F_WX),
            **_mprotect_wregion(h_flags, a),
        }
    if t == 3:
        return {"name": _cstr(s), "flags": F.bits(a[1], F.MFD_FLAGS)}
    if t == 4:
        return {"request": F.ptrace_request(a[0]), "target_pid": F.s32(a[1]), "addr": a[2], "data": a[3]}
    if t in (5, 6):
        return {"target_pid": F.s32(a[0]), "liovcnt": a[2], "riovcnt": a[4], "flags": a[5]}
    if t == 12:
        return {"flags": F.bits(a[0], F.CLONE_FLAGS)}
    if t == 13:
        return _setns(a, h_flags)
    if t == 14:
        return {"fd": F.s32(a[0]), **_sockaddr(s)}
    if t == 15:
        return {"child_pid": a[0]}
    if t == 16:
        code = a[0]
        return {"exit_code": (code >> 8) & 0xFF, "signal": code & 0x7F or None}
    return {}


#: Types carried by ``struct mt_event`` (one string): the ones a wide-open node emits most.
SIMPLE_TYPES = frozenset(EVENT_TYPES) - EXEC_TYPES - EVENT2_TYPES - EVENT4_TYPES
_CACHE_MAX = 4096


class Decoder:
    """Decodes raw records; ``clock_offset`` = wall − monotonic seconds at start-up.

    :meth:`decode` is the sensor's per-event hot path: a record of exactly
    ``struct mt_event``'s size (every one-string type, what a busy node emits most) is
    decoded inline with cached comm and flag names; everything else takes the general
    path, which also reports malformed records.
    """

    def __init__(self, host: str, clock_offset: float) -> None:
        self.host = host
        self.clock_offset = clock_offset
        self._unpack_event: Callable[[bytes], tuple[Any, ...]] = EVENT.unpack_from
        self._unpack_event2: Callable[[bytes], tuple[Any, ...]] = EVENT2.unpack_from
        self._unpack_exec: Callable[[bytes], tuple[Any, ...]] = EXEC.unpack_from
        # value -> decoded name(s); bounded. Flag lists are shared between events: read-only.
        self._comms: dict[bytes, str] = {}
        self._open_flags: dict[int, list[str]] = {}
        self._prot_flags: dict[int, list[str]] = {}
        self._map_flags: dict[int, list[str]] = {}

    def _cached(self, cache: dict[Any, Any], key: Any, fn: Callable[[Any], Any]) -> Any:
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        value = cache[key] = fn(key)
        return value

    def decode(self, raw: bytes) -> dict[str, Any]:
        n = len(raw)
        if n == EVENT2.size:
            f = self._unpack_event2(raw)
            t = f[9]
            if t not in OPEN_TYPES:
                return self._decode(raw)
            hflags = f[15]
            d = f[3] & 0xFFFFFFFF
            v = f[5]
            typed = f[20].split(b"\0", 1)[0].decode("utf-8", "replace")
            if hflags & F_PATH_RESOLVED and not hflags & F_PATH_TRUNC and f[19][:1] == b"/":
                path, trunc = f[19].split(b"\0", 1)[0].decode("utf-8", "replace"), False
            else:
                path, _, trunc = resolved_path(f[19], hflags, typed)
            args = {
                "dirfd": d - 0x100000000 if d & 0x80000000 else d,
                "path": path,
                "path_typed": typed,
                "path_truncated": trunc,
                "flags": self._open_flags.get(v) or self._cached(self._open_flags, v, F.open_flags),
                "mode": oct(f[6] & 0o7777),
            }
            if t == 11:
                args["resolve"] = F.bits(f[7], F.RESOLVE_FLAGS)
            if f[16]:
                args.update(open_owners(f[8], f[16]))
            return self._event(f, t, args)
        if n != EVENT.size:
            return self._decode(raw)
        f = self._unpack_event(raw)
        t = f[9]
        if t not in SIMPLE_TYPES:
            return self._decode(raw)
        hflags = f[15]
        if t == 7:  # mprotect
            v = f[5]
            prot = self._prot_flags.get(v) or self._cached(self._prot_flags, v, F.prot_flags)
            if hflags & F_PREV_KNOWN:
                v = f[16]
                prev = self._prot_flags.get(v) or self._cached(self._prot_flags, v, F.prot_flags)
            else:
                prev = None
            args = {
                "addr": f[3],
                "len": f[4],
                "prot": prot,
                "prev_prot": prev,
                "wx": bool(hflags & F_WX),
                **_mprotect_wregion(hflags, f[3:9]),
            }
        elif t == 8:  # mmap
            v = f[5]
            prot = self._prot_flags.get(v) or self._cached(self._prot_flags, v, F.prot_flags)
            v = f[6]
            d = f[7] & 0xFFFFFFFF
            args = {
                "addr": f[3],
                "len": f[4],
                "prot": prot,
                "flags": self._map_flags.get(v) or self._cached(self._map_flags, v, F.map_flags),
                "fd": d - 0x100000000 if d & 0x80000000 else d,
                "offset": f[8],
                "wx": bool(hflags & F_WX),
                **_mmap_wregion(hflags, f[16]),
            }
            if hflags & F_PATH_RESOLVED:  # a file-backed executable mapping
                path, _, trunc = resolved_path(f[19], hflags, "")
                args["path"], args["path_truncated"] = path or None, trunc
                args["file_shmem"] = bool(hflags & F_MAP_SHMEM)
                args["file_nlink0"] = bool(hflags & F_MAP_NLINK0)
                args["file_upper_layer"] = bool(hflags & F_OVL_UPPER)
                args["file_in_image"] = bool(hflags & F_OVL_LOWER) if hflags & F_OVL_UPPER else None
        else:
            args = _args_simple(t, f[3:9], f[19], f[16], hflags)
        return self._event(f, t, args)

    def _event(self, f: tuple[Any, ...], t: int, args: dict[str, Any]) -> dict[str, Any]:
        ts_ns, tid = f[0], f[11]
        c = f[18]
        return {
            "v": 1,
            "id": f"{self.host}:{ts_ns}:{tid}",
            "ts_ns": ts_ns,
            "time": ts_ns / 1e9 + self.clock_offset,
            "host": self.host,
            "syscall": EVENT_TYPES[t],
            "ret": f[2],
            "args": args,
            "process": {
                "pid": f[10],
                "tid": tid,
                "ppid": f[12],
                "uid": f[13],
                "gid": f[14],
                "comm": self._comms.get(c) or self._cached(self._comms, c, _cstr),
                "start_boottime_ns": f[17],
            },
            "cgroup_id": f[1],
            "container_id": None,
            "source": "syscall",
        }

    def _decode(self, raw: bytes) -> dict[str, Any]:
        """The general path: every record type, with size and type checks."""
        if len(raw) < HDR.size:
            raise DecodeError(f"record of {len(raw)} bytes is shorter than the header ({HDR.size})")
        t = int.from_bytes(raw[TYPE_OFFSET : TYPE_OFFSET + 4], "little")
        name = EVENT_TYPES.get(t)
        if name is None:
            raise DecodeError(f"unknown event type {t}")
        expected = (
            EXEC.size
            if t in EXEC_TYPES
            else EVENT2.size
            if t in EVENT2_TYPES
            else EVENT4.size
            if t in EVENT4_TYPES
            else EVENT.size
        )
        if len(raw) < expected:
            raise DecodeError(f"{name} record of {len(raw)} bytes, expected {expected}")
        if t in EXEC_TYPES:
            f = self._unpack_exec(raw)
        elif t in EVENT2_TYPES:
            f = self._unpack_event2(raw)
        elif t in EVENT4_TYPES:
            f = EVENT4.unpack_from(raw)
        else:
            f = self._unpack_event(raw)
        ts_ns, cgroup_id, ret = f[0], f[1], f[2]
        a = f[3:9]
        _, pid, tid, ppid, uid, gid, hflags, aux = f[9:17]
        pstart = f[17]
        comm = _cstr(f[18])
        cgroup_name: str | None = None
        if t in EXEC_TYPES:
            filename, argv_raw, ldp, ldlp, exe_name, cg_leaf, cg_parent = f[19:26]
            stdio = _stdio(f[26:42], f[50:54]) if ret == 0 else None
            exe_path, _, exe_trunc = resolved_path(f[42], hflags, "")
            if cg_leaf[0]:  # the kernel's name for the cgroup directory: "<parent>/<leaf>"
                cgroup_name = f"{_cstr(cg_parent)}/{_cstr(cg_leaf)}"
            args: dict[str, Any] = {
                "filename": _cstr(filename),
                "argv": _argv(argv_raw, aux),
                "argv_truncated": bool(hflags & F_ARGV_TRUNC),
                "dirfd": F.s32(a[1]),
                "flags": F.bits(a[2], F.AT_FLAGS),
                "exe_memfd": bool(hflags & F_EXE_MEMFD),
                "exe_deleted": bool(hflags & F_EXE_DELETED),
                "exe_name": _cstr(exe_name) or None,
                **env_facts(ldp, ldlp, f[54], f[55], f[56:60], f[60:63], hflags),
                "exe_path": exe_path or None,
                "exe_path_truncated": exe_trunc,
                **exe_facts(f[43], f[44], f[45], f[46], f[47], f[48], hflags),
            }
            if stdio is not None:  # a failed exec has no new image to describe
                args["stdio"] = stdio
        elif t in OPEN_TYPES:
            typed = _cstr(f[20])
            args = {
                "dirfd": F.s32(a[0]),
                **_path_args(typed, f[19], hflags),
                "flags": F.open_flags(a[2]),
                "mode": oct(a[3] & 0o7777),
            }
            if t == 11:
                args["resolve"] = F.bits(a[4], F.RESOLVE_FLAGS)
            if aux:
                args.update(open_owners(a[5], aux))
        elif t in EVENT4_TYPES:
            s1, s2, b1, b2 = _cstr(f[19]), _cstr(f[20]), _cstr(f[21]), _cstr(f[22])
            p1, r1 = joined(b1, s1, bool(hflags & F_PATH_RESOLVED), bool(hflags & F_PATH_TRUNC))
            side: dict[str, Any] = {
                "path_typed": s1,
                "path_resolved": r1,
                "path_truncated": bool(hflags & F_PATH_TRUNC),
            }
            if t == 17:
                p2, r2 = joined(b2, s2, bool(hflags & F_PATH2_RESOLVED), bool(hflags & F_PATH2_TRUNC))
                args = {
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
            elif t == 18:
                args = {"dirfd": F.s32(a[0]), "path": p1, **side, "flags": F.bits(a[2], F.AT_FLAGS)}
            else:
                args = {"dirfd": F.s32(a[0]), "path": p1, **side, **_mode(a[2])}
        elif t in EVENT2_TYPES:  # mount
            s1, s2 = _cstr(f[19]), _cstr(f[20])
            fstype = struct.pack("<QQ", a[4], a[5])
            args = {
                "source": s1,
                "target": s2,
                "fstype": _cstr(fstype),
                "flags": F.bits(a[2], F.MS_FLAGS),
                # mount(2), or the new mount API's move_mount (fsopen/fsmount, open_tree)
                "api": "move_mount" if hflags & F_MOUNT_API else "mount",
            }
        else:
            args = _args_simple(t, a, f[19], aux, hflags)
        out = {
            "v": 1,
            "id": f"{self.host}:{ts_ns}:{tid}",
            "ts_ns": ts_ns,
            "time": ts_ns / 1e9 + self.clock_offset,
            "host": self.host,
            "syscall": name,
            "ret": ret,
            "args": args,
            "process": {
                "pid": pid,
                "tid": tid,
                "ppid": ppid,
                "uid": uid,
                "gid": gid,
                "comm": comm,
                "start_boottime_ns": pstart,
            },
            "cgroup_id": cgroup_id,
            "container_id": None,
            "source": "syscall",
        }
        if cgroup_name:
            out["cgroup_name"] = cgroup_name
        return out
