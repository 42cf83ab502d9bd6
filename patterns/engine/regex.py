"""Pattern regexes run in RE2, a linear-time engine.

The values regexes test (command lines, paths, names) are chosen by whoever runs a process on
a node, so a backtracking engine lets one crafted command line freeze a worker on a pattern
like ``^(a+)+$``. RE2 matches in time linear in the input, whatever the pattern; what it
cannot do in linear time (backreferences, lookahead, lookbehind) is refused when the pattern
is loaded, with a reason, so a custom pattern is rejected by the API with a 422 instead.

The boolean search calls RE2's ``Match`` on the UTF-8 bytes directly (2.1 µs on a 70-byte
command line here, against 6.9 µs through the module's ``search`` and 2.5 µs with Python's
``re``); that uses two private names of google-re2, pinned by tests/patterns/test_regex.py.
"""

from __future__ import annotations

import fnmatch

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is our error to report, not absl's stderr line
_UNANCHORED = re2._Anchor.UNANCHORED

#: results of recent searches, per (regex, text): the texts repeat (an image name, a
#: service's executable, the same path) and a lookup costs a twentieth of a search. Bounded
#: in entries and in text length (a long command line is searched each time), so the memory
#: it can hold is small whatever the events carry.
MEMO_SIZE = 8192
MEMO_MAX_LEN = 256
_memo: dict[tuple[Regex, str], bool] = {}


class RegexError(ValueError):
    """A regex RE2 refuses (or that is not valid at all)."""


def _reason(exc: Exception) -> str:
    msg = exc.args[0] if exc.args else exc
    return msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)


class Regex:
    """A compiled pattern regex: :meth:`search` says whether it occurs in a string."""

    __slots__ = ("_match", "_rx", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        try:
            self._rx = re2.compile(pattern, _OPTIONS)
        except re2.error as exc:
            raise RegexError(
                f"{pattern!r}: {_reason(exc)} (pattern regexes run in RE2, in linear time: "
                "no backreferences, lookahead or lookbehind)"
            ) from None
        self._match = self._rx._regexp.Match

    def search(self, text: str) -> bool:
        if len(text) > MEMO_MAX_LEN:
            return self._search(text)
        key = (self, text)
        hit = _memo.get(key)
        if hit is None:
            hit = self._search(text)
            if len(_memo) >= MEMO_SIZE:
                _memo.clear()
            _memo[key] = hit
        return hit

    def _search(self, text: str) -> bool:
        data = text.encode("utf-8", "surrogatepass")
        return bool(self._match(_UNANCHORED, data, 0, len(data))[0][0] >= 0)

    @property
    def groups(self) -> int:
        return int(self._rx.groups)

    def group1(self, text: str) -> str | None:
        """The first group of the first match (captures in sequences), else None."""
        m = self._rx.search(text)
        return m.group(1) if m else None


def any_of(patterns: tuple[str, ...] | list[str]) -> Regex:
    """One regex matching where any of ``patterns`` does."""
    return Regex(patterns[0] if len(patterns) == 1 else "|".join(f"(?:{p})" for p in patterns))


def glob(patterns: tuple[str, ...] | list[str]) -> Regex:
    """Shell globs (whole-string, ``*`` crosses ``/`` as in fnmatch) as one regex."""
    parts = []
    for g in patterns:
        rx = fnmatch.translate(g)  # "(?s:...)\\Z"; RE2 spells end-of-text \z
        parts.append(rx[: -len("\\Z")] + "\\z" if rx.endswith("\\Z") else rx)
    return Regex("^(?:" + "|".join(parts) + ")")
