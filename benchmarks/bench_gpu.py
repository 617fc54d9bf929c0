"""One GPU: the log-prob engine (bf16 weights, fp32 accumulation) against TRL's reference pass, and
EmbedResponses through Dataset.map against raw SentenceTransformer.encode.

Usage (on a machine with one CUDA GPU):
    python benchmarks/bench_gpu.py --pairs 512 --json benchmarks/out/bench_gpu.json
    python benchmarks/bench_gpu.py --dry-run          # a tiny model on the CPU, a few pairs (the test suite)

Models: SmolLM2-135M-Instruct (the packaged offline GGUF copy, dequantised) and a randomly initialised
Llama of about 1B parameters in Llama-3.2-1B's shape (weights do not change speed), both in bf16. Pairs:
the first ``--pairs`` HH-RLHF harmless-base test pairs (``../shared/data``), rendered with the chat template.

Measured, in the same run:
- ``score_sequences`` over the chosen and rejected responses: response tokens scored per second, tokens
  forwarded per second, achieved FLOP/s = 2 x parameters (LM head included) x tokens forwarded, against
  the bf16 matmul rate measured on the same GPU (8192^3 matmuls), and peak GPU memory;
- TRL's own reference log-probs: ``DPOTrainer(precompute_ref_log_probs=True)`` on the same pairs and
  model, timed as construction with the precompute minus construction without it;
- ``ds.map(EmbedResponses(), batched=True)`` against one ``SentenceTransformer.encode`` call on the same
  response texts (all-MiniLM-L6-v2, packaged copy).
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"
LLAMA_1B = {  # Llama-3.2-1B's shape
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
    "rope_theta": 500000.0,
}


def hh_pairs(n: int) -> list[dict]:
    from datasets import Dataset

    from real_hub import to_pairs

    if HH.exists():
        with gzip.open(HH, "rt", encoding="utf-8") as f:
            raw = [json.loads(line) for _, line in zip(range(n + 20), f)]
        pairs, _ = to_pairs(Dataset.from_list(raw))
        return pairs.select(range(min(n, len(pairs)))).to_list()
    return [
        {
            "prompt": [{"role": "user", "content": f"Question {i}?"}],
            "chosen": "Yes, gladly.",
            "rejected": "No.",
        }
        for i in range(n)
    ]


def matmul_rate(device: str, dtype, size: int, repeats: int) -> float:
    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    (a @ b).sum().item()
    start = time.perf_counter()
    for _ in range(repeats):
        c = a @ b
    c.sum().item()
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def rendered(tokenizer, pairs: list[dict]) -> tuple[list[str], list[str]]:
    from real_hub.rendering import render

    prompts, responses = [], []
    for pair in pairs:
        for side in ("chosen", "rejected"):
            text, _ = render(tokenizer, pair["prompt"], pair[side])
            prompts.append(text.prompt)
            responses.append(text.response)
    return prompts, responses


def bench_engine(name: str, model, tokenizer, pairs: list[dict], device: str, batch_size: int) -> dict:
    import torch

    from real_hub.logprobs import score_sequences

    prompts, responses = rendered(tokenizer, pairs)
    forwarded = sum(len(tokenizer(p + r)["input_ids"]) for p, r in zip(prompts, responses))
    params = sum(p.numel() for p in model.parameters())
    if model.get_output_embeddings() is not None and getattr(model.config, "tie_word_embeddings", False):
        params += model.get_output_embeddings().weight.numel()  # the tied LM head is a matmul of its own
    score_sequences(model, tokenizer, prompts[:4], responses[:4], batch_size=batch_size)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    scores = score_sequences(model, tokenizer, prompts, responses, batch_size=batch_size)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "model": name,
        "parameters": params,
        "sequences": len(prompts),
        "response_tokens": int(scores.n_tokens.sum()),
        "tokens_forwarded": forwarded,
        "seconds": seconds,
        "response_tokens_per_s": float(scores.n_tokens.sum()) / seconds,
        "tokens_forwarded_per_s": forwarded / seconds,
        "flops_per_s": 2 * params * forwarded / seconds,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None,
    }


def bench_trl(model, tokenizer, pairs: list[dict], batch_size: int, bf16: bool) -> dict:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from real_hub import to_trl

    data = to_trl(Dataset.from_list(pairs))
    timings = {}
    for precompute in (False, True):
        with tempfile.TemporaryDirectory() as out:
            args = DPOConfig(
                output_dir=out,
                precompute_ref_log_probs=precompute,
                precompute_ref_batch_size=batch_size,
                per_device_train_batch_size=batch_size,
                report_to=[],
                bf16=bf16,
                use_cpu=not bf16,
                max_length=None,
            )
            # without the precompute TRL keeps a reference model: give it one, so nothing is loaded by name
            ref = None if precompute else copy.deepcopy(model)
            start = time.perf_counter()
            DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=data, processing_class=tokenizer)
            timings[precompute] = time.perf_counter() - start
            del ref
    return {"seconds_with_precompute": timings[True], "precompute_seconds": timings[True] - timings[False]}


def bench_embed(texts: list[str], device: str) -> dict:
    from datasets import Dataset

    from real_hub import EmbedResponses
    from real_hub.models import DEFAULT_EMBEDDER, load_sentence_transformer

    model = load_sentence_transformer(DEFAULT_EMBEDDER, device=device)
    model.encode(texts[:8])
    start = time.perf_counter()
    model.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False)
    raw = time.perf_counter() - start
    ds = Dataset.from_dict({"responses": [[t] for t in texts]})
    embed = EmbedResponses(device=device)
    embed.encoder()
    start = time.perf_counter()
    ds.map(embed, batched=True, batch_size=1000, load_from_cache_file=False)
    mapped = time.perf_counter() - start
    return {"texts": len(texts), "encode_seconds": raw, "map_seconds": mapped, "ratio": mapped / raw}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dry-run", action="store_true", help="A tiny model on the CPU and 4 pairs.")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import datasets
    import torch
    import transformers
    import trl

    datasets.disable_progress_bars()
    datasets.disable_caching()
    report: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
            "datasets": datasets.__version__,
        },
        "dry_run": args.dry_run,
    }
    if args.dry_run:
        sys.path.insert(0, str(ROOT / "tests"))
        import tiny_models

        device, dtype, n = "cpu", torch.bfloat16, 4
        tokenizer = tiny_models.llama_tokenizer()
        models = {"tiny-llama": tiny_models.tiny_llama(tokenizer).to(dtype)}
        report["gpu"] = None
        report["matmul_flops_per_s"] = matmul_rate(device, dtype, 256, 3)
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA GPU: run with --dry-run to check the script on the CPU")
        from transformers import LlamaConfig, LlamaForCausalLM

        from real_hub.models import SMOLLM2_135M_INSTRUCT, load_causal_lm

        device, dtype, n = "cuda", torch.bfloat16, args.pairs
        small, tokenizer = load_causal_lm(SMOLLM2_135M_INSTRUCT, device=device, dtype="bfloat16")
        config = LlamaConfig(**LLAMA_1B, torch_dtype=torch.bfloat16)
        with torch.device(device):
            big = LlamaForCausalLM(config).to(dtype).eval()
        models = {"SmolLM2-135M-Instruct": small, "random Llama-3.2-1B shape": big}
        report["gpu"] = torch.cuda.get_device_name(0)
        report["matmul_flops_per_s"] = matmul_rate(device, dtype, 8192, 20)
    pairs = hh_pairs(n)
    report["engine"] = []
    report["trl"] = []
    for name, model in models.items():
        row = bench_engine(name, model, tokenizer, pairs, device, args.batch_size)
        row["share_of_matmul_rate"] = row["flops_per_s"] / report["matmul_flops_per_s"]
        report["engine"].append(row)
        trl_row = bench_trl(model, tokenizer, pairs, args.batch_size, bf16=not args.dry_run)
        trl_row["model"] = name
        trl_row["engine_speedup"] = trl_row["precompute_seconds"] / row["seconds"]
        report["trl"].append(trl_row)
        print(json.dumps(row), json.dumps(trl_row), flush=True)
    texts = [p[side] for p in pairs for side in ("chosen", "rejected")]
    report["embed"] = bench_embed(texts, device)
    report["machine"] = f"{platform.machine()}, Python {platform.python_version()}"
    print(json.dumps(report, indent=2))
    if args.json:
        from real_hub.atomic import write_json_atomic

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.json, report, indent=2)


if __name__ == "__main__":
    main()
