"""The library never grants an exception on a program's name alone.

A name (``exe.name``, ``comm``, ``parent.name``, an exec's invoked ``path.name``) is what an
attacker picks when copying or symlinking a tool; an exception or a ``not:`` allowance that
names a program must also rest on a kernel fact in the same condition (or around it): the
resolved executable path (``exe``, ``process.exe``, ``parent.exe``, ``ancestors.exe``, the
exec's resolved ``path``) or a macro built on it (``packaged_exe``, ``packaged_parent``,
``package_manager_process``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from memtrail.core.settings import DEFAULT_PATTERNS_DIR
from patterns.engine.loader import load_dirs

NAME_KEYS = frozenset(
    {
        "exe.name",
        "comm",
        "process.comm",
        "parent.name",
        "parent.comm",
        "ancestors.name",
        "ancestors.comm",
        "path.name",
    }
)
ANCHOR_KEYS = frozenset({"exe", "process.exe", "parent.exe", "ancestors.exe", "path"})
ANCHOR_MACROS = frozenset({"packaged_exe", "packaged_parent", "package_manager_process"})


def _anchored(node: dict[str, Any]) -> bool:
    macros = node.get("macro")
    names = {macros} if isinstance(macros, str) else set(macros or ())
    return bool(ANCHOR_KEYS & node.keys()) or bool(ANCHOR_MACROS & names)


def _name_only(cond: Any, anchored: bool = False, where: str = "") -> Iterator[str]:
    """Paths of AND-nodes under an allowance that test a name with no kernel anchor."""
    if isinstance(cond, list):
        for i, c in enumerate(cond):
            yield from _name_only(c, anchored, f"{where}[{i}]")
        return
    if not isinstance(cond, dict):
        return
    here = anchored or _anchored(cond)
    if NAME_KEYS & cond.keys() and not here:
        yield f"{where}: {sorted(NAME_KEYS & cond.keys())}"
    for k in ("any", "all"):
        if k in cond:
            yield from _name_only(cond[k], here, f"{where}.{k}")


def _nots(cond: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """Every ``not:`` value in a condition (an allowance inside a detection)."""
    if isinstance(cond, list):
        for i, c in enumerate(cond):
            yield from _nots(c, f"{where}[{i}]")
    elif isinstance(cond, dict):
        for k, v in cond.items():
            if k == "not":
                yield f"{where}.not", v
            elif k in ("any", "all"):
                yield from _nots(v, f"{where}.{k}")


def test_no_exception_rests_on_a_name_alone() -> None:
    loaded = load_dirs([DEFAULT_PATTERNS_DIR])
    bad: list[str] = []
    for raw in loaded.patterns:
        d = raw.data
        pid = d.get("id", "?")
        for i, exc in enumerate(d.get("exceptions") or ()):
            bad += [f"{pid} exceptions[{i}]{w}" for w in _name_only(exc)]
        conds = [("condition", d.get("condition"))]
        seq = d.get("sequence") or {}
        conds += [(f"sequence.steps[{i}]", s.get("condition")) for i, s in enumerate(seq.get("steps") or ())]
        for key, cond in conds:
            for where, v in _nots(cond, key):
                bad += [f"{pid} {where}{w}" for w in _name_only(v)]
    for entry, _file in loaded.allow:
        bad += [f"allow {entry.id}{w}" for w in _name_only(entry.condition)]
    assert not bad, "\n".join(bad)
