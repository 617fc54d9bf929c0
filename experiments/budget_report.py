"""The budget study's section of RESULTS.md and its plots: tables, the papers' figures, computed verdicts.

Every figure is computed here from the study's measurements (``budget_study.py``); nothing is typed by hand.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from report import hardware, md_table, versions
from results_file import write_section

from real_hub.real.budget_curve import Estimate
from real_hub.real.budget_curve_report import interval_note, method_line, pct_interval, require_matplotlib

VERDICTS = ("holds", "does not hold", "cannot tell")


@dataclass(frozen=True)
class Claim:
    """A paper's claim, its own figure, and how this study tests it (an estimate against a threshold)."""

    paper: str
    claim: str
    figure: str
    estimate: Callable[[dict[str, Any]], Estimate]
    threshold: float
    show: Callable[[Estimate], str]
    note: str = ""


def points(e: Estimate) -> str:
    return pct_interval(*e, signed=True) + " points"


def share(e: Estimate) -> str:
    return f"{e.mean:.0%} [{e.low:.0%}, {e.high:.0%}]"


def negated(e: Estimate) -> Estimate:
    return Estimate(-e.mean, -e.high, -e.low)


def slope(e: Estimate) -> str:
    return f"slope {e.mean:+.3f} [{e.low:+.3f}, {e.high:+.3f}]"


CLAIMS = [
    Claim(
        "REAL (2409.17169)", "dissimilar pairs train better than similar pairs (50% budget)",
        "better margin and win rate with dissimilar pairs (DPO; SHP-2, synthetic HH-RLHF)",
        lambda m: m["curve"].difference("dissimilar", "similar", 0.5), 0.0, points,
    ),
    Claim(
        "REAL (2409.17169)", "dissimilar pairs train better than a random selection (50% budget)",
        "dissimilar selection improves alignment",
        lambda m: m["curve"].difference("dissimilar", "random", 0.5), 0.0, points,
    ),
    Claim(
        "REAL (2409.17169)", "dissimilar selection saves annotation at equal quality (within 1 point)",
        "up to 65% of annotators' work",
        lambda m: m["curve"].saved("dissimilar", 0.01), 0.65, share,
    ),
    Claim(
        "REAL (2409.17169)", "dissimilar pairs carry fewer label errors (agreement falls with similarity)",
        "fewer inherited labelling errors in dissimilar pairs",
        lambda m: negated(m["agreement"].slope), 0.0, lambda e: slope(negated(e)),
        "a falling agreement is also what a linear learner shows at equal label quality: see the "
        "mechanical part",
    ),
    Claim(
        "Deng et al. (2502.14560)", "the 10% with the largest reward margin beat all the pairs",
        "+3 to +8 points AlpacaEval 2 with 10% of UltraFeedback",
        lambda m: m["curve"].difference("margin_high", "all", 0.1), 0.0, points,
    ),
    Claim(
        "Deng et al. (2502.14560)", "the 10% with the largest reward margin beat a random 10%",
        "margin selection beats random selection",
        lambda m: m["curve"].difference("margin_high", "random", 0.1), 0.0, points,
    ),
    Claim(
        "Qi et al. (2508.04149)", "the 10% with the smallest reward gap beat all the pairs",
        "better than the full data with 10% of it",
        lambda m: m["curve"].difference("margin_low", "all", 0.1), 0.0, points,
    ),
    Claim(
        "Qi et al. (2508.04149)", "the 10% with the smallest reward gap beat a random 10%",
        "outperforms five baselines, random among them",
        lambda m: m["curve"].difference("margin_low", "random", 0.1), 0.0, points,
    ),
]  # fmt: skip


def verdict(e: Estimate, threshold: float) -> str:
    """Holds when the whole interval is above the threshold, does not hold when below, else cannot tell."""
    if e.low > threshold or (threshold > 0 and e.low >= threshold):
        return "holds"
    if e.high < threshold:
        return "does not hold"
    return "cannot tell"


def overall(verdicts: list[str]) -> str:
    """One verdict over the embedders: theirs when they agree, else cannot tell."""
    return verdicts[0] if len(set(verdicts)) == 1 else "cannot tell"


def plot_all(plots: Path, measured: dict[str, dict[str, Any]]) -> dict[str, str]:
    """A budget-curve plot per embedder and one agreement plot; paths relative to RESULTS.md."""
    plt = require_matplotlib()
    names = {}
    for key, m in measured.items():
        path = plots / f"hh_budget_{key}.png"
        curve = m["curve"]
        curve.plot(
            path, title=f"{key}: budget curve ({curve.splits} splits, {curve.confidence:.0%} intervals)"
        )
        names[key] = f"plots/{path.name}"
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, m in measured.items():
        m["agreement"].plot(None, label=key, ax=ax)
    ax.axhline(50, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("pair cosine similarity (decile mean; each embedder its own scale)")
    ax.set_ylabel("cross-fitted reward agrees with human label (%)")
    ax.set_title("Agreement by similarity decile (95% Wilson intervals)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    from real_hub.atomic import atomic_path

    with atomic_path(plots / "hh_agreement.png") as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    names["agreement"] = "plots/hh_agreement.png"
    return names


def mechanical(key: str, m: dict[str, Any]) -> str:
    """The mechanical part, in numbers: margins shrink with similarity; the unit-length control."""
    bins = m["agreement"].bins
    first, last = bins[0], bins[-1]
    plain = m["curve"].difference("dissimilar", "similar", 0.5)
    unit = m["controls"]["unit-length differences"].difference("dissimilar", "similar", 0.5)
    return (
        f"**{key}**: from the least to the most similar decile, the cross-fitted reward's mean |margin| "
        f"goes from {first.mean_abs_margin:.3f} to {last.mean_abs_margin:.3f} "
        f"({last.mean_abs_margin / first.mean_abs_margin:.2f}x) and its agreement with the human label from "
        f"{100 * first.agreement:.1f}% to {100 * last.agreement:.1f}%. Dissimilar minus similar at 50%: "
        f"{points(plain)} with the plain learner, {points(unit)} when every difference is scaled to unit "
        "length before fitting (each pair then weighs the same in the fit)."
    )


def write_report(
    path: Path,
    measured: dict[str, dict[str, Any]],
    s: Any,
    conversion: dict[str, Any],
    args: Any,
    *,
    elapsed: float,
    load: tuple[tuple[float, ...], tuple[float, ...]],
) -> dict[str, Any]:
    """Write the study's section of ``path`` and its plots; return the figures as a dictionary."""
    plots = path.parent / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    images = plot_all(plots, measured)
    keys = list(measured)
    any_curve = measured[keys[0]]["curve"]
    dry = args.dry_run
    command = " ".join(shlex.quote(a) for a in ["python", "experiments/budget_study.py", *sys.argv[1:]])
    title = "How much annotation does REAL save? Budget curves on all of HH-RLHF harmless-base"
    lines = [
        f"# {title}" + (" (DRY RUN: tiny random models, not a measurement)" if dry else ""),
        "",
        "Written by `experiments/budget_study.py`; nothing here is typed by hand. This is the main "
        "measurement of this file: a preference learner that fits on a 2-core CPU, repeated over "
        f"{s.splits} splits. The DPO section further down (written by `reproduce.py`) is the SMALL setting, "
        "a few dozen training pairs as it says itself, kept for the record: its differences sit inside its "
        "noise.",
        "",
        "## Run",
        "",
        f"- Command: `{command}`",
        f"- Data: `{args.data.name}` (HH-RLHF harmless-base test): {conversion['rows_in']} rows -> "
        f"{conversion['rows_out']} pairs (skipped: {conversion['skipped']})"
        + (f"; the first {s.limit} used (dry run)" if s.limit else "; all of them used")
        + ".",
        f"- Measurement (`real_hub.budget_curve`): {method_line(any_curve)}",
        f"- Budgets {', '.join(f'{b:.0%}' for b in s.budgets)}; strategies {', '.join(s.strategies)}. "
        f"`margin_high` / `margin_low` rank the training pairs by the signed margin of a reward fit on a "
        f"random {s.margin_seed:.0%} seed part of the training half (never on the pairs it ranks); the seed "
        "part counts toward the budget. Like the papers' rules they read the labels of the pairs they "
        "rank: they choose which labelled pairs to train on, not which pairs to annotate. The margin being "
        "signed, the smallest margins are the pairs whose label the seed reward most disagrees with.",
        "- Embedders (response only, no prompt; vectors L2-normalised): "
        + "; ".join(
            f"`{k}` = {m['embedder'].label}, {m['meta']['dim']} dimensions, embedded in "
            f"{m['meta']['seconds'] / 60:.1f} min (cached under the output folder)"
            for k, m in measured.items()
        )
        + ".",
        f"- Label-noise view (`real_hub.agreement_by_similarity`): {s.folds} prompt-grouped folds, "
        f"{s.deciles} similarity bins.",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in versions().items())}",
        f"- Hardware: {hardware()}",
        f"- Run time: {elapsed / 60:.1f} min (this invocation; cached embeddings are not recomputed). Load "
        f"average before {load[0][0]:.2f} / after {load[1][0]:.2f} (1 min), on a machine shared with other "
        "jobs.",
        "",
        "## Summary",
        "",
        f"Held-out accuracy (%) at a 50% budget and of all pairs, with {interval_note(any_curve)}; "
        "annotation saved within 1 point of all pairs (on the budget grid: [confidently within, not "
        "confidently outside]).",
        "",
        md_table(
            [
                "embedder",
                "all pairs",
                "dissimilar 50%",
                "random 50%",
                "similar 50%",
                "saved: dissimilar",
                "saved: random",
                "saved: similar",
            ],
            [
                (
                    k,
                    pct_interval(m["curve"].accuracy("all", 1.0), *m["curve"].interval("all", 1.0)),
                    *(
                        pct_interval(m["curve"].accuracy(x, 0.5), *m["curve"].interval(x, 0.5))
                        for x in ("dissimilar", "random", "similar")
                    ),
                    *(share(m["curve"].saved(x, 0.01)) for x in ("dissimilar", "random", "similar")),
                )
                for k, m in measured.items()
            ],
        ),  # fmt: skip
        "",
    ]
    for k, m in measured.items():
        lines += [
            f"## Budget curve: {k}",
            "",
            m["curve"].to_markdown().split("\n", 2)[2],  # the method paragraph is in Run
            f"![budget curve, {k}]({images[k]})",
            "",
        ]
    lines += [
        "## The learner's settings: do they change the comparison?",
        "",
        "Dissimilar minus similar and dissimilar minus random at 50% (points, corrected intervals) under "
        "other regularisation and with unit-length differences; and, for comparison, the plain t-interval "
        "over splits (which ignores that splits overlap, so it is too narrow).",
        "",
        md_table(
            ["embedder", "learner", "all pairs", "dissimilar - similar", "dissimilar - random"],
            [
                (
                    k,
                    label,
                    pct_interval(c.accuracy("all", 1.0), *c.interval("all", 1.0)),
                    points(c.difference("dissimilar", "similar", 0.5)),
                    points(c.difference("dissimilar", "random", 0.5)),
                )
                for k, m in measured.items()
                for label, c in [
                    (f"C={s.C:g} (the study's)", m["curve"]),
                    *m["controls"].items(),
                    (f"C={s.C:g}, plain t-interval", m["plain_t"]),
                ]
            ],
        ),
        "",
        "## Label noise by similarity decile",
        "",
        "The human label against a linear reward cross-fitted on the other prompts' pairs, per similarity "
        "decile; a falling agreement is what REAL's label-noise claim predicts.",
        "",
    ]
    for k, m in measured.items():
        lines += [f"**{k}**: " + m["agreement"].to_markdown()]
    lines += [
        f"![agreement by similarity decile]({images['agreement']})",
        "",
        "## The mechanical part",
        "",
        "Similar responses have close embeddings, so the difference a linear reward sees, "
        "`e(chosen) - e(rejected)`, is short (its squared length is `2 - 2 cos` for unit vectors). The "
        "reward's margin on such a pair is small and its sign easily wrong, and in the fit such a pair "
        "moves the weights little, whatever the quality of its label. So a reward trained on similar pairs "
        "may learn less, and agree less with labels of similar pairs, without those labels being worse. "
        "The figures below put the two effects side by side; the unit-length control removes the second "
        "(each pair weighs the same in the fit) but not the first. No learner on prompt-and-response "
        "features was added: like REAL's selection, the learner sees the responses alone.",
        "",
    ]
    for k, m in measured.items():
        lines += [mechanical(k, m), ""]
    lines += [
        "## The papers' figures beside ours",
        "",
        "The papers measure DPO-trained LLMs on benchmarks; this study measures a linear reward on frozen "
        "response embeddings, on HH harmless-base. A verdict is about this proxy: **holds** when the whole "
        "95% interval is on the claim's side, **does not hold** when it is on the other side, **cannot "
        "tell** otherwise; the line's verdict is the embedders' when they agree, else cannot tell.",
        "",
    ]
    rows, verdict_lines, verdicts = [], [], {}
    for claim in CLAIMS:
        per = {k: claim.estimate(m) for k, m in measured.items()}
        each = {k: verdict(e, claim.threshold) for k, e in per.items()}
        verdicts[claim.claim] = {"overall": overall(list(each.values())), **each}
        rows.append(
            (
                claim.paper,
                claim.claim,
                claim.figure,
                "; ".join(f"{k}: {claim.show(e)}" for k, e in per.items()),
            )
        )
        verdict_lines.append(
            f"- **{overall(list(each.values()))}**: {claim.paper}, {claim.claim} ("
            + ", ".join(f"{k} {v}" for k, v in each.items())
            + ")"
            + (f"; note: {claim.note}." if claim.note else ".")
        )
    lines += [md_table(["paper", "claim", "paper's figure", "this study"], rows), "", "## Verdicts", ""]
    lines += verdict_lines
    write_section(path, "budget-study", "\n".join(lines) + "\n")
    return {
        "splits": s.splits,
        "dry_run": dry,
        "embedders": {
            k: {
                "label": m["embedder"].label,
                "dim": m["meta"]["dim"],
                "all": list(Estimate(m["curve"].accuracy("all", 1.0), *m["curve"].interval("all", 1.0))),
                "at_50": {
                    x: list(Estimate(m["curve"].accuracy(x, 0.5), *m["curve"].interval(x, 0.5)))
                    for x in ("dissimilar", "random", "similar")
                },
                "saved_within_1_point": {x: list(m["curve"].saved(x, 0.01)) for x in s.strategies},
                "slope": list(m["agreement"].slope),
            }
            for k, m in measured.items()
        },
        "verdicts": verdicts,
        "elapsed_s": elapsed,
    }
