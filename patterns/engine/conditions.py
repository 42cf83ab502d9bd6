"""The condition language: YAML structures compiled once into Python closures.

A condition is one of:

- a mapping of ``field: test`` pairs (all must hold) which may also hold the boolean
  keys ``all: [...]``, ``any: [...]``, ``not: cond`` and ``macro: name``;
- a list of conditions (all must hold).

A test is a scalar (equality), a list (membership), ``null`` (field absent) or a mapping
of operators, all of which must hold: ``eq ne in not_in startswith endswith contains
icontains glob regex not_regex gt gte lt lte flags_all flags_any flags_none exists eq_field
ne_field``. A string ``"$name"`` anywhere a value or list is expected names a list.
On a list-valued field (argv, flags, ancestors.exe) the string operators hold when any
element matches.

Compilation also yields a canonical form (for the duplicate lint) and index hints: the
exact values or prefixes a field must have for the condition to hold at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from patterns.engine import regex
from patterns.engine.fields import compile_getter, resolve

Pred = Callable[[Mapping[str, Any]], bool]
BOOL_KEYS = frozenset({"all", "any", "not", "macro"})


class ConditionError(ValueError):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


@dataclass
class Hints:
    """What must hold for a condition to be true: exact values and prefixes per field."""

    exact: dict[str, frozenset[Any]] = field(default_factory=dict)
    prefix: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: a regex (source) the field's string value must match (re.search)
    regex: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: flag names of which the field's flag set holds at least one (flags_any, or one
    #: selective member of flags_all)
    flags: dict[str, frozenset[str]] = field(default_factory=dict)
    #: the hints of the branches of an ``any`` of which one must hold: an index may place a
    #: trigger under a key of every branch when no single key covers them all
    alts: tuple[Hints, ...] = ()
    #: fields that must be present (``exists: true``) beyond those the facts above name
    present: frozenset[str] = frozenset()
    #: the branches of every ``any`` of a conjunction (``alts`` is the first): the index
    #: may split on whichever is the most selective
    any_groups: tuple[tuple[Hints, ...], ...] = ()

    def required(self) -> frozenset[str]:
        """Fields whose absence (a None value) makes the condition false: an exact value set
        without None, a prefix, a regex, a flag or ``exists: true`` on them."""
        exact = (f for f, vals in self.exact.items() if None not in vals)
        return self.present.union(exact, self.prefix, self.regex, self.flags)

    def presence_options(self) -> tuple[frozenset[str], ...]:
        """Sets of fields of which one must be wholly present: ``required()``, with each
        branch's own of an ``any`` (a long list of branches gives up on them)."""
        base = self.required()
        if not self.alts:
            return (base,)
        opts = [base | o for a in self.alts for o in a.presence_options()]
        return tuple(dict.fromkeys(opts)) if len(opts) <= 16 else (base,)

    def merge_and(self, other: Hints) -> None:
        for f, vals in other.exact.items():
            self.exact[f] = self.exact[f] & vals if f in self.exact else vals
        for f, pre in other.prefix.items():
            self.prefix.setdefault(f, pre)
        for f, rx in other.regex.items():
            self.regex.setdefault(f, rx)
        for f, fl in other.flags.items():
            if f not in self.flags or len(fl) < len(self.flags[f]):
                self.flags[f] = fl
        if not self.alts:
            self.alts = other.alts
        self.any_groups += other.any_groups
        self.present |= other.present


@dataclass
class Compiled:
    fn: Pred
    canon: Any
    hints: Hints
    #: the conjuncts of an ``and``, nested ands flattened (empty for any other node)
    conj: tuple[Compiled, ...] = ()
    #: ``(operator, field path, value)`` of a single field test that ``predcode`` can
    #: inline (``fn`` stays the reference and the fallback for unusual value shapes);
    #: ``("not", "", inner)`` and ``("or", "", branches)`` for those boolean nodes
    leaf: tuple[str, str, Any] | None = None


@dataclass
class Context:
    lists: Mapping[str, list[Any]]
    macros: Mapping[str, Any]
    _macro_stack: list[str] = field(default_factory=list)


TRUE = Compiled(lambda e: True, ("true",), Hints())


def _expand(value: Any, ctx: Context, where: str) -> Any:
    """Replace ``$list`` references (whole value or list items) by the list's items."""
    if isinstance(value, str) and value.startswith("$") and len(value) > 1:
        name = value[1:]
        if name not in ctx.lists:
            raise ConditionError(where, f"unknown list '{name}'")
        return list(ctx.lists[name])
    if isinstance(value, list):
        out: list[Any] = []
        for v in value:
            ev = _expand(v, ctx, where)
            if isinstance(v, str) and v.startswith("$") and isinstance(ev, list):
                out.extend(ev)
            else:
                out.append(ev)
        return out
    return value


def _as_tuple_of_str(value: Any, where: str, op: str) -> tuple[str, ...]:
    vals = value if isinstance(value, list) else [value]
    if not vals or not all(isinstance(v, str) for v in vals):
        raise ConditionError(where, f"'{op}' needs a string or a non-empty list of strings")
    return tuple(vals)


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _any_str(get: Callable[[Mapping[str, Any]], Any], test: Callable[[str], bool]) -> Pred:
    def pred(e: Mapping[str, Any]) -> bool:
        v = get(e)
        if isinstance(v, str):
            return test(v)
        if isinstance(v, list):
            return any(isinstance(x, str) and test(x) for x in v)
        return False

    return pred


def _not(f: Pred) -> Pred:
    return lambda e: not f(e)


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return float(v)
    return None


#: flags that most events after the sensor's in-kernel filters carry: poor index keys
COMMON_FLAGS = frozenset(
    {"PROT_READ", "PROT_EXEC", "O_RDONLY", "O_CLOEXEC", "O_LARGEFILE", "MAP_PRIVATE", "MAP_DENYWRITE"}
)


def selective_flag(fs: frozenset[str]) -> str:
    """The member of a flags_all set to index on: the first one that is not common."""
    rare = sorted(fs - COMMON_FLAGS)
    return rare[0] if rare else sorted(fs)[0]


# One builder per operator: (field path, getter, expanded value, where) -> Compiled. The table
# below is the list of operators; a new one is a function and a line in it.
Getter = Callable[[Mapping[str, Any]], Any]


def _op_eq(fpath: str, get: Getter, value: Any, where: str) -> Compiled:
    if isinstance(value, list | dict):
        raise ConditionError(where, "'eq' needs a scalar (use 'in' for a list)")

    def fn(e: Mapping[str, Any], g: Getter = get, x: Any = value) -> bool:
        v = g(e)
        if v == x:
            return True
        return isinstance(v, list) and x in v

    return Compiled(
        fn, ("eq", fpath, value), Hints(exact={fpath: frozenset([value])}), leaf=("eq", fpath, value)
    )


def _op_ne(fpath: str, get: Getter, value: Any, where: str) -> Compiled:
    inner = _op_eq(fpath, get, value, where)
    return Compiled(_not(inner.fn), ("not", inner.canon), Hints(), leaf=("ne", fpath, value))


def _scalar_set(value: Any, where: str, op: str) -> frozenset[Any]:
    # an empty list is allowed (a tuning hook that ships empty): 'in' is then never true
    if not isinstance(value, list):
        raise ConditionError(where, f"'{op}' needs a list")
    if any(isinstance(v, list | dict) for v in value):
        raise ConditionError(where, f"'{op}' needs a list of scalars")
    return frozenset(value)


def _in_pred(get: Getter, s: frozenset[Any]) -> Pred:
    def fn_in(e: Mapping[str, Any], g: Getter = get, s: frozenset[Any] = s) -> bool:
        v = g(e)
        if isinstance(v, list):
            return any(x in s for x in v if not isinstance(x, dict | list))
        try:
            return v in s
        except TypeError:
            return False

    return fn_in


def _op_in(fpath: str, get: Getter, value: Any, where: str) -> Compiled:
    s = _scalar_set(value, where, "in")
    return Compiled(
        _in_pred(get, s),
        ("in", fpath, tuple(sorted(map(repr, s)))),
        Hints(exact={fpath: s}),
        leaf=("in", fpath, s),
    )


def _op_not_in(fpath: str, get: Getter, value: Any, where: str) -> Compiled:
    s = _scalar_set(value, where, "not_in")
    return Compiled(
        _not(_in_pred(get, s)),
        ("not", ("in", fpath, tuple(sorted(map(repr, s))))),
        Hints(),
        leaf=("not_in", fpath, s),
    )


def _op_startswith(fpath: str, get: Getter, value: Any, where: str) -> Compiled:
    t = _as_tuple_of_str(value, where, "startswith")
    return Compiled(
        _any_str(get, lambda v: v.startswith(t)),
        ("startswith", fpath, tuple(sorted(t))),
        Hints(prefix={fpath: t}),
        leaf=("startswith", fpath, t),
    )


def _op_endswith(fpath: str, get: Getter, value: Any, where: str) -> Compiled:
    t = _as_tuple_of_str(value, where, "endswith")
    return Compiled(
        _any_str(get, lambda v: v.endswith(t)),
        ("endswith", fpath, tuple(sorted(t))),
        Hints(present=frozenset([fpath])),
        leaf=("endswith", fpath, t),
    )


def _op_contains(fpath: str, get: Getter, value: Any, where: str) -> Compiled:
    t = _as_tuple_of_str(value, where, "contains")

    def fn(e: Mapping[str, Any], g: Getter = get, t: tuple[str, ...] = t) -> bool:
        v = g(e)
        if isinstance(v, str):
            return any(x in v for x in t)
        if isinstance(v, list):
            return any(x in v for x in t) or any(isinstance(y, str) and any(x in y for x in t) for y in v)
        return False

    return Compiled(fn, ("contains", fpath, tuple(sorted(t))), Hints(present=frozenset([fpath])))


def _op_icontains(fpath: str, get: Getter, value: Any, where: str) -> Compiled:
    t = _as_tuple_of_str(value, where, "icontains")
    tl = tuple(x.lower() for x in t)
    return Compiled(
        _any_str(get, lambda v: any(x in v.lower() for x in tl)),
        ("icontains", fpath, tuple(sorted(t))),
        Hints(present=frozenset([fpath])),
    )


def _compile_rx(op: str, t: tuple[str, ...], where: str) -> regex.Regex:
    try:
        return regex.glob(t) if op == "glob" else regex.any_of(t)
    except regex.RegexError as exc:
        raise ConditionError(where, f"bad {op}: {exc}") from None


def _op_glob(fpath: str, get: Getter, value: Any, where: str) -> Compiled:
    t = _as_tuple_of_str(value, where, "glob")
    return Compiled(
        _any_str(get, _compile_rx("glob", t, where).search),
        ("glob", fpath, tuple(sorted(t))),
        Hints(present=frozenset([fpath])),
    )


def _op_regex(fpath: str, get: Getter, value: Any, where: str) -> Compiled:
    t = _as_tuple_of_str(value, where, "regex")
    rx = _compile_rx("regex", t, where)
    return Compiled(_any_str(get, rx.search), ("regex", fpath, tuple(sorted(t))), Hints(regex={fpath: t}))


def _op_not_regex(fpath: str, get: Getter, value: Any, where: str) -> Compiled:
    # a string the regex does not match; on a list, any element it does not match (an image
    # from a registry outside an allowed set): what a negative lookahead said, in linear time
    t = _as_tuple_of_str(value, where, "not_regex")
    nrx = _compile_rx("not_regex", t, where)
    return Compiled(
        _any_str(get, lambda v: not nrx.search(v)),
        ("not_regex", fpath, tuple(sorted(t))),
        Hints(present=frozenset([fpath])),
    )


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def _op_compare(op: str) -> Callable[[str, Getter, Any, str], Compiled]:
    cmp = _COMPARE[op]

    def build(fpath: str, get: Getter, value: Any, where: str) -> Compiled:
        n = _num(value)
        if n is None:
            raise ConditionError(where, f"'{op}' needs a number")

        def fn(e: Mapping[str, Any], g: Getter = get, n: float = n) -> bool:
            raw = g(e)
            if isinstance(raw, list):
                return any((x := _num(v)) is not None and cmp(x, n) for v in raw)
            v = _num(raw)
            return v is not None and cmp(v, n)

        return Compiled(fn, (op, fpath, n), Hints(present=frozenset([fpath])), leaf=(op, fpath, n))

    return build


def _flags_of(get: Getter) -> Callable[[Mapping[str, Any]], Any]:
    def flags_of(e: Mapping[str, Any]) -> Any:
        """The flag names as an iterable (the decoded list as is; ``A|B`` strings split)."""
        v = get(e)
        if isinstance(v, list):
            return v
        if isinstance(v, str):
            return v.split("|")
        return ()

    return flags_of


# set methods take any iterable, so the event's list is never copied into a set
def _op_flags_all(fpath: str, get: Getter, value: Any, where: str) -> Compiled:
    fs = frozenset(_as_tuple_of_str(value, where, "flags_all"))
    flags_of = _flags_of(get)
    return Compiled(
        lambda e: fs.issubset(flags_of(e)),
        ("flags_all", fpath, tuple(sorted(fs))),
        Hints(flags={fpath: frozenset([selective_flag(fs)])}),
        leaf=("flags_all", fpath, fs),
    )


def _op_flags_any(fpath: str, get: Getter, value: Any, where: str) -> Compiled:
    fs = frozenset(_as_tuple_of_str(value, where, "flags_any"))
    flags_of = _flags_of(get)
    return Compiled(
        lambda e: not fs.isdisjoint(flags_of(e)),
        ("flags_any", fpath, tuple(sorted(fs))),
        Hints(flags={fpath: fs}),
        leaf=("flags_any", fpath, fs),
    )


def _op_flags_none(fpath: str, get: Getter, value: Any, where: str) -> Compiled:
    fs = frozenset(_as_tuple_of_str(value, where, "flags_none"))
    flags_of = _flags_of(get)
    return Compiled(
        lambda e: fs.isdisjoint(flags_of(e)),
        ("flags_none", fpath, tuple(sorted(fs))),
        Hints(),
        leaf=("flags_none", fpath, fs),
    )


def _op_exists(fpath: str, get: Getter, value: Any, where: str) -> Compiled:
    if not isinstance(value, bool):
        raise ConditionError(where, "'exists' needs true or false")
    present = _not(lambda e: get(e) in (None, [], ""))
    hints = Hints(present=frozenset([fpath])) if value else Hints()
    return Compiled(
        present if value else _not(present), ("exists", fpath, value), hints, leaf=("exists", fpath, value)
    )


def _op_field(op: str) -> Callable[[str, Getter, Any, str], Compiled]:
    def build(fpath: str, get: Getter, value: Any, where: str) -> Compiled:
        if not isinstance(value, str):
            raise ConditionError(where, f"'{op}' needs a field name")
        other = compile_getter(value)
        if op == "eq_field":
            fn: Pred = lambda e: get(e) is not None and get(e) == other(e)  # noqa: E731
        else:
            fn = lambda e: get(e) is not None and get(e) != other(e)  # noqa: E731
        return Compiled(fn, (op, fpath, resolve(value)), Hints())

    return build


OP_BUILDERS: dict[str, Callable[[str, Getter, Any, str], Compiled]] = {
    "eq": _op_eq,
    "ne": _op_ne,
    "in": _op_in,
    "not_in": _op_not_in,
    "startswith": _op_startswith,
    "endswith": _op_endswith,
    "contains": _op_contains,
    "icontains": _op_icontains,
    "glob": _op_glob,
    "regex": _op_regex,
    "not_regex": _op_not_regex,
    "gt": _op_compare("gt"),
    "gte": _op_compare("gte"),
    "lt": _op_compare("lt"),
    "lte": _op_compare("lte"),
    "flags_all": _op_flags_all,
    "flags_any": _op_flags_any,
    "flags_none": _op_flags_none,
    "exists": _op_exists,
    "eq_field": _op_field("eq_field"),
    "ne_field": _op_field("ne_field"),
}
OPS = frozenset(OP_BUILDERS)


def _compile_op(fpath: str, op: str, raw: Any, ctx: Context, where: str) -> Compiled:
    build = OP_BUILDERS.get(op)
    if build is None:
        raise ConditionError(where, f"unknown operator '{op}' (known: {', '.join(sorted(OPS))})")
    return build(fpath, compile_getter(fpath), _expand(raw, ctx, where), where)


def _compile_test(fpath: str, test: Any, ctx: Context, where: str) -> Compiled:
    if test is None:
        return _compile_op(fpath, "exists", False, ctx, where)
    if isinstance(test, str) and test.startswith("$"):
        return _compile_op(fpath, "in", test, ctx, where)
    if isinstance(test, list):
        return _compile_op(fpath, "in", test, ctx, where)
    if isinstance(test, Mapping):
        if not test:
            raise ConditionError(where, "empty test")
        parts = [_compile_op(fpath, str(op), v, ctx, f"{where}.{op}") for op, v in test.items()]
        return _and(parts)
    return _compile_op(fpath, "eq", test, ctx, where)


def _all_of(fns: tuple[Pred, ...]) -> Pred:
    """A plain loop: cheaper per call than ``all()`` over a generator."""

    def pred(e: Mapping[str, Any]) -> bool:
        for f in fns:  # noqa: SIM110 (a loop is cheaper per call than all() on a generator)
            if not f(e):
                return False
        return True

    return pred


def _any_of(fns: tuple[Pred, ...]) -> Pred:
    def pred(e: Mapping[str, Any]) -> bool:
        for f in fns:  # noqa: SIM110
            if f(e):
                return True
        return False

    return pred


def _and(parts: list[Compiled]) -> Compiled:
    if len(parts) == 1:
        return parts[0]
    hints = Hints()
    for p in parts:
        hints.merge_and(p.hints)
    canon_children: list[Any] = []
    for p in parts:
        if p.canon[0] == "and":
            canon_children.extend(p.canon[1])
        else:
            canon_children.append(p.canon)
    canon = ("and", tuple(sorted(set(canon_children), key=repr)))
    conj = tuple(c for p in parts for c in (p.conj or (p,)))
    return Compiled(conjunction([p.fn for p in parts]), canon, hints, conj)


def conjunction(fns: list[Pred]) -> Pred:
    """One predicate that holds when all of ``fns`` hold, tried in order."""
    if not fns:
        return TRUE.fn
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        f1, f2 = fns
        return lambda e: f1(e) and f2(e)
    if len(fns) == 3:
        f1, f2, f3 = fns
        return lambda e: f1(e) and f2(e) and f3(e)
    return _all_of(tuple(fns))


#: rough cost of testing a node, by its canonical head: cheap dict probes first
_COST = {"eq": 0, "in": 0, "exists": 0, "flags_all": 1, "flags_any": 1, "flags_none": 1, "gt": 1, "gte": 1}


def _cost(canon: Any) -> int:
    head = canon[0] if isinstance(canon, tuple) and canon else None
    if head in _COST:
        return _COST[head]
    if head in ("startswith", "endswith", "contains", "eq_field", "ne_field", "lt", "lte"):
        return 2
    if head == "not":
        return _cost(canon[1]) + 1
    return 4  # or, regex, glob, icontains, and


def fast_predicate(c: Compiled, drop_syscall: bool) -> Pred:
    """The engine's form of a condition: the top-level conjuncts cheapest first, and the
    ``syscall`` tests left out when the index already guarantees them (``drop_syscall``).
    Only the top-level order changes: an event passes exactly when every conjunct holds, and
    a conjunct that raises makes the engine treat the whole condition as false either way.
    (The engine runs the same conjuncts as one generated function, ``predcode``.)"""
    return conjunction([p.fn for p in fast_parts(c, drop_syscall)])


def fast_parts(c: Compiled, drop_syscall: bool) -> list[Compiled]:
    """The conjuncts ``fast_predicate`` tests, in its order."""
    parts = c.conj or (c,)
    if drop_syscall:
        parts = tuple(
            p
            for p in parts
            if not (
                isinstance(p.canon, tuple) and p.canon[:1] in (("eq",), ("in",)) and p.canon[1] == "syscall"
            )
        )
    return sorted(parts, key=lambda p: _cost(p.canon))


def _or(parts: list[Compiled]) -> Compiled:
    if len(parts) == 1:
        return parts[0]
    fns = tuple(p.fn for p in parts)
    hints = Hints()
    # An OR constrains a field only if every branch constrains it.
    common = set.intersection(*(set(p.hints.exact) for p in parts))
    for f in common:
        hints.exact[f] = frozenset().union(*(p.hints.exact[f] for p in parts))
    pcommon = set.intersection(*(set(p.hints.prefix) for p in parts)) - common
    for f in pcommon:
        hints.prefix[f] = tuple(sorted({x for p in parts for x in p.hints.prefix[f]}))
    fpcommon = set.intersection(*(set(p.hints.flags) for p in parts))
    for f in fpcommon:
        hints.flags[f] = frozenset().union(*(p.hints.flags[f] for p in parts))
    hints.alts = tuple(p.hints for p in parts)
    hints.any_groups = (hints.alts,)
    hints.present = frozenset.intersection(*(p.hints.required() for p in parts))
    canon = ("or", tuple(sorted({p.canon for p in parts}, key=repr)))
    leaf = ("or", "", tuple(parts))
    if len(fns) == 2:
        g1, g2 = fns
        return Compiled(lambda e: g1(e) or g2(e), canon, hints, leaf=leaf)
    return Compiled(_any_of(fns), canon, hints, leaf=leaf)


def compile_condition(cond: Any, ctx: Context, where: str = "condition") -> Compiled:
    """Compile one condition; raises ConditionError naming the exact place that is wrong."""
    if isinstance(cond, list):
        if not cond:
            raise ConditionError(where, "empty list of conditions")
        return _and([compile_condition(c, ctx, f"{where}[{i}]") for i, c in enumerate(cond)])
    if isinstance(cond, bool):
        if cond:
            return TRUE
        return Compiled(lambda e: False, ("false",), Hints())
    if not isinstance(cond, Mapping) or not cond:
        raise ConditionError(where, f"a condition is a non-empty mapping or list, not {type(cond).__name__}")
    parts: list[Compiled] = []
    for key, val in cond.items():
        key = str(key)
        sub = f"{where}.{key}"
        if key == "all":
            if not isinstance(val, list) or not val:
                raise ConditionError(sub, "'all' needs a non-empty list")
            parts.append(_and([compile_condition(c, ctx, f"{sub}[{i}]") for i, c in enumerate(val)]))
        elif key == "any":
            if not isinstance(val, list) or not val:
                raise ConditionError(sub, "'any' needs a non-empty list")
            parts.append(_or([compile_condition(c, ctx, f"{sub}[{i}]") for i, c in enumerate(val)]))
        elif key == "not":
            inner = compile_condition(val, ctx, sub)
            parts.append(Compiled(_not(inner.fn), ("not", inner.canon), Hints(), leaf=("not", "", inner)))
        elif key == "macro":
            names = val if isinstance(val, list) else [val]
            for name in names:
                if name not in ctx.macros:
                    raise ConditionError(sub, f"unknown macro '{name}'")
                if name in ctx._macro_stack:
                    raise ConditionError(sub, f"macro '{name}' refers to itself")
                ctx._macro_stack.append(name)
                try:
                    parts.append(compile_condition(ctx.macros[name], ctx, f"macro {name}"))
                finally:
                    ctx._macro_stack.pop()
        else:
            parts.append(_compile_test(resolve(key), val, ctx, sub))
    return _and(parts)
