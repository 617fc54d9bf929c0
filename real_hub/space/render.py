"""What the Space shows, as text and HTML: previews, conversation turns, word diffs, the heatmap.

Plain functions of values (no gradio, no datasets), so each is tested directly. Every text that comes
from a dataset is HTML-escaped here.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..reporting import format_number

PREVIEW_CHARS = 120
ONLY_HERE = "only here"
"""The ``gr.HighlightedText`` category of a word found in one response of a pair only."""


def as_text(value: Any) -> str:
    """A prompt or response as plain text; a conversation becomes ``role: content`` lines."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "\n".join(
            f"{m.get('role', '?')}: {m.get('content', '')}" if isinstance(m, dict) else str(m) for m in value
        )
    return str(value)


def completion_text(value: Any) -> str:
    """A response's own words: for a conversational completion, the contents of its turns, no roles."""
    if isinstance(value, (list, tuple)):
        return "\n".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in value)
    return as_text(value)


def preview(value: Any, chars: int = PREVIEW_CHARS) -> str:
    """The start of a text (for conversations, the last turn), on one line, at most ``chars`` long."""
    if isinstance(value, (list, tuple)) and value and isinstance(value[-1], dict):
        value = value[-1].get("content", "")
    text = " ".join(as_text(value).split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def turns_html(value: Any) -> str:
    """HTML of a prompt or response: one block per conversation turn, text escaped."""
    if isinstance(value, (list, tuple)) and all(isinstance(m, dict) for m in value):
        blocks = []
        for m in value:
            role = html.escape(str(m.get("role", "")))
            text = _escape(m.get("content", ""))
            blocks.append(f'<div class="rh-turn rh-{role}"><b>{role}</b><div>{text}</div></div>')
        return "".join(blocks)
    return f'<div class="rh-turn"><div>{_escape(as_text(value))}</div></div>'


def _escape(text: Any) -> str:
    return html.escape(str(text)).replace("\n", "<br>")


def error_box(message: str) -> str:
    """HTML of an error shown in the page (``message`` is trusted markup)."""
    return f'<div class="rh-error">⚠️ {message}</div>'


_TOKEN = re.compile(r"\S+\s*")

Highlighted = list[tuple[str, str | None]]


def word_diff(a: str, b: str) -> tuple[Highlighted, Highlighted]:
    """Words of ``a`` and of ``b`` with those not shared marked, as ``gr.HighlightedText`` values.

    Words are whitespace-separated tokens (the space after a word stays with it); a word of ``a`` is
    labelled :data:`ONLY_HERE` when difflib's word alignment finds no match for it in ``b``, and vice
    versa. Runs of equally labelled words are merged.
    """
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    ka, kb = [t.strip() for t in ta], [t.strip() for t in tb]
    la: list[str | None] = [ONLY_HERE] * len(ta)
    lb: list[str | None] = [ONLY_HERE] * len(tb)
    for block in difflib.SequenceMatcher(None, ka, kb, autojunk=False).get_matching_blocks():
        la[block.a : block.a + block.size] = [None] * block.size
        lb[block.b : block.b + block.size] = [None] * block.size
    return _merge(ta, la), _merge(tb, lb)


def _merge(tokens: list[str], labels: list[str | None]) -> Highlighted:
    out: Highlighted = []
    for tok, lab in zip(tokens, labels):
        if out and out[-1][1] == lab:
            out[-1] = (out[-1][0] + tok, lab)
        else:
            out.append((tok, lab))
    return out


def heatmap_html(
    sim: np.ndarray | Sequence[Sequence[float]], chosen: int | None, rejected: int | None
) -> str:
    """An HTML heatmap of a prompt's candidate similarities; the selected pair's two cells outlined."""
    sim = np.asarray(sim, dtype=np.float64)
    n = sim.shape[0]

    def name(i: int) -> str:
        tag = " (chosen)" if i == chosen else " (rejected)" if i == rejected else ""
        return f"#{i}{tag}"

    head = "".join(f"<th>{html.escape(name(j))}</th>" for j in range(n))
    body = []
    for i in range(n):
        cells = []
        for j in range(n):
            v = float(sim[i, j])
            shade = int(255 - 200 * max(0.0, min(1.0, (v + 1) / 2)))
            mark = {chosen, rejected} == {i, j} and i != j
            style = f"background: rgb({shade},{shade},255);" + (
                " outline: 3px solid #e4572e;" if mark else ""
            )
            cls = ' class="rh-selected"' if mark else ""
            cells.append(f'<td{cls} style="{style}" title="{v:.3f}">{v:.2f}</td>')
        body.append(f"<tr><th>{html.escape(name(i))}</th>{''.join(cells)}</tr>")
    return (
        '<table class="rh-heatmap"><tr><th></th>' + head + "</tr>" + "".join(body) + "</table>"
        "<p>Cosine similarity between the prompt's candidates; the selected pair is outlined.</p>"
    )


def number(value: Any) -> str:
    """A value for the page: floats to 4 significant digits, ``None`` as a dash."""
    return format_number(value, ".4g", none="–")


def pair_header(item: dict[str, Any], position: int, total: int) -> str:
    """The markdown line above a pair: where it is, its similarity, rewards or scores, domain, strategy."""
    parts = [f"**Pair {position + 1} of {total}** (row {item['row']})"]
    for key in ("similarity", "margin", "chosen_reward", "rejected_reward", "chosen_score", "rejected_score"):
        if key in item:
            parts.append(f"{key}: `{number(item[key])}`")
    if item.get("domain"):
        parts.append(f"domain: `{item['domain']}`")
    if "strategy" in item:
        parts.append(f"strategy: `{item['strategy']}`")
    return " · ".join(parts)
