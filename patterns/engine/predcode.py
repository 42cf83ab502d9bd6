"""A trigger's fast predicate as one generated Python function.

``conditions`` compiles a condition into nested closures: a conjunction calls one closure
per test, each calls its field's getter, each getter walks the event's dicts again. For
the engine's hot path the top-level conjuncts of a trigger become the source of one
function instead: each field is read once (the first test that needs it, the nested dicts
walked inline) and the simple tests (``eq ne in not_in gt gte lt lte startswith endswith
flags_all flags_any flags_none exists``) are inlined for the value shapes events carry
(a str, an int, a list of flag names, absent). Any other shape, and every other node
(``any``, ``not``, regexes, ...), calls the condition's own closure, so the function is
true exactly when the conjunction of the closures is; an exception in a getter or a
closure propagates as before (the engine treats it as no match).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from patterns.engine.conditions import Compiled
from patterns.engine.fields import EXECS, VIRTUAL, compile_getter, inline_source, proc_self, resolve

Pred = Callable[[Mapping[str, Any]], bool]

_EMPTY: tuple[Any, ...] = (None, [], "")
_CMP = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
INLINE_OPS = frozenset(
    {
        "eq",
        "ne",
        "in",
        "not_in",
        "startswith",
        "endswith",
        "exists",
        "flags_all",
        "flags_any",
        "flags_none",
        *_CMP,
    }
)


class _Gen:
    def __init__(self, execs: bool | None = None) -> None:
        #: whether the events are execs (True), never are (False), or either (None)
        self.execs = execs
        self.lines: list[str] = ["def pred(e):"]
        self.ns: dict[str, Any] = {"_EMPTY": _EMPTY, "proc_self": proc_self}
        #: fields read on the straight-line top level (valid for the rest of the function)
        self.fields: dict[str, str] = {}
        self.n = 0

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def const(self, value: Any) -> str:
        name = f"k{len(self.ns)}"
        self.ns[name] = value
        return name

    def field(self, fpath: str, depth: int) -> str:
        """The local holding the field's value: read here on first use at the top level,
        reused after; read again inside a branch (a branch may not run)."""
        var = self.fields.get(fpath)
        if var is not None:
            return var
        self.n += 1
        var = f"v{self.n}"
        if depth == 1:
            self.fields[fpath] = var
        g = self.const(compile_getter(fpath))
        path = resolve(fpath)
        if path in VIRTUAL:
            for text in inline_source(fpath, var, f"t{self.n}", g, self.execs) or [f"{var} = {g}(e)"]:
                self.line(depth, text)
            return var
        parts = path.split(".")
        self.line(depth, f"{var} = e.get({parts[0]!r})")
        self._descend(var, g, parts[1:], depth)
        return var

    def _descend(self, var: str, g: str, parts: list[str], depth: int) -> None:
        """A plain dict: one step down; absent: absent; any other shape: the getter."""
        if not parts:
            return
        self.line(depth, f"if {var}.__class__ is dict:")
        self.line(depth + 1, f"{var} = {var}.get({parts[0]!r})")
        self._descend(var, g, parts[1:], depth + 1)
        self.line(depth, f"elif {var} is not None:")
        self.line(depth + 1, f"{var} = {g}(e)")

    def inlinable(self, c: Compiled) -> bool:
        if c.leaf is None:
            return False
        op, _, value = c.leaf
        if op == "not":
            return self.inlinable(value)
        if op == "or":
            return any(self.inlinable(b) for b in value)
        return op in INLINE_OPS

    def ok(self, c: Compiled, depth: int) -> None:
        """Code setting ``ok`` to ``c.fn(e)`` (inlined where it can be)."""
        L = self.line
        if not self.inlinable(c):
            L(depth, f"ok = {self.const(c.fn)}(e)")
            return
        assert c.leaf is not None
        op, fpath, value = c.leaf
        if op == "not":
            self.ok(value, depth)
            L(depth, "ok = not ok")
            return
        if op == "or":  # branches in order, the first true one ends it
            for i, b in enumerate(value):
                d = depth + i
                if i:
                    L(d - 1, "if not ok:")
                parts = b.conj or (b,)
                if len(parts) == 1:
                    self.ok(b, d)
                else:  # an all inside the any: its conjuncts in order
                    for j, p in enumerate(parts):
                        if j:
                            L(d + j - 1, "if ok:")
                        self.ok(p, d + j)
            return
        v = self.field(fpath, depth)
        k = self.const(value)
        fb = self.const(c.fn)  # the reference closure for any other value shape
        if op in ("eq", "ne"):
            L(depth, f"if {v} == {k}:")
            L(depth + 1, f"ok = {op == 'eq'}")
            L(depth, f"elif {v}.__class__ is str or {v} is None:")
            L(depth + 1, f"ok = {op == 'ne'}")
        elif op in ("in", "not_in"):
            L(depth, f"if {v}.__class__ is str or {v} is None or {v}.__class__ is int:")
            L(depth + 1, f"ok = {v} {'' if op == 'in' else 'not '}in {k}")
        elif op in _CMP:
            L(depth, f"if {v}.__class__ is int or {v}.__class__ is float:")
            L(depth + 1, f"ok = float({v}) {_CMP[op]} {k}")
            L(depth, f"elif {v} is None or {v}.__class__ is str:")
            L(depth + 1, "ok = False")
        elif op in ("startswith", "endswith"):
            L(depth, f"if {v}.__class__ is str:")
            L(depth + 1, f"ok = {v}.{op}({k})")
            L(depth, f"elif {v} is None:")
            L(depth + 1, "ok = False")
        elif op == "exists":
            L(depth, f"ok = {v} {'not ' if value else ''}in _EMPTY")
            return
        else:  # flags_all / flags_any / flags_none on a decoded list; None reads as no flags
            test = {
                "flags_all": f"{k}.issubset({v})",
                "flags_any": f"not {k}.isdisjoint({v})",
                "flags_none": f"{k}.isdisjoint({v})",
            }[op]
            on_none = {
                "flags_all": value.issubset(()),
                "flags_any": not value.isdisjoint(()),
                "flags_none": value.isdisjoint(()),
            }[op]
            L(depth, f"if {v}.__class__ is list:")
            L(depth + 1, f"ok = {test}")
            L(depth, f"elif {v} is None:")
            L(depth + 1, f"ok = {on_none}")
        L(depth, "else:")
        L(depth + 1, f"ok = {fb}(e)")


def compile_conjunction(
    parts: Sequence[Compiled], syscalls: frozenset[Any] | None = None
) -> tuple[Pred, str]:
    """One function true exactly when every part's ``fn`` is, tested in the given order
    (and its source, for tests). ``syscalls``: the only ones the events given to it can have
    (the index's guarantee), which settles what ``path`` reads."""
    execs = None
    if syscalls:
        execs = True if syscalls <= EXECS else False if not syscalls & EXECS else None
    g = _Gen(execs)
    for p in parts:
        if g.inlinable(p):
            g.ok(p, 1)
            g.line(1, "if not ok:")
        else:
            g.line(1, f"if not {g.const(p.fn)}(e):")
        g.line(2, "return False")
    g.line(1, "return True")
    src = "\n".join(g.lines) + "\n"
    exec(compile(src, "<trigger predicate>", "exec"), g.ns)  # our own generated source
    fn: Pred = g.ns["pred"]
    return fn, src
