"""Flag and constant names for decoded syscall arguments (x86_64 Linux values).

Pure tables and helpers: numbers in, names out. Unknown bits are kept as a hex
string so nothing is silently dropped.
"""

from __future__ import annotations

from functools import lru_cache

O_FLAGS = {
    0o100: "O_CREAT",
    0o200: "O_EXCL",
    0o400: "O_NOCTTY",
    0o1000: "O_TRUNC",
    0o2000: "O_APPEND",
    0o4000: "O_NONBLOCK",
    0o10000: "O_DSYNC",
    0o20000: "O_ASYNC",
    0o40000: "O_DIRECT",
    0o100000: "O_LARGEFILE",
    0o200000: "O_DIRECTORY",
    0o400000: "O_NOFOLLOW",
    0o1000000: "O_NOATIME",
    0o2000000: "O_CLOEXEC",
    0o4000000: "__O_SYNC",
    0o10000000: "O_PATH",
    0o20000000: "__O_TMPFILE",
}
PROT_FLAGS = {
    0x1: "PROT_READ",
    0x2: "PROT_WRITE",
    0x4: "PROT_EXEC",
    0x01000000: "PROT_GROWSDOWN",
    0x02000000: "PROT_GROWSUP",
}
MAP_FLAGS = {
    0x10: "MAP_FIXED",
    0x20: "MAP_ANONYMOUS",
    0x40: "MAP_32BIT",
    0x100: "MAP_GROWSDOWN",
    0x800: "MAP_DENYWRITE",
    0x1000: "MAP_EXECUTABLE",
    0x2000: "MAP_LOCKED",
    0x4000: "MAP_NORESERVE",
    0x8000: "MAP_POPULATE",
    0x10000: "MAP_NONBLOCK",
    0x20000: "MAP_STACK",
    0x40000: "MAP_HUGETLB",
    0x80000: "MAP_SYNC",
    0x100000: "MAP_FIXED_NOREPLACE",
}
MAP_TYPES = {0x1: "MAP_SHARED", 0x2: "MAP_PRIVATE", 0x3: "MAP_SHARED_VALIDATE"}
MFD_FLAGS = {
    0x1: "MFD_CLOEXEC",
    0x2: "MFD_ALLOW_SEALING",
    0x4: "MFD_HUGETLB",
    0x8: "MFD_NOEXEC_SEAL",
    0x10: "MFD_EXEC",
}
AT_FLAGS = {
    0x100: "AT_SYMLINK_NOFOLLOW",
    0x200: "AT_REMOVEDIR",
    0x400: "AT_SYMLINK_FOLLOW",
    0x800: "AT_NO_AUTOMOUNT",
    0x1000: "AT_EMPTY_PATH",
}
CLONE_FLAGS = {
    0x80: "CLONE_NEWTIME",
    0x200: "CLONE_FS",
    0x400: "CLONE_FILES",
    0x20000: "CLONE_NEWNS",
    0x40000: "CLONE_SYSVSEM",
    0x02000000: "CLONE_NEWCGROUP",
    0x04000000: "CLONE_NEWUTS",
    0x08000000: "CLONE_NEWIPC",
    0x10000000: "CLONE_NEWUSER",
    0x20000000: "CLONE_NEWPID",
    0x40000000: "CLONE_NEWNET",
}
RESOLVE_FLAGS = {
    0x1: "RESOLVE_NO_XDEV",
    0x2: "RESOLVE_NO_MAGICLINKS",
    0x4: "RESOLVE_NO_SYMLINKS",
    0x8: "RESOLVE_BENEATH",
    0x10: "RESOLVE_IN_ROOT",
    0x20: "RESOLVE_CACHED",
}
MS_FLAGS = {
    0x1: "MS_RDONLY",
    0x2: "MS_NOSUID",
    0x4: "MS_NODEV",
    0x8: "MS_NOEXEC",
    0x10: "MS_SYNCHRONOUS",
    0x20: "MS_REMOUNT",
    0x40: "MS_MANDLOCK",
    0x80: "MS_DIRSYNC",
    0x400: "MS_NOATIME",
    0x800: "MS_NODIRATIME",
    0x1000: "MS_BIND",
    0x2000: "MS_MOVE",
    0x4000: "MS_REC",
    0x8000: "MS_SILENT",
    0x10000: "MS_POSIXACL",
    0x20000: "MS_UNBINDABLE",
    0x40000: "MS_PRIVATE",
    0x80000: "MS_SLAVE",
    0x100000: "MS_SHARED",
    0x200000: "MS_RELATIME",
}
MODE_BITS = {
    0o4000: "S_ISUID",
    0o2000: "S_ISGID",
    0o1000: "S_ISVTX",
    0o100: "S_IXUSR",
    0o10: "S_IXGRP",
    0o1: "S_IXOTH",
}
RENAME_FLAGS = {0x1: "RENAME_NOREPLACE", 0x2: "RENAME_EXCHANGE", 0x4: "RENAME_WHITEOUT"}
PTRACE_REQUESTS = {
    0: "PTRACE_TRACEME",
    1: "PTRACE_PEEKTEXT",
    2: "PTRACE_PEEKDATA",
    3: "PTRACE_PEEKUSR",
    4: "PTRACE_POKETEXT",
    5: "PTRACE_POKEDATA",
    6: "PTRACE_POKEUSR",
    7: "PTRACE_CONT",
    8: "PTRACE_KILL",
    9: "PTRACE_SINGLESTEP",
    12: "PTRACE_GETREGS",
    13: "PTRACE_SETREGS",
    14: "PTRACE_GETFPREGS",
    15: "PTRACE_SETFPREGS",
    16: "PTRACE_ATTACH",
    17: "PTRACE_DETACH",
    24: "PTRACE_SYSCALL",
    0x4200: "PTRACE_SETOPTIONS",
    0x4201: "PTRACE_GETEVENTMSG",
    0x4202: "PTRACE_GETSIGINFO",
    0x4203: "PTRACE_SETSIGINFO",
    0x4204: "PTRACE_GETREGSET",
    0x4205: "PTRACE_SETREGSET",
    0x4206: "PTRACE_SEIZE",
    0x4207: "PTRACE_INTERRUPT",
    0x4208: "PTRACE_LISTEN",
}
AF_NAMES = {1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"}


def bits(value: int, table: dict[int, str]) -> list[str]:
    """Names of the set bits; leftover unknown bits as one hex string.

    Results are memoised per (table, value): the same few flag values repeat at
    syscall rates. The returned list is shared: treat it as read-only.
    """
    cache = _CACHE.setdefault(id(table), {})
    hit = cache.get(value)
    if hit is not None:
        return hit
    out = _bits(value, table)
    if len(cache) < 4096:
        cache[value] = out
    return out


_CACHE: dict[int, dict[int, list[str]]] = {}


def _bits(value: int, table: dict[int, str]) -> list[str]:
    out = [name for bit, name in table.items() if value & bit == bit and bit]
    known = 0
    for bit in table:
        if value & bit == bit:
            known |= bit
    rest = value & ~known
    if rest:
        out.append(hex(rest))
    return out


@lru_cache(maxsize=4096)
def _open_flags(value: int) -> tuple[str, ...]:
    acc = ("O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE")[value & 3]
    return (acc, *_bits(value & ~3, O_FLAGS))


def open_flags(value: int) -> list[str]:
    return list(_open_flags(value))


def prot_flags(value: int) -> list[str]:
    return bits(value, PROT_FLAGS) or ["PROT_NONE"]


@lru_cache(maxsize=4096)
def _map_flags(value: int) -> tuple[str, ...]:
    kind = MAP_TYPES.get(value & 0x3)
    rest = _bits(value & ~0x3, MAP_FLAGS)
    return (kind, *rest) if kind else tuple(rest)


def map_flags(value: int) -> list[str]:
    return list(_map_flags(value))


def ptrace_request(value: int) -> str:
    return PTRACE_REQUESTS.get(value, str(value))


def s32(value: int) -> int:
    """A C int passed through a u64 slot (e.g. AT_FDCWD = -100)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


#: super_block.s_magic -> file system name (include/uapi/linux/magic.h). Memfds and
#: shm_open objects live on tmpfs/shmem ("tmpfs"); ext2/3/4 share one magic.
FS_MAGIC: dict[int, str] = {
    0x01021994: "tmpfs",
    0x958458F6: "hugetlbfs",
    0x858458F6: "ramfs",
    0x794C7630: "overlayfs",
    0x9FA0: "proc",
    0x62656572: "sysfs",
    0x1CD1: "devpts",
    0x63677270: "cgroup2",
    0x27E0EB: "cgroup",
    0xEF53: "ext4",
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    0x73717368: "squashfs",
    0xE0F5E1E2: "erofs",
    0x2FC12FC1: "zfs",
    0x6969: "nfs",
    0x65735546: "fuse",
    0x01021997: "9p",
    0x4D44: "vfat",
    0x09041934: "anon_inode",
    0xCAFE4A11: "bpf",
    0x42494E4D: "binfmt_misc",
    0x5346414F: "afs",
}


def fs_name(magic: int) -> str | None:
    """File system name of a super block magic (hex for one not in the table; None for 0)."""
    if not magic:
        return None
    return FS_MAGIC.get(magic, hex(magic))
