"""Commands out of shell text (README bash blocks, ``--help`` examples) for the example tests."""

from __future__ import annotations

import re


def shell_commands(lines: list[str]) -> list[str]:
    """Join ``\\`` continuations, split ``&&`` chains and drop ``# comments``; one command each.

    Whitespace is normalised to single spaces, so a command compares equal however it was
    wrapped.
    """
    joined: list[str] = []
    for line in lines:
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1] + " " + line.strip()
        else:
            joined.append(line.strip())
    return [" ".join(re.sub(r"\s#\s.*$", "", part).split())
            for line in joined for part in line.split("&&")]
