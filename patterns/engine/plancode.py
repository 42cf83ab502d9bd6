"""One generated Python function per index plan: an event's candidate triggers.

``index.TriggerIndex`` describes, per syscall, which fields to probe and in which tables.
Walking that description per event (a getter call per field, a tuple unpacked, four
``None`` tests) costs more than the probes themselves, so each plan is turned into the
source of one function: the event's nested dicts are read once per shared path prefix
(``args``, ``args.exe_file``), a missing parent skips every field below it, and only the
tables a field has are probed. Values and candidates are exactly those of the generic walk
(``TriggerIndex.candidates_generic``), in the same order; an unusual shape (a list or a
non-dict mapping where a dict is expected) falls back to the field's own getter.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from patterns.engine import regex
from patterns.engine.fields import EXECS, VIRTUAL, inline_source, proc_self, resolve

Candidates = Callable[[Mapping[str, Any]], Any]


@dataclass
class _Node:
    """A path prefix: the fields that end here and the longer paths below it."""

    leaves: list[int] = field(default_factory=list)
    kids: dict[str, _Node] = field(default_factory=dict)

    def fields(self) -> list[int]:
        out = list(self.leaves)
        for k in self.kids.values():
            out.extend(k.fields())
        return out


def _list_probe(v: list[Any], tbl: Any, ftbl: Any, pidx: Any, rgroup: Any, out: list[Any]) -> None:
    """A list value (argv, flags, ancestors' names): the generic walk's list branch."""
    for x in v:
        if isinstance(x, str):
            if tbl is not None:
                hit = tbl.get(x)
                if hit:
                    out.extend(hit)
            if ftbl is not None:
                hit = ftbl.get(x)
                if hit:
                    out.extend(hit)
            if pidx is not None:
                pidx.lookup(x, out)
        elif tbl is not None and isinstance(x, (int, float)):
            hit = tbl.get(x)
            if hit:
                out.extend(hit)
    if rgroup is not None:
        rgroup.lookup(v, out)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.n = 0

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def fresh(self) -> str:
        self.n += 1
        return f"d{self.n}"


def _extract(w: _Writer, node: _Node, var: str, depth: int) -> None:
    """Assign ``v<i>`` for every field below ``node``, whose value (a dict) is in ``var``."""
    for key, kid in node.kids.items():
        if not kid.kids:
            w.line(depth, " = ".join(f"v{i}" for i in kid.leaves) + f" = {var}.get({key!r})")
            continue
        child = w.fresh()
        w.line(depth, f"{child} = {var}.get({key!r})")
        for i in kid.leaves:
            w.line(depth, f"v{i} = {child}")
        below = [i for k in kid.kids.values() for i in k.fields()]
        w.line(depth, f"if {child}.__class__ is dict:")
        _extract(w, kid, child, depth + 1)
        w.line(depth, f"elif {child} is None:")
        w.line(depth + 1, " = ".join(f"v{i}" for i in below) + " = None")
        w.line(depth, "else:")
        for i in below:
            w.line(depth + 1, f"v{i} = g{i}(e)")


def _str_probe(w: _Writer, i: int, tbl: Any, ftbl: Any, pidx: Any, rgroup: Any) -> None:
    body = False
    if tbl is not None:
        w.line(2, f"h = t{i}.get(v)")
        w.line(2, "if h:")
        w.line(3, "out += h")
        body = True
    if ftbl is not None:  # a flag test reads "A|B" as the flags A and B
        w.line(2, "for x in v.split('|') if '|' in v else (v,):")
        w.line(3, f"h = f{i}.get(x)")
        w.line(3, "if h:")
        w.line(4, "out += h")
        body = True
    for name, idx in (("p", pidx), ("r", rgroup)):
        if idx is not None:
            w.line(2, f"h = {name}m{i}.get(v)")
            w.line(2, "if h is None:")
            w.line(3, f"h = {name}{i}._one(v)")
            w.line(2, "if h:")
            w.line(3, "out += h")
            body = True
    if not body:
        w.line(2, "pass")


def _probe(w: _Writer, i: int, tbl: Any, ftbl: Any, pidx: Any, rgroup: Any) -> None:
    """The generic walk's tests for field ``i`` (only the tables it has); the common
    shapes (absent, a plain str, a plain list) are tested first."""
    w.line(1, f"v = v{i}")
    w.line(1, "if v is None:")
    if tbl is not None and None in tbl:
        w.line(2, f"h = t{i}.get(None)")
        w.line(2, "if h:")
        w.line(3, "out += h")
    else:
        w.line(2, "pass")
    w.line(1, "elif v.__class__ is str:")
    _str_probe(w, i, tbl, ftbl, pidx, rgroup)
    w.line(1, "elif v.__class__ is list:")
    w.line(2, f"_list_probe(v, t{i}, f{i}, p{i}, r{i}, out)")
    w.line(1, "elif isinstance(v, str):")
    _str_probe(w, i, tbl, ftbl, pidx, rgroup)
    w.line(1, "elif isinstance(v, list):")
    w.line(2, f"_list_probe(v, t{i}, f{i}, p{i}, r{i}, out)")
    if tbl is not None:
        w.line(1, "else:")
        w.line(2, "try:")
        w.line(3, f"h = t{i}.get(v)")
        w.line(2, "except TypeError:  # unhashable: no exact value can equal it")
        w.line(3, "h = None")
        w.line(2, "if h:")
        w.line(3, "out += h")


#: distinct value combinations whose unique candidates a plan remembers
MEMO_SIZE = 4096
#: marks a list value in a memo key (a tuple value is not a list); its elements follow as
#: they are: they are probed as they are (strings, numbers) or not at all, so equal tuples
#: probe alike, and an unhashable element makes the key unusable (not remembered)
_LIST = object()


@dataclass(frozen=True)
class Gate:
    """The facts one trigger's whole condition requires on fields a plan reads."""

    #: ``(kind, field position, value)``: ``flags`` (one of a set), ``exact`` (a value of a
    #: set), ``prefix`` (one of a tuple), ``regex`` (a match of one of these sources)
    tests: tuple[tuple[str, int, Any], ...]
    #: sets of field positions of which one must be wholly present (not None); () no test
    options: tuple[tuple[int, ...], ...]


def gates_of(names: Sequence[str], triggers: Iterable[Any]) -> dict[Any, Gate]:
    """Per trigger, the facts its whole condition requires (its hints) on fields the plan
    reads: flags, exact values, prefixes, regexes, and the fields of one of
    ``hints.presence_options()`` not None. A trigger the index reached by one key (a broad
    path prefix such as ``/etc/``, a path many programs open, or no key at all) is dropped
    when another cannot hold: a read-only open for a pattern about writes, nginx reading
    /etc/hosts for a pattern about shells, an exec without LD_PRELOAD for a pattern about
    its value. A field the plan does not read counts as possibly anything."""
    pos = {n: i for i, n in enumerate(names)}
    gates: dict[Any, Gate] = {}
    for t in triggers:
        h = t.hints
        tests: list[tuple[str, int, Any]] = [
            ("flags", pos[f], fs) for f, fs in h.flags.items() if f in pos and fs
        ]
        tests += [("exact", pos[f], vals) for f, vals in h.exact.items() if f in pos and f != "syscall"]
        tests += [("prefix", pos[f], pre) for f, pre in h.prefix.items() if f in pos]
        tests += [("regex", pos[f], rx) for f, rx in h.regex.items() if f in pos]
        options = tuple(tuple(sorted(pos[f] for f in o if f in pos)) for o in h.presence_options())
        if any(not o for o in options):
            options = ()
        if tests or options:
            gates[t] = Gate(tuple(tests), options)
    return gates


def valued_fields(gates: Iterable[Gate]) -> set[int]:
    """Positions whose value (not only whether they are there) some gate tests."""
    return {j for g in gates for _, j, _ in g.tests}


def _flags_may_hold(v: Any, fs: frozenset[str]) -> bool:
    """Whether a field value can hold one of ``fs`` as the flag operators read it (a list as
    is, ``A|B`` split, anything else no flags); unsure (an unhashable element): True."""
    if isinstance(v, list):
        try:
            return not fs.isdisjoint(v)
        except TypeError:
            return True
    if isinstance(v, str):
        return not fs.isdisjoint(v.split("|"))
    return False


def _exact_may_hold(v: Any, vals: frozenset[Any]) -> bool:
    """Whether ``eq``/``in`` on one of ``vals`` can hold: the value, or an element of a list
    value, is one of them; unsure (unhashable): True."""
    try:
        if isinstance(v, list):
            return any(x in vals for x in v if not isinstance(x, dict | list))
        return v in vals
    except TypeError:
        return True


def _prefix_may_hold(v: Any, pre: tuple[str, ...]) -> bool:
    if isinstance(v, str):
        return v.startswith(pre)
    if isinstance(v, list):
        return any(isinstance(x, str) and x.startswith(pre) for x in v)
    return False


def _regex_may_hold(v: Any, rx: regex.Regex) -> bool:
    if isinstance(v, str):
        return rx.search(v)
    if isinstance(v, list):
        return any(isinstance(x, str) and rx.search(x) for x in v)
    return False


_TESTS = {
    "flags": "_flags_may_hold",
    "exact": "_exact_may_hold",
    "prefix": "_prefix_may_hold",
    "regex": "_regex_may_hold",
}


def _gate_test(gate: Gate, ns: dict[str, Any]) -> str:
    """A gate as one Python expression on the values tuple ``vals`` (constants put in ``ns``)."""
    terms = []
    for kind, j, value in gate.tests:
        if kind == "regex":
            try:
                value = regex.any_of(value)
            except regex.RegexError:  # refused at load already: no gate, the predicate decides
                continue
        name = f"K{len(ns)}"
        ns[name] = value
        terms.append(f"{_TESTS[kind]}(vals[{j}], {name})")
    if gate.options:
        alts = [" and ".join(f"vals[{j}] is not None" for j in o) for o in gate.options]
        terms.append("(" + " or ".join(f"({a})" for a in alts) + ")")
    return " and ".join(terms) or "True"


def compile_gates(gates: dict[Any, Gate]) -> dict[Any, Callable[[tuple[Any, ...]], bool]]:
    """Each trigger's gate as one function of the plan's values (generated: it runs on every
    memo miss, once per candidate)."""
    ns: dict[str, Any] = {f: globals()[f] for f in _TESTS.values()}
    names = {}
    lines = []
    for n, (t, g) in enumerate(gates.items()):
        lines.append(f"def gate{n}(vals):\n    return {_gate_test(g, ns)}\n")
        names[t] = f"gate{n}"
    exec(compile("".join(lines), "<trigger-index gates>", "exec"), ns)  # our own generated source
    return {t: ns[name] for t, name in names.items()}


class _LazyGates:
    """A plan's gate functions, generated at its first memo miss: an index is rebuilt on
    every pattern change, in every partition's engine, and most plans never see an event."""

    def __init__(self, gates: dict[Any, Gate]) -> None:
        self._gates = gates
        self._fns: dict[Any, Callable[[tuple[Any, ...]], bool]] | None = None

    def get(self, trigger: Any) -> Callable[[tuple[Any, ...]], bool] | None:
        if self._fns is None:
            self._fns = compile_gates(self._gates)
        return self._fns.get(trigger)


#: longest string, and most list elements, a field's value classes remember (longer ones,
#: e.g. huge command lines, are classified each time)
CLASS_MAX_LEN = 512
CLASS_MAX_ITEMS = 32


#: a gate test on one field's value: (test function, its constant)
Test = tuple[Callable[[Any, Any], bool], Any]


class _FieldClasses:
    """The classes of one field's values: two values are in one class when the plan's probes
    find the same triggers by them and every gate test on the field says the same of them.
    A plan's candidates depend on its fields' classes only, so the memo is keyed by classes:
    a connect to a new address, or a new command line, finds its candidates remembered
    when it probes like one seen before. Values are remembered per class, bounded."""

    __slots__ = ("_ids", "_make", "_probe", "_tests", "known")

    def __init__(self, make: Callable[[], tuple[Callable[[Any], list[Any]], list[Test]]]) -> None:
        #: builds the field's probe function and gate tests at its first value to classify:
        #: an index is rebuilt on every pattern change, in every partition's engine
        self._make = make
        self._probe: Callable[[Any], list[Any]] | None = None
        self._tests: list[Test] = []
        #: value (a list as ``(_LIST, *items)``) -> class id
        self.known: dict[Any, int] = {}
        #: what a class is (the triggers probed, the tests' results) -> class id
        self._ids: dict[tuple[Any, ...], int] = {}

    def classify(self, v: Any) -> int:
        """The class id of a value not in ``known`` (not None; hashable, or TypeError)."""
        if self._probe is None:
            self._probe, self._tests = self._make()
        sig = (tuple(self._probe(v)), tuple(bool(fn(v, c)) for fn, c in self._tests))
        cid = self._ids.get(sig)
        if cid is None:
            if len(self._ids) >= MEMO_SIZE:  # ids are never reused: a forgotten class gets a new one
                self._ids.clear()
            cid = self._ids[sig] = next(_class_ids)
        if v.__class__ is list:
            if len(v) <= CLASS_MAX_ITEMS and all(
                not isinstance(x, str) or len(x) <= CLASS_MAX_LEN for x in v
            ):
                self._remember((_LIST, *v), cid)
        elif not isinstance(v, str) or len(v) <= CLASS_MAX_LEN:
            self._remember(v, cid)
        return cid

    def _remember(self, key: Any, cid: int) -> None:
        if len(self.known) >= MEMO_SIZE:
            self.known.clear()
        self.known[key] = cid


_class_ids = itertools.count()


def _field_tests(gates: Iterable[Gate], i: int) -> list[Test]:
    """The distinct gate tests on field ``i``."""
    out: dict[tuple[str, Any], Test] = {}
    for g in gates:
        for kind, j, value in g.tests:
            if j != i or (kind, value) in out:
                continue
            const = value
            if kind == "regex":
                try:
                    const = regex.any_of(value)
                except regex.RegexError:  # refused at load already: no gate (see ``_gate_test``)
                    continue
            out[(kind, value)] = (globals()[_TESTS[kind]], const)
    return list(out.values())


def _gate(hit: tuple[Any, ...], gates: Any, vals: tuple[Any, ...]) -> tuple[Any, ...]:
    out = tuple(t for t in hit if (g := gates.get(t)) is None or g(vals))
    return out if len(out) != len(hit) else hit


#: The event's parts that several fields of one plan start from (computed fields and the
#: tree of plain ones each read them on their own).
_SHARED_PARTS = ("args", "process")


def _share_reads(w: _Writer, start: int) -> None:
    """Read each of ``_SHARED_PARTS`` once in the lines from ``start`` on (one function's
    reads of the event), where more than one line reads it: a dict read is ~375 instructions."""
    lines = w.lines[start:]
    first = []
    for part in _SHARED_PARTS:
        read = re.compile(rf"\be\.get\({part!r}\)")
        if sum(len(read.findall(text)) for text in lines) < 2:
            continue
        lines = [read.sub(f"e_{part}", text) for text in lines]
        first.append(f"    e_{part} = e.get({part!r})")
    w.lines[start:] = first + lines


def _virtual(w: _Writer, i: int, name: str, syscall: Any) -> None:
    """Assign ``v<i>``, the computed field ``name``: inline for the common ones
    (``fields.inline_source``), else by its getter."""
    lines = inline_source(name, f"v{i}", "x", f"g{i}", None if syscall is None else syscall in EXECS)
    for text in lines or [f"v{i} = g{i}(e)"]:
        w.line(1, text)


def _lazy_key(
    w: _Writer, i: int, path: str, syscall: Any, plain: Mapping[str, int], keyed: dict[str, int]
) -> bool:
    """For the memo key, ``r<i>``: the raw values the computed field ``path`` is made of (a
    remembered event then computes nothing, makes no new string), or, for an unusual shape,
    the computed value in a tuple of its own length; False for a field computed as usual.
    ``plain``: the plan's plain fields (path -> index), read already; ``keyed``: the source
    whose raw value an earlier ``r<j>`` holds -> j (a value two fields are made of is read once)."""
    if path == "exe.name":  # the executable's basename, else the comm
        exe = f"v{plain['process.exe']}" if "process.exe" in plain else "x.get('exe')"
        w.line(1, "x = e.get('process')")
        w.line(1, "if x.__class__ is dict:")
        w.line(2, f"r{i} = {exe} or (None, x.get('comm'))")
        w.line(1, "else:")
        w.line(2, f"r{i} = (None, None, g{i}(e))")
        return True
    if path in ("path.name", "exec.fd") and syscall == "execve":  # both from the name it ran by
        if "args.filename" in keyed:
            j = keyed["args.filename"]
            w.line(1, f"r{i} = r{j} if r{j}.__class__ is str else (None, g{i}(e))")
            return True
        keyed["args.filename"] = i
        w.line(1, "x = e.get('args')")
        w.line(1, f"r{i} = x.get('filename') if x.__class__ is dict else None")
        w.line(1, f"if r{i}.__class__ is not str or not r{i}:")
        w.line(2, f"r{i} = (None, g{i}(e))")
        return True
    return False


def compile_candidates(
    names: Sequence[str],
    probes: Sequence[tuple[Any, Any, Any, Any, Any]],
    rest: list[Any],
    gates: dict[Any, Gate] | None = None,
    syscall: Any = None,
) -> tuple[Candidates, Candidates, str]:
    """The candidates functions of one plan (and their source, for tests and debugging):
    ``probes[i]`` is ``(getter, exact table, flag table, prefix index, regex group)`` of
    the field ``names[i]``.

    ``candidates(e)`` is the list the generic walk makes (duplicates included);
    ``unique(e)`` the same without duplicates (first occurrences, in order) as a tuple,
    less the triggers whose required facts (``gates``, see ``gates_of``) cannot hold,
    remembered per combination of the fields' values: the probes depend on nothing else,
    and the same file opened by the same program recurs all the time. ``syscall``: the
    one every event given to them has (None: any), which settles what ``path`` reads."""
    memo: dict[Any, tuple[Any, ...]] = {}
    ns: dict[str, Any] = {
        "_list_probe": _list_probe,
        "_LIST": _LIST,
        "REST": tuple(rest),
        "MEMO": memo,
        "BY_CLASS": {},
        "MEMO_SIZE": MEMO_SIZE,
        "_gate": _gate,
        "GATES": _LazyGates(gates) if gates else {},
        "proc_self": proc_self,
    }
    root = _Node()
    for i, (name, (get, tbl, ftbl, pidx, rgroup)) in enumerate(zip(names, probes, strict=True)):
        ns[f"g{i}"] = get
        ns[f"t{i}"], ns[f"f{i}"], ns[f"p{i}"], ns[f"r{i}"] = tbl, ftbl, pidx, rgroup
        if pidx is not None:
            ns[f"pm{i}"] = pidx.memo
        if rgroup is not None:
            ns[f"rm{i}"] = rgroup.memo
        path = resolve(name)
        if path in VIRTUAL:
            continue
        node = root
        for part in path.split("."):
            node = node.kids.setdefault(part, _Node())
        node.leaves.append(i)
    vs = ", ".join(f"v{i}" for i in range(len(names)))
    probed = [i for i, (_, *tables) in enumerate(probes) if any(x is not None for x in tables)]
    w = _Writer()
    w.line(0, f"def probe({vs}):")
    w.line(1, "out = list(REST)")
    for i in probed:
        _probe(w, i, *probes[i][1:])
    w.line(1, "return out")
    valued = valued_fields((gates or {}).values())
    classed = sorted(set(probed) | valued)
    for name in ("candidates", "unique"):
        w.line(0, f"def {name}(e):")
        body = len(w.lines)
        lazy = []  # computed fields keyed by what they are computed from, computed on a miss
        # plain fields first: a computed field's key may reuse one (``process.exe``)
        _extract(w, root, "e", 1)
        plain = {resolve(f): i for i, f in enumerate(names) if resolve(f) not in VIRTUAL}
        keyed: dict[str, int] = {}
        for i, fname in enumerate(names):
            if resolve(fname) not in VIRTUAL:
                continue
            if name == "unique" and _lazy_key(w, i, resolve(fname), syscall, plain, keyed):
                lazy.append(i)
                continue
            _virtual(w, i, fname, syscall)
        _share_reads(w, body)
        if name == "candidates":
            w.line(1, f"return probe({vs})")
            continue
        # Two memos: by the values themselves (what recurs costs one lookup), and on a miss
        # by the values' classes (a new address or command line that probes like a known one)
        raw = ", ".join(
            f"r{i}"
            if i in lazy
            else f"v{i} is None"  # read for the presence gates only: whether it is there is all that counts
            if i not in classed
            else f"(_LIST, *v{i}) if v{i}.__class__ is list else v{i}"
            if _listy(names[i])
            else f"v{i}"  # a list here is unhashable: that event is not remembered
            for i in range(len(names))
        )
        by_class = ", ".join(f"c{i}" if i in classed else f"v{i} is None" for i in range(len(names)))
        uniq = f"tuple(dict.fromkeys(probe({vs})))"
        if gates:
            uniq = f"_gate({uniq}, GATES, ({vs},))"
        w.line(1, "try:")
        w.line(2, f"k = ({raw},)" if names else "k = ()")
        w.line(2, "hit = MEMO.get(k)")
        w.line(2, "if hit is None:")
        for i in lazy:
            w.line(3, f"v{i} = g{i}(e)")
        for i in classed:
            w.line(3, f"if v{i} is None:")
            w.line(4, f"c{i} = None")
            w.line(3, "else:")
            w.line(4, f"c{i} = K{i}.get((_LIST, *v{i}) if v{i}.__class__ is list else v{i})")
            w.line(4, f"if c{i} is None:")
            w.line(5, f"c{i} = F{i}(v{i})")
        w.line(3, f"ck = ({by_class},)" if names else "ck = ()")
        w.line(3, "hit = BY_CLASS.get(ck)")
        w.line(3, "if hit is None:")
        w.line(4, f"hit = {uniq}")
        w.line(4, "if len(BY_CLASS) >= MEMO_SIZE:")
        w.line(5, "BY_CLASS.clear()")
        w.line(4, "BY_CLASS[ck] = hit")
        w.line(3, "if len(MEMO) >= MEMO_SIZE:")
        w.line(4, "MEMO.clear()")
        w.line(3, "MEMO[k] = hit")
        w.line(1, "except TypeError:  # an unhashable value: not remembered")
        for i in lazy:
            w.line(2, f"v{i} = g{i}(e)")
        w.line(2, f"return {uniq}")
        w.line(1, "return hit")
    src = "\n".join(w.lines) + "\n"
    exec(compile(src, "<trigger-index plan>", "exec"), ns)  # our own generated source
    for i in classed:
        fc = _FieldClasses(functools.partial(_field_parts, ns, i, probes[i][1:], gates or {}))
        ns[f"K{i}"], ns[f"F{i}"] = fc.known, fc.classify
    return ns["candidates"], ns["unique"], src


def _field_parts(
    ns: dict[str, Any], i: int, tables: Sequence[Any], gates: dict[Any, Gate]
) -> tuple[Callable[[Any], list[Any]], list[Test]]:
    """Field ``i``'s probes alone (generated in its plan's namespace) and its gate tests:
    what its value classes are made of."""
    probe: Callable[[Any], list[Any]] = _no_probe
    if any(x is not None for x in tables):
        w = _Writer()
        w.line(0, f"def probe{i}(v{i}):")
        w.line(1, "out = []")
        _probe(w, i, *tables)
        w.line(1, "return out")
        exec(compile("\n".join(w.lines) + "\n", "<trigger-index field probe>", "exec"), ns)  # our own source
        probe = ns[f"probe{i}"]
    return probe, _field_tests(gates.values(), i)


#: the last part of the fields events carry as lists (argv, flag names, an exec's stdio
#: types, a container's mounts): the memo key spells their lists as tuples; any other field
#: is keyed as it is, and an event with a list there is not remembered
LIST_FIELDS = frozenset(
    {"argv", "flags", "prot", "prev_prot", "network", "env", "behavior", "mounts", "source"}
)


def _listy(name: str) -> bool:
    path = resolve(name)
    return path.rsplit(".", 1)[-1] in LIST_FIELDS or "ancestors" in path.split(".")


def _no_probe(v: Any) -> list[Any]:
    """A field read for gate tests only: no probe finds anything by it."""
    return []
