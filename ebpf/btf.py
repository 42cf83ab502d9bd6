"""Kernel struct field offsets from the running kernel's BTF (``/sys/kernel/btf/vmlinux``).

bcc compiles against whatever kernel headers are installed, and on this machine kind
those are the nearest Debian headers (6.12), not the running kernel's (6.18): a
``task->mm->arg_start`` compiled from them can read the wrong field. So the few
kernel fields the sensor reads are located here, from the kernel's own type
information, and handed to the C program as ``-D`` constants (a poor man's CO-RE).

Pure parsing: bytes in, offsets out; no bcc import.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

BTF_PATH = Path("/sys/kernel/btf/vmlinux")

# BTF kinds (include/uapi/linux/btf.h)
_INT, _PTR, _ARRAY, _STRUCT, _UNION, _ENUM, _FWD, _TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
_VOLATILE, _CONST, _RESTRICT, _FUNC, _FUNC_PROTO, _VAR, _DATASEC = 9, 10, 11, 12, 13, 14, 15
_FLOAT, _DECL_TAG, _TYPE_TAG, _ENUM64 = 16, 17, 18, 19
_EXTRA = {
    _INT: lambda v: 4,
    _ARRAY: lambda v: 12,
    _STRUCT: lambda v: 12 * v,
    _UNION: lambda v: 12 * v,
    _ENUM: lambda v: 8 * v,
    _FUNC_PROTO: lambda v: 8 * v,
    _VAR: lambda v: 4,
    _DATASEC: lambda v: 12 * v,
    _DECL_TAG: lambda v: 4,
    _ENUM64: lambda v: 12 * v,
}
_MODIFIERS = {_TYPEDEF, _VOLATILE, _CONST, _RESTRICT, _TYPE_TAG}

#: The fields the sensor program reads: -D name -> "struct.path.to.field".
SENSOR_FIELDS: dict[str, str] = {
    "OFF_TASK_REAL_PARENT": "task_struct.real_parent",
    "OFF_TASK_TGID": "task_struct.tgid",
    "OFF_TASK_GROUP_LEADER": "task_struct.group_leader",
    "OFF_TASK_START_BOOTTIME": "task_struct.start_boottime",
    "OFF_TASK_MM": "task_struct.mm",
    "OFF_TASK_EXIT_CODE": "task_struct.exit_code",
    "OFF_MM_ARG_START": "mm_struct.arg_start",
    "OFF_MM_ARG_END": "mm_struct.arg_end",
    "OFF_MM_ENV_START": "mm_struct.env_start",
    "OFF_MM_ENV_END": "mm_struct.env_end",
    "OFF_MM_EXE_FILE": "mm_struct.exe_file",
    "OFF_FILE_DENTRY": "file.f_path.dentry",
    "OFF_FILE_INODE": "file.f_inode",
    "OFF_DENTRY_NAME": "dentry.d_name.name",
    "OFF_INODE_NLINK": "inode.__i_nlink",
    "OFF_TASK_CGROUPS": "task_struct.cgroups",
    "OFF_CSS_SET_DFL_CGRP": "css_set.dfl_cgrp",
    "OFF_CGROUP_KN": "cgroup.kn",
    "OFF_KERNFS_NAME": "kernfs_node.name",
    "OFF_KERNFS_PARENT": "kernfs_node.__parent|kernfs_node.parent",  # renamed in 6.15
    # exec-time stdio: task->files->fdt->fd[i]->f_inode->i_mode, and for sockets
    # SOCKET_I(inode)->sk->__sk_common.skc_family
    "OFF_TASK_FILES": "task_struct.files",
    "OFF_FILES_FDT": "files_struct.fdt",
    "OFF_FDT_MAX_FDS": "fdtable.max_fds",
    "OFF_FDT_FD": "fdtable.fd",
    "OFF_INODE_MODE": "inode.i_mode",
    "OFF_INODE_RDEV": "inode.i_rdev",
    "OFF_SOCKET_ALLOC_SOCKET": "socket_alloc.socket",
    "OFF_SOCKET_ALLOC_INODE": "socket_alloc.vfs_inode",
    "OFF_SOCKET_SK": "socket.sk",
    "OFF_SK_FAMILY": "sock.__sk_common.skc_family",
    # W->X region tracking: the writable areas exec sets up without an mmap
    "OFF_MM_START_DATA": "mm_struct.start_data",
    "OFF_MM_END_DATA": "mm_struct.end_data",
    "OFF_MM_START_BRK": "mm_struct.start_brk",
    "OFF_MM_START_STACK": "mm_struct.start_stack",
    # setns: fd -> file -> inode -> super_block magic; nsfs inode -> ns_common; pidfs inode -> pid
    "OFF_INODE_SB": "inode.i_sb",
    "OFF_INODE_PRIVATE": "inode.i_private",
    "OFF_SB_MAGIC": "super_block.s_magic",
    "OFF_NS_COMMON_NS_TYPE": "ns_common.ns_type",
    "OFF_NS_COMMON_INUM": "ns_common.inum",
    "OFF_PID_NUMBERS": "pid.numbers",
    "OFF_UPID_NR": "upid.nr",
    # resolved paths: the dentry chain up to the mount root, then the mount's mountpoint
    # in its parent mount, up to the task's fs->root (container-relative for containers)
    "OFF_FILE_PATH_MNT": "file.f_path.mnt",
    "OFF_DENTRY_PARENT": "dentry.d_parent",
    "OFF_DENTRY_NAME_LEN": "dentry.d_name.len",
    "OFF_MOUNT_MNT": "mount.mnt",
    "OFF_MOUNT_PARENT": "mount.mnt_parent",
    "OFF_MOUNT_MOUNTPOINT": "mount.mnt_mountpoint",
    "OFF_VFSMOUNT_ROOT": "vfsmount.mnt_root",
    "OFF_TASK_FS": "task_struct.fs",
    "OFF_FS_ROOT_MNT": "fs_struct.root.mnt",
    "OFF_FS_ROOT_DENTRY": "fs_struct.root.dentry",
    "OFF_FS_PWD_MNT": "fs_struct.pwd.mnt",
    "OFF_FS_PWD_DENTRY": "fs_struct.pwd.dentry",
    # file facts of the executed file
    "OFF_INODE_INO": "inode.i_ino",
    "OFF_INODE_UID": "inode.i_uid",
    "OFF_SB_DEV": "super_block.s_dev",
    # exec: the ELF auxiliary vector the kernel built (AT_BASE: the interpreter's address)
    "OFF_MM_SAVED_AUXV": "mm_struct.saved_auxv",
    # write opens: the owner of the opened file's directory
    "OFF_DENTRY_INODE": "dentry.d_inode",
}

#: Fields read only when the kernel has them (a missing one leaves its -D undefined and the
#: program skips that fact): overlayfs is a module on some kernels, so its types may be
#: absent from vmlinux BTF.
OPTIONAL_FIELDS: dict[str, str] = {
    # overlayfs: OVL_I(inode) = container_of(inode, struct ovl_inode, vfs_inode)
    "OFF_OVL_INODE_VFS_INODE": "ovl_inode.vfs_inode",
    "OFF_OVL_INODE_UPPER": "ovl_inode.__upperdentry",
    "OFF_OVL_INODE_OE": "ovl_inode.oe",
    "OFF_OVL_ENTRY_NUMLOWER": "ovl_entry.__numlower",
}


class BTFError(RuntimeError):
    """The BTF blob is missing, malformed, or lacks a field the sensor needs."""


@dataclass(frozen=True)
class _Type:
    kind: int
    name: str
    size_or_type: int
    members: tuple[tuple[str, int, int], ...] = ()  # (name, type id, bit offset)


class BTF:
    def __init__(self, data: bytes) -> None:
        if len(data) < 24:
            raise BTFError("BTF blob too short")
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != 0xEB9F:
            raise BTFError(f"bad BTF magic {magic:#x}")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        types = data[hdr_len + type_off : hdr_len + type_off + type_len]
        self._strs = data[hdr_len + str_off : hdr_len + str_off + str_len]
        self.types: list[_Type] = [_Type(0, "void", 0)]
        self._by_name: dict[tuple[int, str], int] = {}
        pos = 0
        while pos < len(types):
            name_off, info, size_or_type = struct.unpack_from("<III", types, pos)
            pos += 12
            kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
            members: tuple[tuple[str, int, int], ...] = ()
            if kind in (_STRUCT, _UNION):
                ms = []
                for i in range(vlen):
                    m_name, m_type, m_off = struct.unpack_from("<III", types, pos + 12 * i)
                    ms.append((self._str(m_name), m_type, m_off & 0xFFFFFF if kflag else m_off))
                members = tuple(ms)
            extra = _EXTRA.get(kind)
            pos += extra(vlen) if extra else 0
            t = _Type(kind, self._str(name_off), size_or_type, members)
            self._by_name.setdefault((kind, t.name), len(self.types))
            self.types.append(t)

    @classmethod
    def load(cls, path: Path = BTF_PATH) -> BTF:
        try:
            return cls(path.read_bytes())
        except OSError as exc:
            raise BTFError(f"cannot read kernel BTF at {path}: {exc.strerror}") from exc

    def _str(self, off: int) -> str:
        end = self._strs.index(b"\0", off)
        return self._strs[off:end].decode()

    def _resolve(self, tid: int) -> _Type:
        t = self.types[tid]
        while t.kind in _MODIFIERS:
            t = self.types[t.size_or_type]
        return t

    def _find_member(self, t: _Type, name: str) -> tuple[int, int] | None:
        """(bit offset, type id) of ``name`` in ``t``, looking inside anonymous members."""
        for m_name, m_type, m_off in t.members:
            if m_name == name:
                return m_off, m_type
            if not m_name:
                inner = self._resolve(m_type)
                if inner.kind in (_STRUCT, _UNION):
                    found = self._find_member(inner, name)
                    if found:
                        return m_off + found[0], found[1]
        return None

    def offset(self, path: str) -> int:
        """Byte offset of ``struct.field[.field...]`` (nested by value, not through pointers)."""
        struct_name, *fields = path.split(".")
        tid = self._by_name.get((_STRUCT, struct_name))
        if tid is None:
            raise BTFError(f"struct {struct_name} not in kernel BTF")
        t, bits = self.types[tid], 0
        for f in fields:
            found = self._find_member(t, f)
            if found is None:
                raise BTFError(f"field {f} of {path} not in kernel BTF")
            bits += found[0]
            t = self._resolve(found[1])
        if bits % 8:
            raise BTFError(f"{path} is a bit field")
        return bits // 8


def _first(btf: BTF, paths: str) -> int:
    """The first of ``a|b|...`` that exists (fields renamed across kernel versions)."""
    alternatives = paths.split("|")
    for path in alternatives[:-1]:
        try:
            return btf.offset(path)
        except BTFError:
            continue
    return btf.offset(alternatives[-1])


def sensor_offsets(btf: BTF | None = None) -> dict[str, int]:
    btf = btf or BTF.load()
    out = {name: _first(btf, paths) for name, paths in SENSOR_FIELDS.items()}
    optional: dict[str, int] = {}
    for name, paths in OPTIONAL_FIELDS.items():
        try:
            optional[name] = _first(btf, paths)
        except BTFError:
            return out  # all of a group or none: the overlay facts need every field
    return out | optional
