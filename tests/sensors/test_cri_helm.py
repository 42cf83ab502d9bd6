"""The chart wires the sensor's CRI source: auto-detection through the /run mount, a socket
under /run mapped into it, a socket elsewhere mounted on its own, and a switch to turn it off."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.deploy_support import containers, env_of, manifests, render


def _sensor(values: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    ds = next(d for d in manifests(render(values)) if d["kind"] == "DaemonSet")
    return ds, next(c for c in containers(ds) if c["name"] == "sensor")


def _volumes(ds: dict[str, Any]) -> dict[str, Any]:
    return {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}


def test_default_auto_detects_under_the_run_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    from sensors.config import SensorSettings

    ds, c = _sensor()
    env = env_of(c)
    assert "MEMTRAIL_SENSOR_CRI_SOCKET" not in env and "MEMTRAIL_SENSOR_CRI" not in env
    monkeypatch.setenv("MEMTRAIL_SENSOR_CRI_CANDIDATES", env["MEMTRAIL_SENSOR_CRI_CANDIDATES"])
    cfg = SensorSettings()  # parsed the way the sensor parses it
    assert [str(p) for p in cfg.cri_candidates] == [
        "/host/run/containerd/containerd.sock",
        "/host/run/crio/crio.sock",
        "/host/run/cri-dockerd.sock",
    ]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["host-run"] == "/host/run" and "cri-socket" not in mounts
    assert _volumes(ds)["host-run"]["hostPath"]["path"] == "/run"


def test_socket_under_run_goes_through_the_run_mount() -> None:
    ds, c = _sensor({"sensor": {"cri": {"enabled": True, "socket": "/var/run/crio/crio.sock"}}})
    assert env_of(c)["MEMTRAIL_SENSOR_CRI_SOCKET"] == "/host/run/crio/crio.sock"
    assert "cri-socket" not in _volumes(ds)


def test_socket_elsewhere_is_mounted_on_its_own() -> None:
    sock = "/var/snap/microk8s/common/run/containerd.sock"
    ds, c = _sensor({"sensor": {"cri": {"enabled": True, "socket": sock}}})
    assert env_of(c)["MEMTRAIL_SENSOR_CRI_SOCKET"] == "/host/cri/containerd.sock"
    vol = _volumes(ds)["cri-socket"]["hostPath"]
    assert vol == {"path": sock, "type": "Socket"}
    mount = next(m for m in c["volumeMounts"] if m["name"] == "cri-socket")
    assert mount == {"name": "cri-socket", "mountPath": "/host/cri/containerd.sock", "readOnly": True}


def test_disabled() -> None:
    ds, c = _sensor({"sensor": {"cri": {"enabled": False, "socket": "/srv/cri.sock"}}})
    env = env_of(c)
    assert env["MEMTRAIL_SENSOR_CRI"] == "false"
    assert "MEMTRAIL_SENSOR_CRI_SOCKET" not in env and "cri-socket" not in _volumes(ds)
