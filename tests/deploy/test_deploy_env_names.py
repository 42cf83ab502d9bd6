"""Every MEMTRAIL_* variable the chart and the compose file set is one a component reads
(a pydantic-settings field or a CLI envvar), and its value parses there: a renamed
setting breaks this test rather than a deployment."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import typer
from pydantic import ValidationError

from tests.deploy.deploy_support import COMPOSE, containers, env_of, full_values, manifests, render

#: env prefix → (module, settings class) of the component that owns it.
COMPONENT_SETTINGS = {
    "MEMTRAIL_SENSOR_": ("sensors.config", "SensorSettings"),
    "MEMTRAIL_STREAM_": ("streams.config", "StreamOptions"),
    "MEMTRAIL_OPENSEARCH_": ("sinks.opensearch.config", "OpenSearchSettings"),
    "MEMTRAIL_WAZUH_": ("sinks.wazuh.config", "WazuhSettings"),
    "MEMTRAIL_SHIM_": ("sinks.shim.config", "ShimSettings"),
    "MEMTRAIL_AUDIT_": ("sensors.k8s_audit.settings", "AuditWebhookSettings"),
}


def _settings_class(prefix: str) -> Any:
    module, name = COMPONENT_SETTINGS[prefix]
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"{module}.{name} (owner of {prefix}*) does not import: {exc}")


def _shared_names() -> set[str]:
    from memtrail.core.settings import KafkaSecurity, KafkaSettings, Settings, Topics

    names = {f"MEMTRAIL_{f.upper()}" for f in Settings.model_fields}
    names |= {f"MEMTRAIL_KAFKA__{f.upper()}" for f in KafkaSettings.model_fields}
    names |= {f"MEMTRAIL_KAFKA__SECURITY__{f.upper()}" for f in KafkaSecurity.model_fields}
    names |= {f"MEMTRAIL_TOPICS__{f.upper()}" for f in Topics.model_fields}
    return names


def _cli_envvars() -> set[str]:
    from memtrail.cli import app

    found: set[str] = set()

    def walk(cmd: Any) -> None:
        for p in getattr(cmd, "params", []):
            env = getattr(p, "envvar", None)
            found.update([env] if isinstance(env, str) else env or [])
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(app))
    return found


def _owner(name: str) -> str | None:
    return max((p for p in COMPONENT_SETTINGS if name.startswith(p)), key=len, default=None)


def known(name: str) -> bool:
    if name in _shared_names() or name in _cli_envvars():
        return True
    prefix = _owner(name)
    if prefix is None:
        return False
    field = name.removeprefix(prefix).lower()
    return field in _settings_class(prefix).model_fields


@contextmanager
def environ(env: dict[str, str]) -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("MEMTRAIL_")}
    for k in saved:
        del os.environ[k]
    os.environ.update(env)
    try:
        yield
    finally:
        for k in env:
            os.environ.pop(k, None)
        os.environ.update(saved)


def check_parses(where: str, env: dict[str, str]) -> list[str]:
    """Build the shared Settings and each owning component's settings from this environment."""
    from memtrail.core.settings import Settings

    errors = []
    with environ(env):
        classes = [Settings] + [_settings_class(p) for p in {_owner(k) for k in env} if p]
        for cls in classes:
            try:
                cls()
            except ValidationError as exc:
                if cls.__name__ == "ShimSettings" and "MEMTRAIL_SHIM_TOKEN" not in env:
                    continue  # the token comes from a Secret (valueFrom): refused when empty, by design
                errors.append(f"{where}: {cls.__name__}: {exc}")
    return errors


def _chart_envs() -> Iterator[tuple[str, dict[str, Any]]]:
    for values in ({}, full_values()):
        for doc in manifests(render(values)):
            if doc["kind"] in {"Deployment", "DaemonSet", "Job"}:
                for c in containers(doc):
                    yield f"{doc['kind']}/{doc['metadata']['name']}/{c['name']}", env_of(c)


def _compose_envs() -> Iterator[tuple[str, dict[str, Any]]]:
    import yaml

    text = COMPOSE.read_text()
    data = yaml.safe_load(text)
    for name, svc in data["services"].items():
        env = svc.get("environment") or {}
        if any(k.startswith("MEMTRAIL_") for k in env):
            # Resolve ${VAR:-default} / ${VAR:?msg} to something parseable for the check.
            yield f"compose/{name}", {k: _subst(str(v)) for k, v in env.items()}


def _subst(value: str) -> str:
    import re

    def repl(m: re.Match[str]) -> str:
        inner = m.group(1)
        if ":-" in inner:
            return inner.split(":-", 1)[1]
        return "placeholder-secret"

    return re.sub(r"\$\{([^}]*)\}", repl, value)


def test_every_variable_is_read_by_a_component() -> None:
    unknown = sorted(
        {
            f"{where}: {name}"
            for where, env in [*_chart_envs(), *_compose_envs()]
            for name in env
            if name.startswith("MEMTRAIL_") and not known(name)
        }
    )
    assert not unknown, "variables no component reads:\n" + "\n".join(unknown)


def test_every_value_parses_in_its_component() -> None:
    errors: list[str] = []
    for where, env in [*_chart_envs(), *_compose_envs()]:
        plain = {k: v for k, v in env.items() if k.startswith("MEMTRAIL_") and isinstance(v, str)}
        # SASL credentials come from the operator's Secret: any string parses (and they are required)
        plain |= {
            k: "from-a-secret"
            for k in env
            if k.startswith("MEMTRAIL_KAFKA__SECURITY__SASL_") and k not in plain
        }
        errors += check_parses(where, plain)
    assert not errors, "\n".join(errors)
