"""OSC 1.0 address patterns (``*``, ``?``, ``[a-c]``, ``[!a]``, ``{one,two}``), matched in
time linear in the address.

A pattern comes off the network, so matching it must never backtrack: a regex made of
the pattern (``[^/]*`` per star) takes time exponential in the stars against an address
that almost matches, and one 224-byte datagram held the engine for minutes.  Here a
pattern is a list of single-character positions (a literal, ``?``, a ``[...]`` set, each
character of a ``{...}`` alternative, a star) and a match follows the set of positions
reached so far, one character at a time (a Glushkov automaton).  The sets met are made
into states of a DFA as they are first met and kept, so matching one pattern against
many addresses (every node of a patch) costs a dictionary look-up per character once the
first few addresses have been read.  Work per character is bounded by the number of
positions, and the pattern itself is bounded: at most ``MAX_LENGTH`` characters,
``MAX_WILDCARDS`` wildcards (a run of stars counts as one, and is one), ``MAX_CHOICES``
alternatives in all, and ``MAX_STATES`` DFA states kept (past that, states are made again
as needed and not kept).
"""

from __future__ import annotations

import bisect

MAX_LENGTH = 1024      # characters in a pattern
MAX_WILDCARDS = 32     # '*' (a run of them counts once), '?', '[...]', '{...}'
MAX_CHOICES = 64       # alternatives inside all '{...}' together
MAX_STATES = 4096      # DFA states kept per pattern

class Pattern:
    """A compiled OSC address pattern; ``match(address)`` is True when the whole address
    matches.  Raises ValueError (with the reason) for a pattern it cannot take."""

    __slots__ = ("pattern", "_tests", "_follow", "_first", "_last", "_nullable", "_dfa", "_start")

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_LENGTH:
            raise ValueError(f"OSC pattern of {len(pattern)} characters (at most {MAX_LENGTH})")
        self.pattern = pattern
        elements = _parse(pattern)
        # Positions: what each accepts, as (kind, value) of the element it comes from.
        tests: list = []
        firsts: list[list[int]] = []      # per element: its first positions
        lasts: list[list[int]] = []       # per element: its last positions
        nullable: list[bool] = []
        follow: list[set[int]] = []
        for kind, value in elements:
            if kind == "alt":
                f, l, empty = [], [], False
                for word in value:
                    if not word:
                        empty = True
                        continue
                    start = len(tests)
                    for ch in word:
                        tests.append(("char", ch))
                        follow.append(set())
                    for p in range(start, len(tests) - 1):
                        follow[p].add(p + 1)
                    f.append(start)
                    l.append(len(tests) - 1)
                firsts.append(f)
                lasts.append(l)
                nullable.append(empty)
            else:
                p = len(tests)
                tests.append((kind, value))
                follow.append({p} if kind == "star" else set())
                firsts.append([p])
                lasts.append([p])
                nullable.append(kind == "star")
        # What may follow each element's last positions: the next elements' firsts, through
        # nullable ones; and which positions may end a match.
        after: set[int] = set()
        ends_here = True
        last_positions: set[int] = set()
        for e in range(len(elements) - 1, -1, -1):
            for p in lasts[e]:
                follow[p] |= after
                if ends_here:
                    last_positions.add(p)
            if nullable[e]:
                after = after | set(firsts[e])
            else:
                after = set(firsts[e])
                ends_here = False
        self._tests = tests
        self._follow = [frozenset(f) for f in follow]
        self._first = frozenset(after)
        self._last = frozenset(last_positions)
        self._nullable = ends_here
        self._dfa: dict[tuple[frozenset, str], frozenset] = {}
        self._start = frozenset(after)

    def match(self, address: str) -> bool:
        state: frozenset | None = None        # None: nothing read yet
        dfa = self._dfa
        for ch in address:
            key = (state, ch)
            nxt = dfa.get(key)
            if nxt is None:
                nxt = self._step(state, ch)
                if len(dfa) < MAX_STATES:
                    dfa[key] = nxt
            if not nxt:
                return False
            state = nxt
        if state is None:
            return self._nullable
        return not state.isdisjoint(self._last)

    def _step(self, state: frozenset | None, ch: str) -> frozenset:
        if state is None:
            candidates = self._first
        else:
            candidates = set()
            for p in state:
                candidates |= self._follow[p]
        tests = self._tests
        return frozenset(p for p in candidates if _accepts(tests[p], ch))

    def __repr__(self) -> str:
        return f"Pattern({self.pattern!r})"


def _accepts(test: tuple, ch: str) -> bool:
    kind, data = test
    if kind == "char":
        return ch == data
    if ch == "/":                 # wildcards stay inside one part of the address
        return False
    if kind != "set":             # '*' and '?'
        return True
    negated, starts, ends = data
    k = bisect.bisect_right(starts, ord(ch)) - 1
    return (k >= 0 and ord(ch) <= ends[k]) != negated


def _parse(pattern: str) -> list[tuple[str, object]]:
    """Elements: ('char', c), ('any', '?'), ('set', (negated, chars)), ('star', None),
    ('alt', words)."""
    out: list[tuple[str, object]] = []
    wildcards = choices = 0
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            while i + 1 < n and pattern[i + 1] == "*":
                i += 1
            out.append(("star", None))
            wildcards += 1
        elif c == "?":
            out.append(("any", "?"))
            wildcards += 1
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                raise ValueError(f"unclosed '[' in OSC pattern '{_cut(pattern)}'")
            out.append(("set", _char_set(pattern[i + 1:j])))
            wildcards += 1
            i = j
        elif c == "{":
            j = pattern.find("}", i + 1)
            if j < 0:
                raise ValueError(f"unclosed '{{' in OSC pattern '{_cut(pattern)}'")
            words = tuple(pattern[i + 1:j].split(","))
            if any(ch in "*?[]{}/" for w in words for ch in w):
                raise ValueError(f"'{{...}}' in OSC pattern '{_cut(pattern)}' may hold plain "
                                 f"words only")
            choices += len(words)
            out.append(("alt", words))
            wildcards += 1
            i = j
        else:
            out.append(("char", c))
        i += 1
    if wildcards > MAX_WILDCARDS:
        raise ValueError(f"OSC pattern '{_cut(pattern)}' has {wildcards} wildcards "
                         f"(at most {MAX_WILDCARDS})")
    if choices > MAX_CHOICES:
        raise ValueError(f"OSC pattern '{_cut(pattern)}' has {choices} alternatives "
                         f"(at most {MAX_CHOICES})")
    return out


def _char_set(body: str) -> tuple[bool, tuple[int, ...], tuple[int, ...]]:
    """A ``[...]`` body as sorted, merged code-point ranges (first codes, last codes),
    and whether it is negated: looked up by bisection, never spelled out, so a bracket
    of wide ranges costs what its text does."""
    negated = body.startswith("!")
    if negated:
        body = body[1:]
    ranges: list[tuple[int, int]] = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            lo, hi = ord(body[i]), ord(body[i + 2])
            if lo <= hi:
                ranges.append((lo, hi))
            i += 3
        else:
            ranges.append((ord(body[i]), ord(body[i])))
            i += 1
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return negated, tuple(r[0] for r in merged), tuple(r[1] for r in merged)


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def compile_pattern(pattern: str) -> Pattern:
    """The pattern compiled; ``.match(address)`` tells whether the whole address matches.

    Raises ValueError for an unbalanced bracket or brace, or a pattern past the bounds."""
    return Pattern(pattern)
