"""Reading pattern files: YAML (lists, macros, allow, patterns, families) and the seed's JSON form.

Lists and macros are shared by every file loaded together (like Falco's). A broken file
or pattern is reported as a PatternError and skipped; the rest still load.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from patterns.engine.api import PatternError
from patterns.engine.spec import AllowEntry, Family, PatternFile, PatternSpec

_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)(?:\[(\d+)\])?\}")
_SEED_SEVERITY = {
    "info": "info",
    "low": "info",
    "warning": "warning",
    "medium": "warning",
    "error": "error",
    "high": "error",
    "critical": "critical",
}
_SEED_FIELD = {"syscall": "syscall", "path": "path", "env": "env", "behavior": "behavior"}
_SEED_OP = {
    "equals": "eq",
    "contains": "contains",
    "starts_with": "startswith",
    "ends_with": "endswith",
    "regex": "regex",
}


@dataclass
class RawPattern:
    data: dict[str, Any]
    file: str
    custom: bool = False


@dataclass
class Loaded:
    lists: dict[str, list[Any]] = field(default_factory=dict)
    macros: dict[str, Any] = field(default_factory=dict)
    allow: list[tuple[AllowEntry, str]] = field(default_factory=list)
    patterns: list[RawPattern] = field(default_factory=list)
    errors: list[PatternError] = field(default_factory=list)


def pydantic_errors(exc: ValidationError, file: str, pattern_id: str | None) -> list[PatternError]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or None
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not part of the pattern schema)"
        out.append(PatternError(file, pattern_id, loc, msg))
    return out


def _value(m: re.Match[str], row: Mapping[str, Any]) -> Any:
    """``{name}`` is the row's value; ``{name[0]}`` the first item of a list value."""
    v = row[m.group(1)]
    if m.group(2) is not None:
        v = v[int(m.group(2))] if isinstance(v, list) else v
    return v


def _fill(obj: Any, row: Mapping[str, Any]) -> Any:
    if isinstance(obj, str):
        m = _PLACEHOLDER.fullmatch(obj)
        if m and m.group(1) in row:
            return _value(m, row)

        def sub(mm: re.Match[str]) -> str:
            return str(_value(mm, row)) if mm.group(1) in row else mm.group(0)

        return _PLACEHOLDER.sub(sub, obj)
    if isinstance(obj, list):
        return [_fill(x, row) for x in obj]
    if isinstance(obj, dict):
        return {_fill(k, row) if isinstance(k, str) else k: _fill(v, row) for k, v in obj.items()}
    return obj


def expand_family(fam: Family) -> list[dict[str, Any]]:
    return [_fill(fam.template, row) for row in fam.vars]


def _slug(name: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", name.upper())
    return "-".join(words)[:48] or "UNNAMED"


def from_seed(item: Mapping[str, Any]) -> dict[str, Any]:
    """Translate one pattern of the seed's JSON form into a pattern spec (dict)."""
    allowed = {"id", "name", "description", "indicators", "mitreTechniques", "severity", "tags", "enabled"}
    unknown = set(item) - allowed
    if unknown:
        raise ValueError(f"unknown keys in seed pattern: {', '.join(sorted(unknown))}")
    required: list[Any] = []
    optional: list[Any] = []
    for i, ind in enumerate(item.get("indicators") or []):
        if not isinstance(ind, Mapping):
            raise ValueError(f"indicators[{i}]: not an object")
        extra = set(ind) - {"type", "value", "condition", "required"}
        if extra:
            raise ValueError(f"indicators[{i}]: unknown keys {', '.join(sorted(extra))}")
        ftype = _SEED_FIELD.get(str(ind.get("type")))
        if ftype is None:
            raise ValueError(f"indicators[{i}].type: must be one of syscall, path, env, behavior")
        op = _SEED_OP.get(str(ind.get("condition", "equals")))
        if op is None:
            raise ValueError(
                f"indicators[{i}].condition: must be one of equals, contains, starts_with, ends_with, regex"
            )
        if not isinstance(ind.get("value"), str | int | float | bool):
            raise ValueError(f"indicators[{i}].value: a string or number is required")
        test = {ftype: {op: ind["value"]}}
        (required if ind.get("required", False) else optional).append(test)
    if not required and not optional:
        raise ValueError("indicators: at least one indicator is required")
    cond: dict[str, Any] = {}
    if required:
        cond["all"] = required
    if optional and not required:
        cond["any"] = optional
    name = str(item.get("name") or "")
    sev = _SEED_SEVERITY.get(str(item.get("severity", "warning")).lower())
    if sev is None:
        raise ValueError("severity: must be info, warning, error or critical (or low, medium, high)")
    spec: dict[str, Any] = {
        "id": item.get("id") or f"MT-CUSTOM-{_slug(name)}",
        "name": name,
        "description": item.get("description") or name,
        "severity": sev,
        "techniques": list(item.get("mitreTechniques") or []),
        "tags": ["custom", *list(item.get("tags") or [])],
        "category": "custom",
        "maturity": "incubating",
        "condition": cond,
    }
    if "enabled" in item:
        spec["enabled"] = bool(item["enabled"])
    return spec


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return yaml.load(text, Loader=_YamlLoader)  # CSafeLoader or SafeLoader: safe, C speed if built


def load_file(path: Path, out: Loaded, custom: bool = False) -> None:
    f = str(path)
    try:
        doc = _read(path)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, json.JSONDecodeError) as exc:
        out.errors.append(PatternError(f, None, None, f"cannot parse: {exc}"))
        return
    if doc is None:
        return
    if not isinstance(doc, dict):
        out.errors.append(PatternError(f, None, None, "a pattern file is a mapping at the top level"))
        return
    if (
        path.suffix == ".json"
        and doc.get("patterns")
        and any(isinstance(p, dict) and "indicators" in p for p in doc["patterns"])
    ):
        load_seed_doc(doc, f, out)
        return
    try:
        pf = PatternFile.model_validate(doc)
    except ValidationError as exc:
        out.errors.extend(pydantic_errors(exc, f, None))
        return
    for name, items in pf.lists.items():
        if name in out.lists:
            out.errors.append(PatternError(f, None, f"lists.{name}", "list already defined in another file"))
            continue
        out.lists[name] = items
    for name, cond in pf.macros.items():
        if name in out.macros:
            out.errors.append(
                PatternError(f, None, f"macros.{name}", "macro already defined in another file")
            )
            continue
        out.macros[name] = cond
    out.allow.extend((a, f) for a in pf.allow)
    for p in pf.patterns:
        out.patterns.append(RawPattern(p, f, custom))
    for i, fam_raw in enumerate(pf.families):
        try:
            fam = Family.model_validate(fam_raw)
        except ValidationError as exc:
            fid = fam_raw.get("family") if isinstance(fam_raw, dict) else None
            out.errors.extend(
                PatternError(e.file, e.pattern_id, f"families[{i}].{e.field}", e.message)
                for e in pydantic_errors(exc, f, fid)
            )
            continue
        for p in expand_family(fam):
            p.setdefault("tags", [])
            out.patterns.append(RawPattern(p, f, custom))


def load_seed_doc(doc: Mapping[str, Any], file: str, out: Loaded) -> None:
    for i, item in enumerate(doc.get("patterns") or []):
        pid = item.get("id") or item.get("name") if isinstance(item, Mapping) else None
        try:
            if not isinstance(item, Mapping):
                raise ValueError("a pattern is an object")
            out.patterns.append(RawPattern(from_seed(item), file, custom=True))
        except ValueError as exc:
            out.errors.append(PatternError(file, str(pid) if pid else None, f"patterns[{i}]", str(exc)))


def pattern_files(dirs: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        d = Path(d)
        if d.is_file():
            files.append(d)
        elif d.is_dir():
            files.extend(
                sorted(p for p in d.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file())
            )
    return files


def snapshot(dirs: Iterable[Path]) -> dict[str, float]:
    """Pattern files and their modification times, to notice a changed library."""
    out: dict[str, float] = {}
    for p in pattern_files(dirs):
        try:
            out[str(p)] = p.stat().st_mtime
        except OSError:
            continue
    return out


def load_dirs(dirs: Iterable[Path]) -> Loaded:
    out = Loaded()
    for d in dirs:
        if not Path(d).exists():
            out.errors.append(PatternError(str(d), None, None, "no such file or directory"))
    for path in pattern_files(dirs):
        load_file(path, out)
    return out


def parse_spec(raw: RawPattern) -> tuple[PatternSpec | None, list[PatternError]]:
    pid = raw.data.get("id") if isinstance(raw.data, dict) else None
    try:
        return PatternSpec.model_validate(raw.data), []
    except ValidationError as exc:
        return None, pydantic_errors(exc, raw.file, str(pid) if pid else None)
