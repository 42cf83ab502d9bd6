"""Container metadata, published by the sensor's watcher to the compacted ``memtrail.containers`` topic."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ContainerMeta(BaseModel):
    model_config = ConfigDict(extra="allow")

    v: int = 1
    id: str = Field(description="Full 64-hex container id")
    name: str | None = None
    image: str | None = None
    image_id: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    runtime: str | None = Field(default=None, description="docker | podman | containerd | cri-o")
    pod_name: str | None = None
    pod_namespace: str | None = None
    pod_uid: str | None = None
    privileged: bool | None = None
    mounts: list[dict[str, str]] = Field(default_factory=list)
    host: str | None = None
    state: str | None = Field(default=None, description="running | exited | removed")
    updated: float | None = Field(default=None, description="Epoch seconds of this snapshot")
