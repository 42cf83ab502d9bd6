"""Sensor-only settings (environment prefix ``MEMTRAIL_SENSOR_``); Kafka and topics come from memtrail.core.settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ebpf.loader import DEFAULT_OPEN_PREFIXES, DEFAULT_PATH_PREFIXES, DEFAULT_WRITE_PREFIXES

#: Where kubelets find their runtime: containerd, CRI-O, cri-dockerd (tried in this order).
DEFAULT_CRI_SOCKETS = (
    Path("/run/containerd/containerd.sock"),
    Path("/run/crio/crio.sock"),
    Path("/var/run/cri-dockerd.sock"),
)


class SensorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEMTRAIL_SENSOR_", extra="ignore")

    metrics_port: int = 9101
    metrics_host: str = "0.0.0.0"
    spool_dir: Path = Path("/var/lib/memtrail/spool")
    spool_max_mb: int = Field(default=256, ge=1)
    #: open/openat/openat2 are reported only under these prefixes ("/" = all absolute paths)
    open_prefixes: list[str] = Field(default_factory=lambda: list(DEFAULT_OPEN_PREFIXES))
    #: write opens (O_WRONLY/O_RDWR/O_CREAT/O_TRUNC/O_APPEND) are reported under these prefixes
    write_prefixes: list[str] = Field(default_factory=lambda: list(DEFAULT_WRITE_PREFIXES))
    #: unlink/rename are reported only under these prefixes
    path_prefixes: list[str] = Field(default_factory=lambda: list(DEFAULT_PATH_PREFIXES))
    open_filter: bool = True
    mmap_filter: bool = True
    connect_all_families: bool = False
    #: comms whose noisy events (read-only opens/exec mappings, connects) are dropped in the kernel
    allow_comms: list[str] = Field(default_factory=list)
    #: noisy events per second per cgroup; 0 = no limit (never applies to exec, memfd, ptrace,
    #: write opens, W+X/W->X, namespaces...)
    rate_limit_per_cgroup: int = Field(default=0, ge=0)
    ringbuf_pages: int = 2048  # 8 MiB
    poll_interval_ms: int = Field(default=10, ge=1, le=1000)
    #: records read per drain before publishing/heartbeat/metrics get a turn
    poll_budget: int = Field(default=2000, ge=1)
    batch_size: int = Field(default=1000, ge=1)
    flush_interval_ms: int = Field(default=50, ge=1)
    #: EventBatch schema version published: 2 (a process table per batch, ~4x smaller; schemas.wire)
    #: or 1 (self-contained events, for consumers that do not read v2 yet)
    wire_version: int = Field(default=2, ge=1, le=2)
    heartbeat_interval_s: float = 10.0
    #: a batch Kafka has not acknowledged after this long goes to the spool
    delivery_timeout_ms: int = Field(default=10000, ge=100)
    docker_socket: Path | None = None  # default: the first of /run/podman/podman.sock, /var/run/docker.sock
    container_resync_s: float = 60.0
    #: CRI socket (containerd, CRI-O, cri-dockerd). A socket given here that does not answer is a
    #: start-up error; unset, the first of ``cri_candidates`` that answers is used, or none.
    cri_socket: Path | None = None
    cri_candidates: list[Path] = Field(default_factory=lambda: list(DEFAULT_CRI_SOCKETS))
    cri: bool = True  # false: no CRI watcher at all
    cri_poll_s: float = Field(default=2.0, gt=0)  # ListContainers interval (runtimes without event streams)
