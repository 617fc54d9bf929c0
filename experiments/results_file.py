"""experiments/RESULTS.md holds one section per script, each written by its script and no one else.

A section sits between ``<!-- section KEY: written by SCRIPT; do not edit -->`` and ``<!-- end KEY -->``;
:func:`write_section` replaces one section and keeps the others as they are, in the order of ``ORDER``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Section keys, in the order they appear in the file, and the script that writes each.
ORDER = {"budget-study": "experiments/budget_study.py", "reproduce": "experiments/reproduce.py"}
_SECTION = re.compile(r"<!-- section (?P<key>[\w-]+): [^>]*-->\n(?P<body>.*?)<!-- end (?P=key) -->\n?", re.S)


def read_sections(text: str) -> dict[str, str]:
    """The sections of a RESULTS.md text, by key (their bodies, without the markers)."""
    return {m.group("key"): m.group("body") for m in _SECTION.finditer(text)}


def write_section(path: Path, key: str, body: str) -> None:
    """Replace section ``key`` of ``path`` with ``body`` (atomically), keeping the other sections."""
    if key not in ORDER:
        raise ValueError(f"unknown section {key!r}: expected one of {sorted(ORDER)}")
    sections = read_sections(path.read_text(encoding="utf-8")) if path.exists() else {}
    sections[key] = body if body.endswith("\n") else body + "\n"
    parts = [
        f"<!-- section {k}: written by {ORDER[k]}; do not edit -->\n{sections[k]}<!-- end {k} -->\n"
        for k in ORDER
        if k in sections
    ]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    os.replace(tmp, path)
