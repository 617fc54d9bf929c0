r"""Measure REAL's and Dr.SoW's claims with real-hub's own pipeline on HH-RLHF (harmless-base test split).

Usage::

    # the full experiment (a GPU; 3 seeds, the whole train split)
    python experiments/reproduce.py --output-dir experiments/output

    # the small setting: fits in about an hour on a 2-core CPU (fewer, shorter pairs, 1 seed, LoRA)
    python experiments/reproduce.py --small

    # a smoke test: tiny random models, a handful of pairs, seconds (what the test suite runs)
    python experiments/reproduce.py --small --dry-run --output-dir /tmp/reproduce-dry

What it does (every step cached under ``--output-dir``; a rerun resumes and reports its cache hits in
``cache_report.json``):

1. Converts the HH transcripts to pairs (:func:`real_hub.to_pairs`, message prompts), splits them by prompt
   into train and held-out eval (seeded; row ids saved in ``split.json``).
2. Embeds both responses of every pair with all-MiniLM-L6-v2 and with REAL's own backend (the policy's
   last hidden states, ``EmbedResponses(..., backend="causal-lm")``), cosine similarity per pair.
3. REAL: keeps 50% of the train pairs with ``dissimilar``, ``similar`` and ``random``
   (:func:`real_hub.budget_filter`), plus all pairs, and ``dissimilar`` at 25% and 75% (the budget curve);
   DPO-trains SmolLM2-135M-Instruct on each with :func:`real_hub.train_dpo` (one epoch, the same
   hyperparameters everywhere, so every 50% set gets the same number of optimizer steps).
4. On the eval split: implicit-reward accuracy and mean margin of each DPO model,
   ``beta * (log pi - log pi_ref)``, with 95% bootstrap intervals over eval pairs (and seeds).
5. Dr.SoW: :class:`real_hub.DensityRatioReward` with strong = the DPO model trained on all train pairs,
   weak = its SFT parent; accuracy (a tie is wrong) summed and per token, routing on and off, against the
   plain log-likelihood of the SFT model and random.
6. Label noise against similarity: agreement of the human label with the Dr.SoW label by similarity decile,
   and the slope of agreement against similarity, with bootstrap intervals.
7. Writes ``RESULTS.md`` (tables, the papers' figures beside ours, command, versions, hardware, run time)
   and PNG plots.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from report import write_results

from real_hub.atomic import write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
HH_FILE = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"

logger = logging.getLogger("reproduce")

# ---------------------------------------------------------------------------------------------- settings


@dataclass
class Settings:
    """Everything that sets the numbers of a run (saved in ``settings.json``; a change starts a new cache)."""

    name: str
    n_train: int | None  # train pairs drawn from the split (None: all)
    n_eval: int | None
    max_tokens: int | None  # keep pairs whose rendered prompt + each response fits (None: no filter)
    seeds: int
    lora: bool
    learning_rate: float
    beta: float = 0.1
    batch_size: int = 4
    epochs: float = 1.0
    eval_fraction: float = 0.5
    policy: str = SMOLLM2
    sentence_embedder: str = MINILM
    score_batch_size: int = 16
    bootstrap: int = 2000
    split_seed: int = 0


FULL = Settings("full", None, None, 512, 3, False, 5e-7, batch_size=8)
SMALL = Settings("small", 32, 32, 64, 1, True, 2e-4)
DRY = Settings("small-dry-run", 8, 8, 200, 1, True, 1e-3, bootstrap=200)


# ------------------------------------------------------------------------------------------------ cache


class Cache:
    """A folder of named artefacts; each step is computed once and read back on reruns."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.hits: list[str] = []
        self.computed: list[str] = []

    def json(self, name: str, compute: Callable[[], Any]) -> Any:
        """The JSON artefact ``name`` (computed and written when absent)."""
        path = self.root / f"{name}.json"
        if path.exists():
            self.hits.append(name)
            logger.info("cache hit: %s", name)
            return json.loads(path.read_text())
        value = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, value, indent=None)
        self.computed.append(name)
        return value

    def folder(self, name: str, build: Callable[[Path], None]) -> Path:
        """The folder artefact ``name``; ``build(path)`` fills it when it has no ``.done`` marker."""
        path = self.root / name
        if (path / ".done").exists():
            self.hits.append(name)
            logger.info("cache hit: %s", name)
            return path
        path.mkdir(parents=True, exist_ok=True)
        build(path)
        write_text_atomic(path / ".done", "")
        self.computed.append(name)
        return path

    def report(self) -> dict[str, list[str]]:
        """What this run read from the cache and what it computed."""
        return {"hits": self.hits, "computed": self.computed}


# ------------------------------------------------------------------------------------------------- data


def load_pairs(path: Path) -> tuple[Any, dict[str, Any]]:
    """HH transcripts as pairs with message prompts, and the conversion report."""
    from datasets import load_dataset

    from real_hub import to_pairs

    raw = load_dataset("json", data_files=str(path), split="train")
    pairs, report = to_pairs(raw, "hh")
    return pairs, {"rows_in": report.rows_in, "rows_out": report.rows_out, "skipped": dict(report.skipped)}


def render_pairs(tokenizer: Any, pairs: Any) -> tuple[list[str], list[str], list[str]]:
    """The policy's chat rendering: prompt text, chosen and rejected continuations (end-of-turn included)."""
    from real_hub.rendering import render

    prompts, chosen, rejected = [], [], []
    for row in pairs:
        (p, c), _ = render(tokenizer, row["prompt"], row["chosen"])
        (p2, r), _ = render(tokenizer, row["prompt"], row["rejected"])
        assert p == p2
        prompts.append(p)
        chosen.append(c)
        rejected.append(r)
    return prompts, chosen, rejected


def make_split(pairs: Any, tokenizer: Any, s: Settings) -> dict[str, Any]:
    """Train/eval row ids, split by prompt (seeded); optionally only pairs that fit ``max_tokens``."""
    keys = [json.dumps(p, sort_keys=True) for p in pairs["prompt"]]
    ids = [int(i) for i in pairs["source_id"]]
    fits = np.ones(len(pairs), dtype=bool)
    if s.max_tokens is not None:
        prompts, chosen, rejected = render_pairs(tokenizer, pairs)
        p_len = [len(x) for x in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
        c_len = [len(x) for x in tokenizer(chosen, add_special_tokens=False)["input_ids"]]
        r_len = [len(x) for x in tokenizer(rejected, add_special_tokens=False)["input_ids"]]
        fits = np.array([p + max(c, r) <= s.max_tokens for p, c, r in zip(p_len, c_len, r_len, strict=True)])
    unique = sorted(set(keys))
    rng = np.random.default_rng(s.split_seed)
    order = rng.permutation(len(unique))
    n_eval = round(s.eval_fraction * len(unique))
    eval_keys = {unique[k] for k in order[:n_eval]}
    split: dict[str, list[int]] = {"train": [], "eval": []}
    for row, (key, ok) in enumerate(zip(keys, fits, strict=True)):
        if ok:
            split["eval" if key in eval_keys else "train"].append(row)
    for part, limit in (("train", s.n_train), ("eval", s.n_eval)):
        if limit is not None and len(split[part]) > limit:
            split[part] = sorted(rng.choice(split[part], size=limit, replace=False).tolist())
    return {
        "train_rows": split["train"],
        "eval_rows": split["eval"],
        "train_source_ids": [ids[r] for r in split["train"]],
        "eval_source_ids": [ids[r] for r in split["eval"]],
        "prompts": len(unique),
        "pairs_fitting": int(fits.sum()),
        "pairs": len(pairs),
    }


# ---------------------------------------------------------------------------------------------- models


def build_dry_models(folder: Path) -> None:
    """Tiny random models of ``tests/tiny_models.py``: a Llama policy and a GPT-2 "sentence" embedder."""
    sys.path.insert(0, str(ROOT / "tests"))
    import tiny_models

    tok = tiny_models.llama_tokenizer()
    tiny_models.save_tiny(tiny_models.tiny_llama(tok), tok, folder / "policy")
    gtok = tiny_models.gpt2_tokenizer()
    tiny_models.save_tiny(tiny_models.tiny_gpt2(gtok), gtok, folder / "embedder")


def build_sft(folder: Path, name: str) -> None:
    """The SFT parent saved as a plain fp32 folder (the packaged GGUF is dequantised once)."""
    from real_hub.models import read_causal_lm

    model, tokenizer = read_causal_lm(name)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def load_policy(sft: Path, adapter: Path | None) -> tuple[Any, Any]:
    """The SFT model, with a trained DPO model's weights (full folder or LoRA adapter) when given."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(sft)
    if adapter is None:
        return AutoModelForCausalLM.from_pretrained(sft).eval(), tokenizer
    if (adapter / "adapter_config.json").exists():
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(sft)
        return PeftModel.from_pretrained(base, adapter).merge_and_unload().eval(), tokenizer
    return AutoModelForCausalLM.from_pretrained(adapter).eval(), tokenizer


# ------------------------------------------------------------------------------------------- experiment


@dataclass
class Run:
    """One invocation: settings, paths and the cache."""

    s: Settings
    out: Path
    cache: Cache
    dry_run: bool
    sft: Path = field(default=Path())
    sentence_embedder: str = MINILM
    tokenizer: Any = None
    pairs: Any = None
    split: dict[str, Any] = field(default_factory=dict)

    def subset(self, part: str) -> Any:
        return self.pairs.select(self.split[f"{part}_rows"])


def embed_step(run: Run) -> dict[str, dict[str, list[float]]]:
    """Cosine similarity of every train and eval pair, for both embedders."""
    from real_hub import EmbedResponses, PairSimilarity

    embedders = {
        "minilm": (lambda: EmbedResponses(run.sentence_embedder, backend="causal-lm"))
        if run.dry_run
        else (lambda: EmbedResponses(run.sentence_embedder)),
        "causal-lm": lambda: EmbedResponses(str(run.sft), backend="causal-lm", batch_size=16),
    }
    out: dict[str, dict[str, list[float]]] = {}
    for name, make in embedders.items():

        def compute(make: Callable[[], Any] = make, name: str = name) -> dict[str, list[float]]:
            embed, result = make(), {}
            for part in ("train", "eval"):
                data = run.subset(part).select_columns(["chosen", "rejected"])
                desc = f"Embedding {part} ({name})"
                data = data.map(embed, batched=True, batch_size=64, desc=desc)
                data = data.map(PairSimilarity(), batched=True, desc="Pair similarity")
                result[part] = [float(x) for x in data["similarity"]]
            return result

        out[name] = run.cache.json(f"similarity/{name}", compute)
    return out


def training_sets(run: Run, sims: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, Any]]:
    """Name -> (train row indices, description) of every DPO training set."""
    from datasets import Dataset

    from real_hub import budget_filter

    n = len(run.split["train_rows"])
    sets: dict[str, dict[str, Any]] = {"all": {"rows": list(range(n)), "budget": 1.0, "strategy": "all"}}
    for embedder in ("minilm", "causal-lm"):
        table = Dataset.from_dict({"row": list(range(n)), "similarity": sims[embedder]["train"]})
        for strategy in ("dissimilar", "similar"):
            kept, _ = budget_filter(table, 0.5, strategy)
            sets[f"{strategy}-50-{embedder}"] = {"rows": kept["row"], "budget": 0.5, "strategy": strategy}
        for budget in (0.25, 0.75):
            if embedder == "minilm":
                kept, _ = budget_filter(table, budget, "dissimilar")
                sets[f"dissimilar-{round(budget * 100)}-minilm"] = {
                    "rows": kept["row"],
                    "budget": budget,
                    "strategy": "dissimilar",
                }
    table = Dataset.from_dict({"row": list(range(n)), "similarity": sims["minilm"]["train"]})
    kept, _ = budget_filter(table, 0.5, "random", seed=run.s.split_seed)
    sets["random-50"] = {"rows": kept["row"], "budget": 0.5, "strategy": "random"}
    return sets


def train_step(run: Run, name: str, rows: list[int], seed: int) -> Path:
    """DPO-train the SFT model on the train pairs ``rows`` (one epoch); the saved model's folder."""
    from real_hub import train_dpo

    def build(folder: Path) -> None:
        data = run.subset("train").select(rows).select_columns(["prompt", "chosen", "rejected"])
        steps = max(1, math.ceil(run.s.epochs * len(rows) / run.s.batch_size))
        logger.info("DPO on %s (seed %d): %d pairs, %d optimizer steps", name, seed, len(rows), steps)
        result = train_dpo(
            data,
            str(run.sft),
            output_dir=str(folder),
            max_steps=steps,
            per_device_train_batch_size=run.s.batch_size,
            learning_rate=run.s.learning_rate,
            beta=run.s.beta,
            max_length=run.s.max_tokens,
            lora=run.s.lora,
            seed=seed,
            logging_steps=1,
        )
        write_json_atomic(
            folder / "train_result.json",
            {
                "pairs": len(rows),
                "steps": steps,
                "losses": result.losses,
                "metrics": result.metrics,
                "rows_trained": result.rows_trained,
                "ref_logps_source": result.ref_logps_source,
            },
            indent=None,
        )

    return run.cache.folder(f"models/{name}/seed{seed}", build)


def score_step(run: Run, name: str, model_dir: Path | None) -> dict[str, list[float]]:
    """Summed log-probs of the eval pairs' chosen and rejected responses under a model (None: the SFT)."""
    from real_hub import score_sequences

    def compute() -> dict[str, list[float]]:
        model, tokenizer = load_policy(run.sft, model_dir)
        prompts, chosen, rejected = render_pairs(tokenizer, run.subset("eval"))
        both = score_sequences(
            model,
            tokenizer,
            prompts + prompts,
            chosen + rejected,
            batch_size=run.s.score_batch_size,
            show_progress=True,
        )
        n = len(prompts)
        return {
            "chosen": both.logp[:n].tolist(),
            "rejected": both.logp[n:].tolist(),
            "chosen_tokens": both.n_tokens[:n].tolist(),
            "rejected_tokens": both.n_tokens[n:].tolist(),
        }

    return run.cache.json(f"logps/{name}", compute)


def implicit_rewards(run: Run, policy: dict[str, list[float]], ref: dict[str, list[float]]) -> np.ndarray:
    """Per eval pair: ``beta * ((log pi - log ref)(chosen) - (log pi - log ref)(rejected))``."""
    c = np.array(policy["chosen"]) - np.array(ref["chosen"])
    r = np.array(policy["rejected"]) - np.array(ref["rejected"])
    return run.s.beta * (c - r)


def drsow_off(strong: dict[str, list[float]], weak: dict[str, list[float]]) -> dict[str, Any]:
    """Dr.SoW without routing, from the eval log-probs of section 1 (the same rendering and engine)."""
    out: dict[str, Any] = {"truncated": 0}
    for side in ("chosen", "rejected"):
        out[f"{side}_logp_strong"] = strong[side]
        out[f"{side}_logp_weak"] = weak[side]
        out[f"{side}_tokens"] = strong[f"{side}_tokens"]
        out[f"{side}_tokens_weak"] = weak[f"{side}_tokens"]
    return out


def drsow_step(run: Run, strong: Path) -> dict[str, Any]:
    """Dr.SoW rewards of the eval pairs with routing (strong = DPO on all pairs, weak = SFT)."""
    from real_hub import DensityRatioReward, KeywordRouter

    routing = True

    def compute() -> dict[str, Any]:
        strong_dir = strong
        if (strong / "adapter_config.json").exists():  # DensityRatioReward loads plain folders: merge once
            merged = run.out / "models" / "all-merged"
            if not (merged / "config.json").exists():
                model, tokenizer = load_policy(run.sft, strong)
                model.save_pretrained(merged)
                tokenizer.save_pretrained(merged)
            strong_dir = merged
        options: dict[str, Any] = {
            "normalize": "sum",
            "domain_routing": routing,
            "batch_size": run.s.score_batch_size,
        }
        if routing and run.dry_run:
            options["router"] = KeywordRouter()
        reward = DensityRatioReward(str(strong_dir), str(run.sft), **options)
        data = run.subset("eval").select_columns(["prompt", "chosen", "rejected"])
        scored = data.map(
            reward, batched=True, batch_size=32, desc=f"Dr.SoW (routing {'on' if routing else 'off'})"
        )
        keep = [
            c
            for c in scored.column_names
            if c.endswith(("_logp_strong", "_logp_weak", "_tokens", "_tokens_weak", "_reward"))
        ]
        result = {c: list(scored[c]) for c in keep}
        if routing:
            result["domain"] = list(scored["domain"])
        result["truncated"] = reward.stats.truncated
        return result

    return run.cache.json(f"drsow/routing-{'on' if routing else 'off'}", compute)


# -------------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="the 2-core CPU setting (about an hour)")
    parser.add_argument("--dry-run", action="store_true", help="tiny random models and a handful of pairs")
    parser.add_argument(
        "--output-dir", type=Path, default=None, help="cache folder (default experiments/output-<setting>)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="RESULTS.md to write (default experiments/RESULTS.md; dry run: in --output-dir)",
    )
    parser.add_argument("--data", type=Path, default=HH_FILE, help="HH-RLHF jsonl(.gz)")
    parser.add_argument("--n-train", type=int, default=None, help="override: train pairs drawn")
    parser.add_argument("--n-eval", type=int, default=None, help="override: eval pairs drawn")
    parser.add_argument("--max-tokens", type=int, default=None, help="override: longest rendered pair kept")
    parser.add_argument("--seeds", type=int, default=None, help="override: training seeds")
    parser.add_argument("--lr", type=float, default=None, help="override: learning rate")
    return parser.parse_args(argv)


def settings_for(args: argparse.Namespace) -> Settings:
    base = DRY if args.dry_run else SMALL if args.small else FULL
    changes = {
        k: v
        for k, v in (
            ("n_train", args.n_train),
            ("n_eval", args.n_eval),
            ("max_tokens", args.max_tokens),
            ("seeds", args.seeds),
            ("learning_rate", args.lr),
        )
        if v is not None
    }
    return dataclasses.replace(base, **changes)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    s = settings_for(args)
    out = args.output_dir or ROOT / "experiments" / f"output-{s.name}"
    results = args.results or (out / "RESULTS.md" if args.dry_run else ROOT / "experiments" / "RESULTS.md")
    started = time.time()
    load_before = os.getloadavg()
    cache = Cache(out)
    settings_path = out / "settings.json"
    if settings_path.exists() and json.loads(settings_path.read_text()) != dataclasses.asdict(s):
        raise SystemExit(f"{out} holds a run with other settings ({settings_path}); use another --output-dir")
    write_json_atomic(settings_path, dataclasses.asdict(s))
    run = Run(s, out, cache, args.dry_run)

    # models
    if args.dry_run:
        tiny = cache.folder("models/tiny", build_dry_models)
        run.sft, run.sentence_embedder = tiny / "policy", str(tiny / "embedder")
    else:
        run.sft = cache.folder("models/sft", lambda p: build_sft(p, s.policy))
    from transformers import AutoTokenizer

    run.tokenizer = AutoTokenizer.from_pretrained(run.sft)

    # 1. data and split
    run.pairs, conversion = load_pairs(args.data)
    run.split = cache.json("split", lambda: make_split(run.pairs, run.tokenizer, s))
    logger.info(
        "split: %d train pairs, %d eval pairs", len(run.split["train_rows"]), len(run.split["eval_rows"])
    )

    # 2. embeddings
    sims = embed_step(run)

    # 3. DPO on every set, 4. implicit rewards on eval
    sets = training_sets(run, sims)
    ref = score_step(run, "sft", None)
    from tqdm.auto import tqdm

    evals: dict[str, list[np.ndarray]] = {}
    models: dict[str, list[Path]] = {}
    first = ["all", "dissimilar-50-minilm", "similar-50-minilm", "random-50"]
    names = first + [n for n in sets if n not in first]
    jobs = [(name, seed) for name in names for seed in range(s.seeds)]
    for name, seed in tqdm(jobs, desc="DPO models (train + eval)", unit="model"):
        folder = train_step(run, name, sets[name]["rows"], seed)
        models.setdefault(name, []).append(folder)
        evals.setdefault(name, []).append(
            implicit_rewards(run, score_step(run, f"{name}-seed{seed}", folder), ref)
        )

    # 5. Dr.SoW
    drsow = {
        False: drsow_off(score_step(run, "all-seed0", models["all"][0]), ref),
        True: drsow_step(run, models["all"][0]),
    }

    elapsed = time.time() - started
    load_after = os.getloadavg()
    report = write_results(
        run, results, sets, evals, drsow, sims, conversion, args, elapsed, load_before, load_after
    )
    write_json_atomic(out / "cache_report.json", cache.report())
    logger.info("cache: %d hits, %d computed; wrote %s", len(cache.hits), len(cache.computed), results)
    write_json_atomic(out / "summary.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
