"""New tokens per second: ``ds.map(GenerateResponses(...))`` against plain ``model.generate`` loops.

All variants sample ``--n`` responses to the same prompts (the first user turns of the HH-RLHF
harmless-base test file) from the packaged SmolLM2-135M-Instruct GGUF on the CPU, with the same sampling
settings (temperature, top-p, ``--max-new-tokens``) and the same stop token (the chat template's
``<|im_end|>``), rendered with the same chat template:

- ``map``: ``Dataset.map(GenerateResponses(...), batched=True)``, caching off (it really generates);
- ``generate-loop``: one ``model.generate(ids, num_return_sequences=n, do_sample=True, ...)`` per prompt,
  the plain loop a user would write;
- ``generate-batched``: one ``model.generate`` over all prompts at once (left padding,
  ``num_return_sequences=n``), the fastest plain ``transformers`` call.

New tokens are counted as ``GenerateResponses`` counts them: every generated token up to and including the
stop token (padding after a stop is not counted). Models load before timing. The variants run in turn,
``--rounds`` times, in one process; the figures are the medians.

    python benchmarks/bench_generate.py [--prompts 8] [--n 4] [--max-new-tokens 64] [--rounds 3] [--json out]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import datasets
import torch

from real_hub import GenerateResponses, to_pairs
from real_hub.generate import encode_prompt, end_of_turn_ids
from real_hub.models import SMOLLM2_135M_INSTRUCT, load_causal_lm

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"


def first_user_turns(path: str, count: int) -> list[str]:
    raw = datasets.load_dataset("json", data_files=path, split="train").select(range(count * 3))
    pairs, _ = to_pairs(raw)
    prompts = [next(m["content"] for m in p if m["role"] == "user") for p in pairs["prompt"]]
    return list(dict.fromkeys(prompts))[:count]


def new_tokens(sequences: torch.Tensor, start: int, stop_ids: list[int]) -> int:
    """Tokens after ``start`` up to and including the first stop token of each sequence."""
    total = 0
    for row in sequences[:, start:].tolist():
        for k, token in enumerate(row):
            if token in stop_ids:
                total += k + 1
                break
        else:
            total += len(row)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(HH))
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--batch-size", type=int, default=8, help="GenerateResponses prompts per batch.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    datasets.disable_caching()
    datasets.disable_progress_bars()
    prompts = first_user_turns(args.data, args.prompts)
    model, tokenizer = load_causal_lm(SMOLLM2_135M_INSTRUCT, device="cpu")
    stop_ids = end_of_turn_ids(tokenizer, model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    encoded = [encode_prompt(tokenizer, p, chat_template=True) for p in prompts]
    ds = datasets.Dataset.from_dict({"prompt": prompts})
    processor = GenerateResponses(
        SMOLLM2_135M_INSTRUCT,
        n=args.n,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        batch_size=args.batch_size,
        device="cpu",
    )
    processor.loaded()  # the same cached model, loaded outside the timed region
    sampling = {
        "do_sample": True,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "top_k": None,
        "max_new_tokens": args.max_new_tokens,
        "num_return_sequences": args.n,
        "eos_token_id": stop_ids,
        "pad_token_id": pad,
    }

    def run_map() -> tuple[float, int]:
        t = time.perf_counter()
        out = ds.map(processor, batched=True, batch_size=len(ds))
        return time.perf_counter() - t, sum(sum(r) for r in out["generated_tokens"])

    def run_loop() -> tuple[float, int]:
        t = time.perf_counter()
        tokens = 0
        with torch.inference_mode():
            for ids in encoded:
                x = torch.tensor([ids])
                seqs = model.generate(x, attention_mask=torch.ones_like(x), **sampling)
                tokens += new_tokens(seqs, len(ids), stop_ids)
        return time.perf_counter() - t, tokens

    def run_batched() -> tuple[float, int]:
        width = max(len(i) for i in encoded)
        x = torch.tensor([[pad] * (width - len(i)) + i for i in encoded])
        mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in encoded])
        t = time.perf_counter()
        with torch.inference_mode():
            seqs = model.generate(x, attention_mask=mask, **sampling)
        return time.perf_counter() - t, new_tokens(seqs, width, stop_ids)

    variants = {"map": run_map, "generate-loop": run_loop, "generate-batched": run_batched}
    load_before = os.getloadavg()
    results: dict[str, list[tuple[float, int]]] = {k: [] for k in variants}
    for r in range(args.rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            seconds, tokens = variants[name]()
            results[name].append((seconds, tokens))
            print(f"round {r} {name}: {tokens} new tokens in {seconds:.1f} s = {tokens / seconds:.1f} tok/s")
    load_after = os.getloadavg()

    rates = {k: [t / s for s, t in v] for k, v in results.items()}
    medians = {k: statistics.median(v) for k, v in rates.items()}
    print(f"\nSmolLM2-135M-Instruct (GGUF Q4_1 -> fp32), CPU, {torch.get_num_threads()} torch threads")
    print(
        f"{len(prompts)} prompts x n={args.n}, max_new_tokens={args.max_new_tokens}, "
        f"T={args.temperature}, top_p={args.top_p}; load average before {load_before[0]:.2f}, "
        f"after {load_after[0]:.2f}"
    )
    print("| variant | median new tok/s | runs (tok/s) | new tokens per run | x generate-loop |")
    print("| --- | --- | --- | --- | --- |")
    for k in variants:
        runs = " ".join(f"{v:.1f}" for v in rates[k])
        tokens = " ".join(str(t) for _, t in results[k])
        print(f"| {k} | {medians[k]:.1f} | {runs} | {tokens} | {medians[k] / medians['generate-loop']:.2f} |")
    if args.json:
        from real_hub.atomic import write_json_atomic

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            args.json,
            {
                "args": vars(args),
                "results": {k: [{"seconds": s, "tokens": t} for s, t in v] for k, v in results.items()},
                "median_tokens_per_s": medians,
                "load_before": load_before,
                "load_after": load_after,
                "threads": torch.get_num_threads(),
                "machine": platform.platform(),
            },
            indent=2,
        )


if __name__ == "__main__":
    main()
