"""The sections of ``benchmarks/RESULTS.md`` that each benchmark script owns.

A section is the text between ``<!-- TAG: begin -->`` and ``<!-- TAG: end -->``; a script rewrites
its own section in place (or appends it) and leaves every other one as it was, so the scripts can
run at different times and on different machines without erasing each other's results.
"""

from __future__ import annotations

import os
import re
from typing import List, Tuple

_SECTION = re.compile(r"(<!-- (.+?): begin -->.*?<!-- \2: end -->)", re.S)


def markers(tag: str) -> Tuple[str, str]:
    return f"<!-- {tag}: begin -->", f"<!-- {tag}: end -->"


def sections(text: str) -> List[Tuple[str, str]]:
    """Every (tag, section text including its markers) in ``text``, in order."""
    return [(m.group(2), m.group(1)) for m in _SECTION.finditer(text)]


def write_section(path: str, section: str, tag: str) -> None:
    """Put ``section`` (its text starts and ends with ``tag``'s markers) in place of the file's
    section of that tag, or at the end when it has none; atomically."""
    from micronets.compiler.export import write_atomic

    begin, end = markers(tag)
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    section = section.rstrip("\n") + "\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    write_atomic(path, text)
