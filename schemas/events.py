"""Sensor events (schema version 1).

The sensor publishes ``EventBatch`` messages to ``memtrail.events.raw``: one Kafka
message holds the events of one partition key (a container id, or ``host:<name>`` for
processes outside containers) so that per-event Kafka and Python costs are paid per
batch. The stream tier handles events as plain dicts for speed; these models define and
validate the shape (dead-lettering what does not fit) and export the JSON Schema.

``syscall`` names: execve, execveat, memfd_create, ptrace, process_vm_writev,
process_vm_readv, mprotect, mmap, open, openat, openat2, unshare, setns, connect,
rename, unlink, chmod, mount (the syscall itself), plus the lifecycle events
``process_fork`` and ``process_exit``. A successful exec is reported once, with the
kernel's own copies of filename and argv, under the syscall that caused it.

Paths resolved in the kernel (docs/sensor.md "Resolved paths"): ``args.path`` of an
open is the path of the opened file (dentry + mount walk to the task's root, so
container-relative in a container) and ``args.path_typed`` the text the caller wrote;
an exec carries ``args.exe_path`` (the file the kernel executed, ``mm->exe_file``); a
file-backed executable mmap carries ``args.path``; unlink/rename/chmod carry the typed
path joined to the kernel-resolved dirfd/cwd directory (``path_resolved``). Every
resolved field has a ``*_truncated`` flag: when set, the walk could not finish and the
path is the typed text, never a guessed absolute path. A successful write open also
carries ``args.file_uid`` and ``args.dir_uid``: the owners (host uids, from the inodes)
of the opened file and of its directory, each absent when it could not be read.

Exec environment facts (docs/sensor.md "Environment"): ``args.ld_preload``,
``ld_library_path``, ``ld_audit``, ``glibc_tunables`` (the value's first 127 bytes, None
when absent), each with ``<name>_len`` (the full value length) and ``<name>_truncated``;
``env_size`` / ``env_scanned`` / ``env_count`` and ``env_truncated`` (the kernel's scan,
bounded by bytes, stopped before the end of the environment), ``ld_trace``.
``args.exe_file`` adds ``upper_layer`` / ``in_image`` (overlayfs: the file is in the
container's writable layer / has an image copy; null elsewhere) and ``interp`` (false: no
ELF interpreter, a static program or the dynamic loader run as a program). Executable
file mmaps add ``file_upper_layer`` / ``file_in_image`` and, in a process exec'd without an
interpreter, ``args.loader`` {loader, role (program|library), program, index, trace}.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.containers import ContainerMeta

EVENT_SCHEMA_VERSION: Literal[1] = 1


class ProcessInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    pid: int = Field(description="Thread-group id (the process id users see)")
    entity_id: str | None = Field(
        default=None,
        description="Process identity unique across pid reuse and reboots, stable across exec:"
        " '<boot>-<pid>-<start>' (first 12 hex digits of the boot id, the pid, the start time in 10 ms"
        " ticks since boot = start_boottime_ns // 10_000_000 = /proc/PID/stat starttime)",
    )
    tid: int = Field(description="Thread id")
    ppid: int = Field(description="Parent's thread-group id")
    uid: int
    gid: int
    comm: str = Field(description="Kernel task name (16 bytes max)")
    exe: str | None = Field(
        default=None,
        description="The file the kernel executed, when known: after an exec the sensor's resolved"
        " args.exe_path (not the typed filename: './x', a symlink and '//usr/./bin//dash' all give the"
        " real path; 'memfd:<name>' for a memfd image), for a process learned from /proc its"
        " /proc/PID/exe; inherited by fork. A script's exe is its interpreter",
    )
    exe_source: str | None = Field(
        default=None,
        description="How exe was learned: 'kernel' (the exec's resolved path or memfd name), 'proc'"
        " (/proc/PID/exe), 'typed' (the exec's filename as written, only when the kernel path walk was"
        " truncated or empty: do not grant an exception on it); null when unknown",
    )
    cmdline: str | None = Field(default=None, description="argv joined with spaces, when known")
    start_time_ns: int | None = Field(default=None, description="Process start, monotonic ns")
    start_boottime_ns: int | None = Field(
        default=None,
        description="The kernel's start time of the process (group leader's start_boottime, ns since boot):"
        " with the pid, what tells this process from a later one that reuses its pid",
    )
    ancestors: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Parent first: [{pid, entity_id, exe, comm, cmdline}], bounded",
    )


class Event(BaseModel):
    """One kernel event, decoded: flag names rather than numbers, paths read after the call."""

    model_config = ConfigDict(extra="allow")

    v: Literal[1] = EVENT_SCHEMA_VERSION
    id: str = Field(description="Unique and stable: <host>:<ktime_ns>:<tid>")
    ts_ns: int = Field(description="Monotonic kernel time (CLOCK_MONOTONIC, ns)")
    time: float = Field(description="Wall-clock time, seconds since the epoch")
    host: str
    syscall: str
    ret: int | None = Field(default=None, description="Return value (negative errno on failure)")
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="Per syscall (docs/sensor.md): e.g. open path (kernel-resolved), path_typed, "
        "path_truncated, file_uid, dir_uid (write opens); exec exe_path, exe_path_truncated",
    )
    process: ProcessInfo
    cgroup_id: int = 0
    container_id: str | None = Field(default=None, description="64-hex container id; null on the host")
    container: ContainerMeta | None = Field(default=None, description="Filled by the enrichment agent")
    source: str = Field(default="syscall", description="syscall | k8s_audit | test")


class EventBatch(BaseModel):
    """What one Kafka message on memtrail.events.raw carries."""

    v: Literal[1] = EVENT_SCHEMA_VERSION
    host: str
    key: str = Field(description="Partition key: container id, or host:<name>")
    events: list[Event]


def partition_key(host: str, container_id: str | None) -> str:
    return container_id or f"host:{host}"


def synthetic_event(
    syscall: str,
    *,
    host: str,
    pid: int,
    exe: str,
    time_s: float,
    ts_ns: int,
    args: dict[str, Any] | None = None,
    ret: int | None = 0,
    container_id: str | None = None,
    source: str = "test",
) -> dict[str, Any]:
    """A minimal valid event as the plain dict the stream tier handles (tests, benchmarks)."""
    return {
        "v": EVENT_SCHEMA_VERSION,
        "id": f"{host}:{ts_ns}:{pid}",
        "ts_ns": ts_ns,
        "time": time_s,
        "host": host,
        "syscall": syscall,
        "ret": ret,
        "args": args or {},
        "process": {
            "pid": pid,
            "tid": pid,
            "ppid": 1,
            "uid": 0,
            "gid": 0,
            "comm": exe.rsplit("/", 1)[-1][:15],
            "exe": exe,
            "cmdline": exe,
            "ancestors": [],
        },
        "cgroup_id": 0,
        "container_id": container_id,
        "container": None,
        "source": source,
    }
