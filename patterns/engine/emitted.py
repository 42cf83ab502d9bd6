"""What the sensors really emit: the field sets a pattern example may use.

Derived from the producers themselves, not written by hand per pattern:

- syscall events: ``sensors.decoder.Decoder`` decodes one synthetic record per event type,
  once with every header flag clear and once with every flag set (the flags add fields
  such as ``resolve``, ``stdio``, an mmap's ``path``), and the union of ``args`` keys is
  the set for that syscall; the user-space enrichment (``sensors.context``) adds the few
  keys in ``ENRICHED_ARGS``.
- Kubernetes audit events: ``sensors.k8s_audit.normalize`` normalizes audit events of
  every kind it derives facts from; the dotted paths under ``ka`` it produced are the set
  (``ka.event`` is the raw audit event, ``ka.req.role.rules`` raw RBAC rules and
  ``ka.uri_params`` the request's query parameters: free).
- trail hits: the keys of ``streams.trails.matcher.TrailHit.as_dict`` (``args.trail``).

Pure: builds the tables in memory on first use, no I/O.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Mapping
from typing import Any

#: args keys the user-space enrichment adds after decoding, per syscall
#: (``sensors.context``: ``target`` from ``sensors.targets``; ``stdio_peer_of`` from ``sensors.peers``;
#: ``trail`` from ``streams.trails.matcher`` on connects to a listed destination; ``loader`` from
#: ``sensors.loader`` on the mappings of a loader run as a program)
ENRICHED_ARGS: dict[str, frozenset[str]] = {
    "ptrace": frozenset({"target"}),
    "process_vm_writev": frozenset({"target"}),
    "process_vm_readv": frozenset({"target"}),
    "open": frozenset({"target"}),
    "openat": frozenset({"target"}),
    "openat2": frozenset({"target"}),
    "connect": frozenset({"stdio_peer_of", "trail"}),
    "mmap": frozenset({"loader"}),
}
#: top-level event keys the pipeline adds to a decoded syscall event (``sensors.context``
#: fills ``process`` and ``container_id``; the enrichment agent ``container``; the sensor's
#: Kubernetes lookup ``kubernetes``; the stream worker ``k8s_session``, ``streams.sessions``)
ENRICHED_TOP = frozenset({"container", "kubernetes", "cgroup_name", "k8s_session"})
#: paths under ``ka`` whose content is raw, as the API server sent it
K8S_RAW = ("ka.event", "ka.req.role.rules", "ka.uri_params")

_OFF_TYPE, _OFF_HFLAGS, _OFF_AUX = 72, 96, 100


def _record(size: int, t: int, hflags: int, aux: int = 0) -> bytes:
    raw = bytearray(size)
    struct.pack_into("<I", raw, _OFF_TYPE, t)
    struct.pack_into("<I", raw, _OFF_HFLAGS, hflags)
    struct.pack_into("<I", raw, _OFF_AUX, aux)
    return bytes(raw)


@functools.cache
def syscall_args() -> dict[str, frozenset[str]]:
    """syscall name -> every ``args`` key an event of that syscall can carry."""
    from sensors import decoder as D

    dec = D.Decoder("lint", 0.0)
    out: dict[str, frozenset[str]] = {}
    for t, name in D.EVENT_TYPES.items():
        size = (
            D.EXEC.size
            if t in D.EXEC_TYPES
            else D.EVENT2.size
            if t in D.EVENT2_TYPES
            else D.EVENT4.size
            if t in D.EVENT4_TYPES
            else D.EVENT.size
        )
        keys: set[str] = set()
        # aux 3: an open's owner facts were read (file_uid, dir_uid); small for the others
        for hflags, aux in ((0, 0), (0xFFFFFFFF, 3)):
            keys.update(dec.decode(_record(size, t, hflags, aux))["args"])
        out[name] = frozenset(keys | ENRICHED_ARGS.get(name, frozenset()))
    from streams.sessions import SESSION_SYSCALL

    out[SESSION_SYSCALL] = frozenset()  # a pod's session as an event (``session_event``): no args
    return out


@functools.cache
def event_keys() -> frozenset[str]:
    """Top-level keys of a syscall event."""
    from schemas.events import Event

    return frozenset(Event.model_fields) | ENRICHED_TOP


@functools.cache
def process_keys() -> frozenset[str]:
    from schemas.events import ProcessInfo

    return frozenset(ProcessInfo.model_fields)


@functools.cache
def container_keys() -> frozenset[str]:
    from schemas.containers import ContainerMeta

    return frozenset(ContainerMeta.model_fields)


@functools.cache
def trail_keys() -> frozenset[str]:
    """Keys of ``args.trail`` (a trail hit)."""
    from streams.trails.format import TrailEntry
    from streams.trails.matcher import TrailHit

    entry = TrailEntry("192.0.2.1", "ip", "", "l", 1)
    return frozenset(TrailHit("192.0.2.1", entry, "l", "s", "c", "warning").as_dict())


def dotted_paths(value: Any, prefix: str, raw: tuple[str, ...] = ()) -> set[str]:
    """Every dotted path of the mappings in ``value`` (lists of mappings are walked through,
    paths under ``raw`` prefixes are not)."""
    out: set[str] = set()
    if prefix in raw:
        return out
    if isinstance(value, Mapping):
        for k, v in value.items():
            p = f"{prefix}.{k}" if prefix else str(k)
            out.add(p)
            out |= dotted_paths(v, p, raw)
    elif isinstance(value, list):
        for v in value:
            out |= dotted_paths(v, prefix, raw)
    return out


_AUDIT_BASE: dict[str, Any] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "auditID": "a",
    "stage": "ResponseComplete",
    "verb": "create",
    "user": {"username": "u", "groups": ["g"]},
    "impersonatedUser": {"username": "i"},
    "sourceIPs": ["10.0.0.1"],
    "userAgent": "kubectl",
    "responseStatus": {"code": 201, "reason": "r"},
    "stageTimestamp": "2024-01-01T00:00:00Z",
    "requestReceivedTimestamp": "2024-01-01T00:00:00Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "r"},
}
_CONTAINER = {
    "name": "c",
    "image": "r.example/app:1",
    "ports": [{"hostPort": 80}],
    "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}, "runAsUser": 0},
}
_POD_SPEC = {
    "hostPID": True,
    "hostNetwork": True,
    "hostIPC": True,
    "serviceAccountName": "sa",
    "volumes": [{"name": "v", "hostPath": {"path": "/"}}],
    "containers": [_CONTAINER],
    "ephemeralContainers": [_CONTAINER],
}


def _audit_samples() -> list[dict[str, Any]]:
    pod = {"kind": "Pod", "metadata": {"name": "p"}, "spec": _POD_SPEC}
    deploy = {"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": _POD_SPEC}}}
    role = {"kind": "ClusterRole", "rules": [{"verbs": ["*"], "resources": ["*"], "apiGroups": ["*"]}]}
    binding = {
        "kind": "ClusterRoleBinding",
        "roleRef": {"kind": "ClusterRole", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "s", "namespace": "n"}],
    }
    cm = {"kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}}
    ref = {"resource": "pods", "namespace": "n", "name": "p", "apiGroup": ""}
    return [
        {
            **_AUDIT_BASE,
            "objectRef": ref,
            "requestObject": pod,
            "responseObject": {"metadata": {"name": "p"}},
        },
        {**_AUDIT_BASE, "objectRef": {**ref, "resource": "deployments"}, "requestObject": deploy},
        {**_AUDIT_BASE, "objectRef": {**ref, "resource": "clusterroles"}, "requestObject": role},
        {**_AUDIT_BASE, "objectRef": {**ref, "resource": "clusterrolebindings"}, "requestObject": binding},
        {**_AUDIT_BASE, "objectRef": {**ref, "resource": "configmaps"}, "requestObject": cm},
        {
            **_AUDIT_BASE,
            "objectRef": {**ref, "subresource": "exec"},
            "requestURI": "/api/v1/namespaces/n/pods/p/exec?command=sh&container=c&stdin=true&tty=true",
        },
        {
            **_AUDIT_BASE,
            "objectRef": {**ref, "subresource": "ephemeralcontainers"},
            "requestObject": {"spec": {"ephemeralContainers": [_CONTAINER]}},
        },
    ]


@functools.cache
def k8s_audit_paths() -> tuple[frozenset[str], frozenset[str]]:
    """(top-level keys, dotted paths under ``ka``) of normalized audit events."""
    from sensors.k8s_audit.models import AuditEvent
    from sensors.k8s_audit.normalize import normalize

    top: set[str] = set()
    ka: set[str] = set()
    for raw in _audit_samples():
        raw.setdefault("requestURI", "/api/v1/namespaces/n/x")
        ev = normalize(AuditEvent.model_validate(raw), "cluster")
        top |= set(ev)
        ka |= dotted_paths(ev["ka"], "ka", K8S_RAW)
    return frozenset(top), frozenset(ka)


def k8s_path_known(path: str) -> bool:
    _, ka = k8s_audit_paths()
    return path in ka or any(path == r or path.startswith(r + ".") for r in K8S_RAW)
