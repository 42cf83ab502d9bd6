"""docs/deploy.md stays true: the paths it names exist, the values it lists are chart values,
the variables it lists are read by a component, and its `helm install` example renders."""

from __future__ import annotations

import re
import shlex
from typing import Any

import yaml

from tests.deploy.deploy_support import CHART, REPO, manifests, render
from tests.deploy.test_deploy_env_names import known

DOC = (REPO / "docs" / "deploy.md").read_text()


def test_paths_named_in_the_doc_exist() -> None:
    paths = set(re.findall(r"`((?:deploy|scripts|tests|sensors|streams|sinks)/[\w./-]+)`", DOC))
    assert paths
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert not missing, missing


def _has_key(values: dict[str, Any], dotted: str) -> bool:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_values_in_the_table_are_chart_values() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    table = [line for line in DOC.splitlines() if line.startswith("| `") and "`" in line]
    keys: set[str] = set()
    for line in table:
        first_cell = line.split("|")[1]
        for key in re.findall(r"`([a-zA-Z]+(?:\.[a-zA-Z*]+)+)`", first_cell):
            keys.add(key)
    keys = {k for k in keys if not k.startswith(("memtrail.", "deploy."))}
    assert len(keys) > 10
    unknown = sorted(
        k for k in keys if "*" not in k and not k.startswith("metrics.") and not _has_key(values, k)
    )
    assert not unknown, unknown


def test_environment_variables_in_the_doc_are_read() -> None:
    names: set[str] = set()
    for line in DOC.splitlines():
        if not line.startswith("| `MEMTRAIL_"):
            continue
        cell = line.split("|")[1]
        full = re.findall(r"`(MEMTRAIL_[A-Z_]+)`", cell)
        names.update(full)
        if full:  # `_USER`-style suffixes continue the first name's prefix
            prefix = "_".join(full[0].split("_")[:2])  # MEMTRAIL_<COMPONENT>
            names.update(prefix + s for s in re.findall(r"`(_[A-Z_]+)`", cell))
    assert len(names) > 30
    unknown = sorted(n for n in names if not known(n))
    assert not unknown, unknown


def test_the_helm_install_example_renders() -> None:
    block = DOC.split("helm install memtrail deploy/helm/memtrail", 1)[1].split("```", 1)[0]
    sets: dict[str, Any] = {}
    for token in shlex.split(block.replace("\\\n", " ")):
        if "=" in token and not token.startswith("-"):
            key, value = token.split("=", 1)
            node = sets
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = int(value) if value.isdigit() else value
    assert sets["kafka"]["bootstrap"] == "my-kafka-bootstrap.kafka:9092"
    docs = manifests(render(sets))
    images = {
        c["image"]
        for d in docs
        if d["kind"] in {"Deployment", "DaemonSet"}
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert "registry.example.com/memtrail/memtrail-sensor:0.1.0" in images
