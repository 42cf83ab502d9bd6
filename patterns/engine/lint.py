"""Library checks and reports: duplicate conditions, examples, statistics, explain."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from patterns.engine.api import PatternError
from patterns.engine.compile import CompiledPattern
from patterns.mitre.catalog import TACTIC_IDS, load_catalog, tactic_name


def duplicate_conditions(patterns: Iterable[CompiledPattern]) -> list[PatternError]:
    """Two patterns whose logic compiles to the same canonical form are one pattern twice."""
    seen: dict[Any, CompiledPattern] = {}
    errs: list[PatternError] = []
    for cp in patterns:
        first = seen.setdefault(cp.canon, cp)
        if first is not cp:
            errs.append(
                PatternError(
                    cp.info.file,
                    cp.id,
                    "condition",
                    f"same logic as {first.id} ({first.info.file}): merge them or make them differ",
                )
            )
    return errs


def library_stats(patterns: Iterable[CompiledPattern]) -> dict[str, Any]:
    cat = load_catalog()
    by_cat: Counter[str] = Counter()
    by_sev: Counter[str] = Counter()
    by_tech: Counter[str] = Counter()
    by_tactic: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    by_maturity: Counter[str] = Counter()
    n = 0
    for cp in patterns:
        n += 1
        by_cat[cp.spec.category or "-"] += 1
        by_sev[cp.spec.severity] += 1
        by_kind[cp.kind] += 1
        by_maturity[cp.spec.maturity] += 1
        tactics: set[str] = set()
        for t in cp.spec.techniques:
            by_tech[t] += 1
            tech = cat.get(t)
            tactics.update(tech.tactics if tech else ())
        for ta in tactics:
            by_tactic[f"{TACTIC_IDS.get(ta, ta)} {tactic_name(ta)}"] += 1
    parents = {t.split(".")[0] for t in by_tech}
    return {
        "patterns": n,
        "techniques": len(by_tech),
        "parent_techniques": len(parents),
        "by_category": dict(by_cat.most_common()),
        "by_severity": dict(by_sev.most_common()),
        "by_kind": dict(by_kind.most_common()),
        "by_maturity": dict(by_maturity.most_common()),
        "by_technique": dict(sorted(by_tech.items())),
        "by_tactic": dict(by_tactic.most_common()),
    }


def explain(engine: Any, event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """For one event: which patterns its cheap keys reach, and for each whether each step's
    condition and the exceptions hold (a single event can only complete single-event patterns)."""
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    for trig in engine.candidates(event):
        if id(trig) in seen:
            continue
        seen.add(id(trig))
        cp = trig.pattern
        try:
            hit = bool(trig.pred(event))
        except Exception as exc:
            hit = False
            err: str | None = str(exc)
        else:
            err = None
        excepted = [i for i, f in enumerate(cp.exceptions) if hit and _safe(f, event)]
        out.append(
            {
                "pattern": cp.id,
                "name": cp.spec.name,
                "kind": cp.kind,
                "step": cp.steps[trig.step].name if cp.kind != "condition" else None,
                "condition_holds": hit,
                "suppressed_by_exception": bool(excepted),
                "would_alert": hit and not excepted and cp.kind == "condition",
                "techniques": list(cp.spec.techniques),
                "error": err,
            }
        )
    out.sort(key=lambda r: (not r["condition_holds"], r["pattern"]))
    return out


def _safe(f: Any, e: Mapping[str, Any]) -> bool:
    try:
        return bool(f(e))
    except Exception:
        return False
