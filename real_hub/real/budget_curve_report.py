"""A :class:`~real_hub.real.budget_curve.BudgetCurve` as tables, a plot, files and a dataset card's lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import atomic_path, write_text_atomic
from ..errors import MissingExtraError

if TYPE_CHECKING:
    from .budget_curve import BudgetCurve

#: The files :meth:`BudgetCurve.save` writes into a folder.
CURVE_FILES = {"json": "budget_curve.json", "markdown": "budget_curve.md", "plot": "budget_curve.png"}
COLORS = {
    "dissimilar": "#1b9e77",
    "random": "#7570b3",
    "similar": "#d95f02",
    "margin_high": "#e7298a",
    "margin_low": "#66a61e",
}


def pct(value: float, digits: int = 1) -> str:
    """An accuracy in percent: ``61.2``."""
    return f"{100 * value:.{digits}f}"


def pct_interval(mean: float, low: float, high: float, *, signed: bool = False) -> str:
    """``61.2 [59.8, 62.6]`` (``signed``: ``+1.2 [+0.3, +2.1]``, for differences in points)."""
    fmt = "+.1f" if signed else ".1f"
    return f"{100 * mean:{fmt}} [{100 * low:{fmt}}, {100 * high:{fmt}}]"


def interval_note(curve: BudgetCurve) -> str:
    """How the intervals were made, in one sentence."""
    level = f"{curve.confidence:.0%}"
    if curve.interval_method == "corrected":
        return (
            f"{level} corrected resampled t-intervals over the {curve.splits} splits (Nadeau and Bengio, "
            "2003): approximate, because the splits overlap"
        )
    return f"{level} t-intervals over the {curve.splits} splits (too narrow: the splits overlap)"


def method_line(curve: BudgetCurve) -> str:
    """The measurement in one paragraph: data, splits, learner, intervals."""
    learner = (
        "a linear Bradley-Terry reward on the response embeddings (logistic regression on chosen minus "
        f"rejected, both orientations, no intercept, L2 with C={curve.C:g}"
        + (", unit-length differences" if curve.unit_differences else "")
        + ")"
    )
    return (
        f"{curve.pairs} pairs of {curve.prompts} prompts; {curve.splits} seeded 50/50 splits by prompt "
        f"(seed {curve.seed}; about {round(np.mean(curve.train_pairs))} training and "
        f"{round(np.mean(curve.test_pairs))} held-out pairs each); similarity: {curve.similarity}. Each "
        f"strategy keeps its budget share of the training half; {learner} is fit on it and scored on the "
        "whole held-out half. Accuracy (%) = share of held-out pairs whose chosen response gets the higher "
        f"reward, mean over splits, with {interval_note(curve)}."
    )


def _kept(curve: BudgetCurve, budget: float) -> int:
    return round(float(np.mean([round(budget * n) for n in curve.train_pairs])))


def curve_markdown(curve: BudgetCurve, *, tolerance: float = 0.01) -> str:
    """Accuracy per budget and strategy, the paired differences against random, the annotation saved."""
    strategies = curve.strategies
    lines = [method_line(curve), ""]
    head = ["budget", "pairs kept", *strategies]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for b in curve.budgets:
        cells = [pct_interval(curve.accuracy(s, b), *curve.interval(s, b)) for s in strategies]
        lines.append(f"| {b:.0%} | {_kept(curve, b)} | " + " | ".join(cells) + " |")
    lo, hi = curve.interval("all", 1.0)
    lines += ["", f"All pairs: {pct_interval(curve.accuracy('all', 1.0), lo, hi)}.", ""]
    base = "random" if "random" in strategies else "all"
    others = [s for s in strategies if s != base]
    if others:
        lines += [
            f"Paired difference against {'random' if base == 'random' else 'all pairs'} (points):",
            "",
            "| budget | " + " | ".join(f"{s} - {base}" for s in others) + " |",
            "|" + "---|" * (len(others) + 1),
        ]
        for b in curve.budgets:
            cells = [pct_interval(*curve.difference(s, base, b), signed=True) for s in others]
            lines.append(f"| {b:.0%} | " + " | ".join(cells) + " |")
        lines.append("")
    points = f"{100 * tolerance:g} point{'s' if tolerance != 0.01 else ''}"
    lines += [
        f"Annotation saved within {points} of all pairs (on the budget grid; [confidently within, not "
        "confidently outside]):",
        "",
        "| strategy | saved |",
        "|---|---|",
    ]
    for s in strategies:
        mean, low, high = curve.saved(s, tolerance)
        lines.append(f"| {s} | {mean:.0%} [{low:.0%}, {high:.0%}] |")
    return "\n".join(lines) + "\n"


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or a :class:`MissingExtraError` naming the extra."""
    try:
        import matplotlib
    except ImportError:
        raise MissingExtraError(
            "plotting a budget curve needs matplotlib, which is not installed; install it with "
            "`pip install 'real-hub[experiments]'`",
            extra="experiments",
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curve(curve: BudgetCurve, path: str | Path, *, title: str | None = None) -> Path:
    """Accuracy (%) against budget (%), a line and an interval band per strategy, all pairs dashed."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(6, 4))
    x = [100 * b for b in curve.budgets]
    for s in curve.strategies:
        y = np.array([100 * curve.accuracy(s, b) for b in curve.budgets])
        band = np.array([[100 * v for v in curve.interval(s, b)] for b in curve.budgets])
        color = COLORS.get(s)
        ax.plot(x, y, marker="o", label=s, color=color)
        ax.fill_between(x, band[:, 0], band[:, 1], alpha=0.15, color=color)
    ref = 100 * curve.accuracy("all", 1.0)
    ax.axhline(ref, color="grey", ls="--", lw=0.8, label="all pairs")
    ax.set_xlabel("share of training pairs annotated (%)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title(title or f"Budget curve ({curve.splits} splits, {curve.confidence:.0%} intervals)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save a matplotlib figure atomically (format from the suffix, PNG by default) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def save_curve(curve: BudgetCurve, folder: str | Path, *, plot: bool = True) -> dict[str, Path]:
    """Write the JSON, the Markdown tables and (``plot``) the PNG into ``folder``; return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": write_text_atomic(folder / CURVE_FILES["json"], json.dumps(curve.to_dict(), indent=1) + "\n"),
        "markdown": write_text_atomic(
            folder / CURVE_FILES["markdown"],
            "# Budget curve\n\n" + curve.to_markdown() + f"\n![budget curve]({CURVE_FILES['plot']})\n",
        ),
    }
    if plot:
        paths["plot"] = plot_curve(curve, folder / CURVE_FILES["plot"])
    return paths


def card_summary(curve: BudgetCurve, strategy: str, budget: float | None) -> dict[str, str]:
    """What a dataset card cites of a curve: the method, all pairs, the strategy's accuracy, the saving."""
    budgets = curve.budgets if budget is None else (curve.budgets[curve._budget_index(budget)],)
    out = {
        "measurement": f"{curve.splits} prompt-grouped 50/50 splits of {curve.pairs} pairs, linear "
        f"Bradley-Terry reward on the embeddings, held-out accuracy %, {interval_note(curve)}",
        "all pairs": pct_interval(curve.accuracy("all", 1.0), *curve.interval("all", 1.0)),
    }
    for b in budgets:
        out[f"{strategy} at {b:.0%}"] = pct_interval(
            curve.accuracy(strategy, b), *curve.interval(strategy, b)
        )
    mean, low, high = curve.saved(strategy, 0.01)
    out["annotation saved within 1 point"] = f"{mean:.0%} [{low:.0%}, {high:.0%}]"
    return out
