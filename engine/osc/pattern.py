"""OSC address patterns (``*``, ``?``, ``[a-c]``, ``[!a]``, ``{one,two}``) as regexes."""

from __future__ import annotations

import re


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A regex matching exactly the addresses the OSC 1.0 pattern matches.

    Raises ValueError for an unbalanced bracket or brace."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i)
            if j < 0:
                raise ValueError(f"unclosed '[' in OSC pattern '{pattern}'")
            body = pattern[i + 1:j]
            neg = body.startswith("!")
            body = re.escape(body[1:] if neg else body).replace("\\-", "-")
            out.append(f"[{'^' if neg else ''}{body}]")
            i = j
        elif c == "{":
            j = pattern.find("}", i)
            if j < 0:
                raise ValueError(f"unclosed '{{' in OSC pattern '{pattern}'")
            out.append("(?:" + "|".join(re.escape(a) for a in pattern[i + 1:j].split(",")) + ")")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")
