"""``memtrail patterns lint|test|stats|explain``: check and inspect the pattern library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

DirsOpt = typer.Option(
    None, "--dir", "-d", help="Pattern directory or file (repeatable); default: the settings' patterns_dirs"
)


def _dirs(dirs: list[Path] | None) -> list[Path]:
    if dirs:
        return list(dirs)
    from memtrail.core.settings import load_settings

    return list(load_settings().patterns_dirs)


def _table(title: str, rows: dict[str, Any], width: int = 44) -> None:
    typer.echo(f"\n{title}")
    for k, v in rows.items():
        typer.echo(f"  {k:<{width}} {v:>5}")


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="The detection pattern library.", no_args_is_help=True)

    @sub.command("lint")
    def lint(dirs: list[Path] | None = DirsOpt) -> None:
        """Load and validate every pattern; reject two patterns with the same logic, a pattern
        another one subsumes, examples the sensors could not emit, and no_match examples that
        are not near misses. Exit 1 on any error."""
        from patterns.engine.assemble import build_engine
        from patterns.engine.lint import (
            duplicate_conditions,
            far_no_match,
            invalid_examples,
            replaced_ids,
            subsumed_patterns,
        )

        eng = build_engine(_dirs(dirs), [])
        cps = eng.compiled()
        errs = (
            list(eng.errors)
            + duplicate_conditions(cps)
            + replaced_ids(cps)
            + subsumed_patterns(eng)
            + invalid_examples(cps)
            + far_no_match(cps, eng.allow)
        )
        for cp in eng.compiled():
            if cp.spec.examples is None and not cp.info.custom:
                from patterns.engine.api import PatternError

                errs.append(PatternError(cp.info.file, cp.id, "examples", "missing (match and no_match)"))
        for e in errs:
            typer.echo(str(e), err=True)
        typer.echo(f"{eng.pattern_count()} patterns, {len(errs)} problems")
        raise typer.Exit(1 if errs else 0)

    @sub.command("test")
    def test(
        dirs: list[Path] | None = DirsOpt,
        pattern: str | None = typer.Option(None, "--pattern", "-p", help="Only this pattern id"),
    ) -> None:
        """Run every pattern's examples: match ones must alert, no_match ones must not."""
        from patterns.engine.assemble import build_engine
        from patterns.engine.examples import check_examples

        eng = build_engine(_dirs(dirs), [])
        failed = 0
        ran = 0
        for cp in eng.compiled():
            if pattern and cp.id != pattern:
                continue
            ran += 1
            errs = check_examples(cp, eng.allow, require=not cp.info.custom)
            for e in errs:
                typer.echo(f"FAIL {e}", err=True)
            failed += bool(errs)
        for e in eng.errors:
            typer.echo(f"LOAD {e}", err=True)
        typer.echo(f"{ran - failed} passed, {failed} failed")
        raise typer.Exit(1 if failed or eng.errors else 0)

    @sub.command("stats")
    def stats(
        dirs: list[Path] | None = DirsOpt,
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables"),
    ) -> None:
        """Counts by category, severity, kind, technique and tactic."""
        from patterns.engine.assemble import build_engine
        from patterns.engine.lint import library_stats
        from patterns.mitre.catalog import load_catalog

        eng = build_engine(_dirs(dirs), [])
        s = library_stats(eng.compiled())
        if as_json:
            typer.echo(json.dumps(s, indent=2))
            return
        typer.echo(
            f"{s['patterns']} patterns, {s['techniques']} ATT&CK techniques "
            f"({s['parent_techniques']} parent techniques), {len(eng.errors)} load errors"
        )
        _table("by category", s["by_category"])
        _table("by severity", s["by_severity"])
        _table("by kind", s["by_kind"])
        _table("by tactic", s["by_tactic"])
        cat = load_catalog()
        _table(
            "by technique",
            {f"{t} {cat.display_name(t)}"[:60]: n for t, n in s["by_technique"].items()},
            width=60,
        )

    @sub.command("explain")
    def explain(
        event_json: str = typer.Argument(..., help="An event as JSON, a file holding one, or - for stdin"),
        dirs: list[Path] | None = DirsOpt,
        show_all: bool = typer.Option(
            False, "--all", help="Also list reached patterns whose condition fails"
        ),
    ) -> None:
        """Which patterns an event reaches through the index, which conditions hold, and why not."""
        from patterns.engine.assemble import build_engine
        from patterns.engine.examples import fill_example
        from patterns.engine.lint import explain as explain_event

        text = sys.stdin.read() if event_json == "-" else event_json
        if not text.lstrip().startswith(("{", "[")) and Path(text).is_file():
            text = Path(text).read_text()
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            typer.echo(f"not JSON: {exc}", err=True)
            raise typer.Exit(2) from None
        if not isinstance(raw, dict):
            typer.echo("an event is a JSON object", err=True)
            raise typer.Exit(2)
        event = raw if "process" in raw and "time" in raw else fill_example(raw)[0]
        eng = build_engine(_dirs(dirs), [])
        rows = explain_event(eng, event)
        alerts = eng.process(event)
        typer.echo(f"reached {len(rows)} of {eng.pattern_count()} patterns through the index")
        for r in rows:
            if not r["condition_holds"] and not show_all:
                continue
            verdict = (
                "ALERT"
                if r["would_alert"]
                else "suppressed (exception/allow-list)"
                if r["suppressed_by_exception"]
                else f"step '{r['step']}' of a {r['kind']} holds"
                if r["condition_holds"]
                else "condition false"
            )
            typer.echo(f"  {r['pattern']:<28} {verdict:<40} {','.join(r['techniques'])}  {r['name']}")
        for a in alerts:
            typer.echo(f"alert {a.id} {a.rule.id} [{a.rule.severity}] {a.message}")

    app.add_typer(sub, name="patterns")
