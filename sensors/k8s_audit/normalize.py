"""Kubernetes audit event → Memtrail event dict (pure: no I/O).

The result has the shape of ``schemas.events.Event`` (so the worker validates it like any
event) with ``source`` and ``syscall`` both ``"k8s_audit"`` and a ``ka`` object holding
Falco-like derived fields plus the raw audit event::

    ka.auditid, ka.stage, ka.level, ka.request_time, ka.verb, ka.uri, ka.uri_params{...}, ka.useragent,
    ka.sourceips[], ka.user.{name,uid,groups[]}, ka.impuser.name,
    ka.auth.{decision,reason}, ka.target.{resource,subresource,namespace,name,apigroup},
    ka.response.{code,reason}, ka.resp.name,
    ka.exec.{command[],container}                           (pods/exec and pods/attach)
    ka.req.pod.{kind,name,privileged,host_pid,host_network,host_ipc,hostpath[],
                add_capabilities[],images[],image_repositories[],image_registries[],
                host_ports[],allow_privilege_escalation,run_as_root,containers[]}
                                                            (Pods and workload templates)
    ka.req.ephemeral_containers[]                           (pods/ephemeralcontainers)
    ka.req.role.{rules[],verbs[],resources[],apigroups[],write,wildcard}
    ka.req.binding.{role,subjects[]}
    ka.req.configmap.{name,data_keys[],value_keys[]}
    ka.event                                                (the raw audit event, redacted)

ConfigMap and Secret values never leave the webhook: in ``ka.event`` their ``data`` and
``binaryData`` values are replaced by ``<redacted N bytes>``; patterns look for credential
names in ``data_keys`` (the keys) and ``value_keys`` (``name=`` / ``name:`` tokens found in
the values, e.g. ``db.password`` inside an ``application.properties``).

``time`` is the stageTimestamp (wall seconds), ``id`` is ``k8s:<auditID>:<stage>`` (stable
across replays and retries), ``ret`` is the response code, and ``kubernetes`` names the pod
the event is about (``namespace``, ``pod_name``, ``pod_key``). Events about a pod are
keyed ``<namespace>/<pod>`` (see ``pod_key``), others ``<namespace or _cluster>/<resource>/<name>``.
"""

from __future__ import annotations

import copy
import posixpath
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sensors.k8s_audit.models import AuditEvent

SOURCE = "k8s_audit"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection", "*"})
WORKLOAD_KINDS = frozenset(
    {"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "ReplicationController", "Job"}
)
# "name=" or "name:" at a line start (properties, YAML, .env): credential *names* only.
_VALUE_KEY = re.compile(
    r"^\s*(?:export\s+)?[\"']?([A-Za-z_][A-Za-z0-9_.\-]{0,80})[\"']?\s*[=:]", re.MULTILINE
)


def pod_key(namespace: str | None, pod: str | None) -> str | None:
    """The cross-source key of a pod: ``<namespace>/<pod>``. The worker uses the same key
    for a container's events (``container.pod_namespace``/``pod_name``) to correlate them."""
    if not pod:
        return None
    return f"{namespace or 'default'}/{pod}"


def _ts(dt: datetime | None) -> float:
    return dt.timestamp() if dt is not None else 0.0


def _uniq(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v is not None and v not in out:
            out.append(v)
    return out


def split_image(image: str) -> tuple[str, str]:
    """``image`` → (registry, repository without tag/digest); Docker Hub defaults as the kubelet applies them."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, name
    registry = "docker.io"
    repo = name if "/" in name else f"library/{name}"
    return registry, f"{registry}/{repo}"


def _clean_path(p: str) -> str:
    """``/etc/`` and ``//etc/./`` are ``/etc`` to the kubelet: compare paths in one form."""
    if not p.startswith("/"):
        return p
    return posixpath.normpath(p).replace("//", "/") or "/"


def _m(v: Any) -> Mapping[str, Any]:
    """``v`` if it is a mapping, else empty: request bodies are user input, shapes vary."""
    return v if isinstance(v, Mapping) else {}


def _l(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _strs(v: Any) -> list[str]:
    """The scalar items of a list as strings (anything else in it is ignored)."""
    return [str(x) for x in _l(v) if isinstance(x, str | int | float) and not isinstance(x, bool)]


def _opt_str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _pod_spec(obj: Mapping[str, Any]) -> tuple[str, Mapping[str, Any] | None, Mapping[str, Any]]:
    """(kind, pod spec or None, metadata of the pod or template) for Pods and workload objects."""
    kind = _opt_str(obj.get("kind")) or ""
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return kind, None, {}
    meta = _m(obj.get("metadata"))
    if kind == "Pod" or (not kind and "containers" in spec):
        return kind or "Pod", spec, meta
    if kind == "CronJob":
        spec = _m(_m(spec.get("jobTemplate")).get("spec"))
    if kind in WORKLOAD_KINDS or kind == "CronJob":
        tmpl = _m(spec.get("template"))
        if isinstance(tmpl.get("spec"), Mapping):
            return kind, tmpl["spec"], {**_m(tmpl.get("metadata")), "name": meta.get("name")}
    return kind, None, {}


def _containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        out.extend(c for c in _l(spec.get(key)) if isinstance(c, Mapping))
    return out


def _container_facts(c: Mapping[str, Any], pod_sc: Mapping[str, Any]) -> dict[str, Any]:
    sc = _m(c.get("securityContext"))
    image = _opt_str(c.get("image")) or ""
    registry, repository = split_image(image) if image else ("", "")
    run_as_user = sc.get("runAsUser", pod_sc.get("runAsUser"))
    run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    return {
        "name": _opt_str(c.get("name")),
        "image": image,
        "image_registry": registry,
        "image_repository": repository,
        "privileged": sc.get("privileged") is True,
        "allow_privilege_escalation": sc.get("allowPrivilegeEscalation"),
        "add_capabilities": [
            x.upper().removeprefix("CAP_") for x in _strs(_m(sc.get("capabilities")).get("add"))
        ],
        "run_as_user": run_as_user,
        # Effective root unless a non-zero uid or runAsNonRoot is set (the image's USER is unknown here).
        "run_as_root": run_as_user == 0 or (run_as_user is None and not run_as_non_root),
        "read_only_fs": sc.get("readOnlyRootFilesystem"),
        "proc_mount": sc.get("procMount"),
        "host_ports": [
            p["hostPort"]
            for p in _l(c.get("ports"))
            if isinstance(p, Mapping) and isinstance(p.get("hostPort"), int)
        ],
    }


def pod_facts(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """Derived ``ka.req.pod`` fields of a Pod or a workload's pod template; None otherwise."""
    kind, spec, meta = _pod_spec(obj)
    if spec is None:
        return None
    containers = [_container_facts(c, _m(spec.get("securityContext"))) for c in _containers(spec)]
    volumes = [v for v in _l(spec.get("volumes")) if isinstance(v, Mapping)]
    host_paths = [
        _opt_str(_m(v.get("hostPath")).get("path")) for v in volumes if isinstance(v.get("hostPath"), Mapping)
    ]
    return {
        "kind": kind,
        "name": _opt_str(meta.get("name")) or _opt_str(meta.get("generateName")),
        "privileged": any(c["privileged"] for c in containers),
        "host_pid": spec.get("hostPID") is True,
        "host_network": spec.get("hostNetwork") is True,
        "host_ipc": spec.get("hostIPC") is True,
        "hostpath": _uniq(_clean_path(p) for p in host_paths if p),
        "volume_types": _uniq(str(k) for v in volumes for k in v if k != "name"),
        "add_capabilities": _uniq(cap for c in containers for cap in c["add_capabilities"]),
        "images": _uniq(c["image"] for c in containers if c["image"]),
        "image_repositories": _uniq(c["image_repository"] for c in containers if c["image"]),
        "image_registries": _uniq(c["image_registry"] for c in containers if c["image"]),
        "host_ports": _uniq(p for c in containers for p in c["host_ports"]),
        "allow_privilege_escalation": any(c["allow_privilege_escalation"] is True for c in containers),
        "run_as_root": any(c["run_as_root"] for c in containers),
        "service_account": _opt_str(spec.get("serviceAccountName")),
        "containers": containers,
    }


def role_facts(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    if obj.get("kind") not in ("Role", "ClusterRole"):
        return None
    rules = [r for r in _l(obj.get("rules")) if isinstance(r, Mapping)]
    verbs = _uniq(v for r in rules for v in _strs(r.get("verbs")))
    resources = _uniq(v for r in rules for v in _strs(r.get("resources")))
    apigroups = _uniq(v for r in rules for v in _strs(r.get("apiGroups")))
    return {
        "kind": obj.get("kind"),
        "rules": rules,
        "verbs": verbs,
        "resources": resources,
        "apigroups": apigroups,
        "nonresourceurls": _uniq(v for r in rules for v in _strs(r.get("nonResourceURLs"))),
        "write": any(v in WRITE_VERBS for v in verbs),
        "wildcard": "*" in verbs or "*" in resources or "*" in apigroups,
    }


def binding_facts(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    if obj.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
        return None
    ref = _m(obj.get("roleRef"))
    subjects = [s for s in _l(obj.get("subjects")) if isinstance(s, Mapping)]
    return {
        "kind": obj.get("kind"),
        "role": _opt_str(ref.get("name")),
        "role_kind": _opt_str(ref.get("kind")),
        "subjects": [
            f"{s.get('kind')}:{str(s['namespace']) + '/' if s.get('namespace') else ''}{s.get('name')}"
            for s in subjects
        ],
    }


def configmap_facts(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    if obj.get("kind") != "ConfigMap":
        return None
    data = _m(obj.get("data"))
    value_keys = _uniq(
        m.group(1) for v in data.values() if isinstance(v, str) for m in _VALUE_KEY.finditer(v)
    )
    return {
        "name": _opt_str(_m(obj.get("metadata")).get("name")),
        "data_keys": [str(k) for k in data] + [str(k) for k in _m(obj.get("binaryData"))],
        "value_keys": value_keys,
    }


def redact(obj: Any) -> Any:
    """Copy of a request/response object with ConfigMap/Secret values replaced by their size."""
    if not isinstance(obj, Mapping) or obj.get("kind") not in ("ConfigMap", "Secret"):
        return obj
    out = copy.deepcopy(dict(obj))
    for key in ("data", "binaryData", "stringData"):
        if isinstance(out.get(key), Mapping):
            out[key] = {k: f"<redacted {len(str(v))} bytes>" for k, v in out[key].items()}
    return out


def _exec_facts(uri: str) -> tuple[dict[str, Any], dict[str, Any]]:
    params = parse_qs(urlsplit(uri).query)
    flat = {k: (v[0] if len(v) == 1 else v) for k, v in params.items()}
    container = params.get("container")
    return flat, {"command": params.get("command", []), "container": container[0] if container else None}


def normalize(ev: AuditEvent, cluster: str) -> dict[str, Any]:
    """One validated audit event → one Memtrail event dict (``host`` = the cluster name)."""
    obj_ref = ev.objectRef
    ns = obj_ref.namespace if obj_ref else None
    resource = obj_ref.resource if obj_ref else None
    sub = obj_ref.subresource if obj_ref else None
    name = obj_ref.name if obj_ref else None
    req = ev.requestObject or {}
    resp = ev.responseObject or {}
    code = ev.responseStatus.code if ev.responseStatus else None
    t = _ts(ev.stageTimestamp or ev.requestReceivedTimestamp)
    uri_params, exec_facts = _exec_facts(ev.requestURI)

    resp_meta, req_meta = _m(resp.get("metadata")), _m(req.get("metadata"))
    if not name:  # creates with generateName: the response holds the final name
        name = _opt_str(resp_meta.get("name")) or _opt_str(req_meta.get("name"))

    ka_req: dict[str, Any] = {}
    for key, facts in (
        ("pod", pod_facts(req)),
        ("role", role_facts(req)),
        ("binding", binding_facts(req)),
        ("configmap", configmap_facts(req)),
    ):
        if facts is not None:
            ka_req[key] = facts
    if "pod" in ka_req and resource == "pods" and name:
        ka_req["pod"]["name"] = name
    if sub == "ephemeralcontainers":
        eph = _l(_m(req.get("spec")).get("ephemeralContainers"))
        ka_req["ephemeral_containers"] = [_container_facts(c, {}) for c in eph if isinstance(c, Mapping)]

    raw = ev.model_dump(mode="json", exclude_none=True)
    for key in ("requestObject", "responseObject"):
        if key in raw:
            raw[key] = redact(raw[key])

    pod = name if resource == "pods" else None
    ka: dict[str, Any] = {
        "auditid": ev.auditID,
        "stage": ev.stage,
        "level": ev.level,
        # when the request reached the API server: the same for every stage of one request
        "request_time": _ts(ev.requestReceivedTimestamp or ev.stageTimestamp),
        "verb": ev.verb,
        "uri": ev.requestURI,
        "uri_params": uri_params,
        "useragent": ev.userAgent,
        "sourceips": ev.sourceIPs,
        "user": {"name": ev.user.username, "uid": ev.user.uid, "groups": ev.user.groups},
        "impuser": {"name": ev.impersonatedUser.username if ev.impersonatedUser else None},
        "auth": {
            "decision": ev.annotations.get("authorization.k8s.io/decision"),
            "reason": ev.annotations.get("authorization.k8s.io/reason"),
        },
        "target": {
            "resource": resource,
            "subresource": sub,
            "namespace": ns,
            "name": name,
            "apigroup": obj_ref.apiGroup if obj_ref else None,
        },
        "response": {
            "code": code,
            "reason": ev.responseStatus.reason if ev.responseStatus else None,
        },
        "resp": {"name": _opt_str(resp_meta.get("name"))},
        "req": ka_req,
        "event": raw,
    }
    if sub in ("exec", "attach"):
        ka["exec"] = exec_facts

    return {
        "v": 1,
        "id": f"k8s:{ev.auditID}:{ev.stage}",
        "ts_ns": int(t * 1e9),
        "time": t,
        "host": cluster,
        "syscall": SOURCE,
        "kind": SOURCE,
        "ret": code,
        "args": {},
        # No process: the actor is an API user. A stub keeps the Event schema and gives alerts
        # a readable command line ("create /api/v1/namespaces/x/pods").
        "process": actor_process("k8s-audit", f"{ev.user.username}: {ev.verb} {ev.requestURI}"),
        "cgroup_id": 0,
        "container_id": None,
        "container": None,
        "source": SOURCE,
        "kubernetes": {"namespace": ns, "pod_name": pod, "pod_key": pod_key(ns, pod)},
        "ka": ka,
    }


def actor_process(comm: str, cmdline: str) -> dict[str, Any]:
    """The ``process`` stub of a non-syscall event: no process, the actor is an API user."""
    return {
        "pid": 0,
        "tid": 0,
        "ppid": 0,
        "uid": -1,
        "gid": -1,
        "comm": comm,
        "exe": None,
        "cmdline": cmdline,
    }


def message_key(event: Mapping[str, Any]) -> str:
    """Kafka key: ``<ns>/<pod>`` for a pod's events so they share a partition, else ``<ns>/<resource>/<name>``."""
    k8s = event.get("kubernetes") or {}
    if k8s.get("pod_key"):
        return str(k8s["pod_key"])
    target = (event.get("ka") or {}).get("target") or {}
    return (
        f"{target.get('namespace') or '_cluster'}/{target.get('resource') or '-'}/{target.get('name') or '-'}"
    )
