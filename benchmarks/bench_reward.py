"""Dr.SoW scoring work with real-hub's log-prob engine against RewardBench 0.1.4's ``DPOInference``.

The work of one Dr.SoW pass: HH-RLHF harmless pairs, SmolLM2-135M-Instruct loaded twice (strong and weak:
two model objects), each pair's chosen and rejected response scored by both models, CPU, fp32.

- real-hub: each conversation rendered once with the strong model's chat template (prompt = the messages
  with the generation prompt; response = the rest of the rendering with the assistant turn), then
  ``score_sequences`` with each model (its own tokenizer). Runs in a subprocess of this script.
- RewardBench: ``DPOInference`` (policy = strong, reference = weak) driven as its ``scripts/run_dpo.py``
  drives it, by ``_rewardbench_driver.py`` in its own virtual environment (created here on first use:
  ``torch==2.13.0`` then ``rewardbench==0.1.4``, which pins transformers 4.51 and trl 0.19).

The two alternate in one run, ``--runs`` times each; figures are medians. Timed on both sides: rendering,
tokenizing and scoring (not imports or model loading). Peak memory: VmHWM of the worker process, reset
after its models are loaded (so it includes the two resident models and all scoring work). Then exactness:
RewardBench once more on the same text as real-hub with its length limits raised, the sign of
``logp(chosen) - logp(rejected)`` compared per model, and the effect of each convention that still differs
measured by reproducing it in real-hub's engine (forced BOS, appended EOS) or between RewardBench's two
runs (the assistant header scored as response). Last, real-hub's achieved FLOP/s
(2 x parameters x tokens processed, both models) against a measured fp32 matmul rate.

    python benchmarks/bench_reward.py [--pairs 100] [--runs 3] [--json out.json] \
        [--peer-venv benchmarks/.venv-rewardbench]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"
DRIVER = Path(__file__).resolve().parent / "_rewardbench_driver.py"
PEER_PINS = (["torch==2.13.0"], ["rewardbench==0.1.4", "gguf"])
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


# ------------------------------------------------------------------------------------------------- helpers


def _vm(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return -1


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _model_files() -> tuple[str, str]:
    from real_hub.models import resolve_model

    resolved = resolve_model(MODEL)
    return resolved.path, resolved.gguf_file


def render(tokenizer, messages: list[dict], response: str) -> tuple[str, str]:
    """(prompt, response): the messages with the generation prompt; the rest of the full rendering."""
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": response}], tokenize=False
    )
    if not full.startswith(prompt):
        raise ValueError("the chat template does not render the prompt as a prefix of the conversation")
    return prompt, full[len(prompt) :]


# ------------------------------------------------------------------------------------- real-hub's worker


def _load_two():
    """Strong through real-hub's loader, weak straight from transformers: two separate model objects."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from real_hub.models import load_causal_lm

    strong, strong_tok = load_causal_lm(MODEL, device="cpu", dtype="float32")
    folder, gguf_file = _model_files()
    weak_tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    weak = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32).eval()
    return strong, strong_tok, weak, weak_tok


def _tokens_processed(pairs) -> dict[str, int]:
    """Tokens one model runs: each distinct context once (shared by its responses), plus every response."""
    contexts = {p.context for p in pairs}
    response = sum(len(p.response) for p in pairs)
    return {"real": sum(len(c) for c in contexts) + response, "response": response}


def _processor():
    """``DensityRatioReward`` over two copies of SmolLM2, or ``None`` when real_hub has none."""
    try:
        from real_hub.drsow.reward import DensityRatioReward
    except ImportError:
        return None
    folder, gguf_file = _model_files()
    # The weak model is the same GGUF file reached through a symlink: another path, so real-hub's
    # per-process model cache loads a second, separate copy (as two different models would be).
    link = Path(tempfile.mkdtemp(prefix="bench_reward_weak_")) / gguf_file
    link.symlink_to(Path(folder) / gguf_file)
    return DensityRatioReward(MODEL, str(link), domain_routing=False, device="cpu", model_dtype="float32")


def worker_time(rows: list[dict], batch_size: int, engine: str) -> dict:
    """Time one Dr.SoW pass with the engine; per-model summed log-probs and token counts."""
    import torch

    from real_hub.logprobs import encode_pairs, score_sequences

    proc = _processor() if engine in ("auto", "processor") else None
    if proc is None and engine == "processor":
        raise RuntimeError("real_hub.drsow.reward.DensityRatioReward is not available")
    n = len(rows)
    if proc is not None:
        import datasets

        datasets.disable_caching()
        datasets.disable_progress_bars()
        proc.batch_size = batch_size
        strong, strong_tok, weak, _ = proc.models()
        data = datasets.Dataset.from_list(
            [{"prompt": r["messages"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
        )
    else:
        strong, strong_tok, weak, weak_tok = _load_two()
    peak_loaded = _vm("VmHWM")
    reset_ok = _reset_peak()
    start = time.perf_counter()
    if proc is not None:
        out = data.map(proc, batched=True, batch_size=max(1, n), load_from_cache_file=False)
        logp = {
            name: {side: list(out[f"{side}_logp_{name}"]) for side in ("chosen", "rejected")}
            for name in ("strong", "weak")
        }
        n_tokens = list(out["chosen_tokens"]) + list(out["rejected_tokens"])
    else:
        prompts, responses = [], []
        for side in ("chosen", "rejected"):
            for r in rows:
                p, resp = render(strong_tok, r["messages"], r[side])
                prompts.append(p)
                responses.append(resp)
        scores = {
            name: score_sequences(model, tok, prompts, responses, batch_size=batch_size, show_progress=False)
            for name, model, tok in (("strong", strong, strong_tok), ("weak", weak, weak_tok))
        }
        logp = {
            name: {"chosen": s.logp[:n].tolist(), "rejected": s.logp[n:].tolist()}
            for name, s in scores.items()
        }
        n_tokens = scores["strong"].n_tokens.tolist()
    seconds = time.perf_counter() - start
    peak = _vm("VmHWM")
    prompts, responses = [], []
    for side in ("chosen", "rejected"):
        for r in rows:
            p, resp = render(strong_tok, r["messages"], r[side])
            prompts.append(p)
            responses.append(resp)
    tokens = _tokens_processed(encode_pairs(strong_tok, prompts, responses))
    return {
        "engine": "DensityRatioReward via Dataset.map" if proc is not None else "score_sequences",
        "seconds": seconds,
        "peak_rss_bytes": peak,
        "peak_reset": reset_ok,
        "peak_rss_bytes_after_load": peak_loaded,
        "tokens_per_model": tokens,
        "logp": logp,
        "n_tokens": n_tokens,
        "parameters": sum(p.numel() for p in strong.parameters()),
        "torch_threads": torch.get_num_threads(),
        "same_object": strong is weak,
    }


def worker_conventions(rows: list[dict], batch_size: int) -> dict:
    """Each convention RewardBench keeps in its exact mode, reproduced in the engine (strong model)."""
    from real_hub.logprobs import EncodedPair, encode_pairs, score_encoded

    strong, tok, _, _ = _load_two()
    prompts, responses = [], []
    for side in ("chosen", "rejected"):
        for r in rows:
            p, resp = render(tok, r["messages"], r[side])
            prompts.append(p)
            responses.append(resp)
    plain = encode_pairs(tok, prompts, responses)
    bos, eos = tok.bos_token_id, tok.eos_token_id
    # Both conventions at once; the appended EOS's own log-prob is the last token's, so the BOS effect is
    # the rest of the sum minus the plain score (taken from a timing run: identical pairs and model).
    both = [EncodedPair((bos, *p.context), (*p.response, eos)) for p in plain]
    scored = score_encoded(strong, both, batch_size=batch_size, return_token_logps=True, show_progress=False)
    out = {
        "bos_eos": scored.logp.tolist(),
        "eos_token": [float(t[-1]) for t in scored.token_logps],
    }
    return {
        "logp": out,
        "n_tokens": [len(p.response) for p in plain],
        "context_starts_with_bos": sum(p.context[0] == bos for p in plain),
        "bos_token": tok.bos_token,
        "eos_token": tok.eos_token,
    }


# ---------------------------------------------------------------------------------------------- the runner


def ensure_peer_venv(venv: Path) -> Path:
    """The peer's Python, creating its virtual environment on first use."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import rewardbench, trl, transformers"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"creating {venv} (torch==2.13.0, then rewardbench==0.1.4) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    for pins in PEER_PINS:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True)
    return python


def _run(cmd: list[str], out: Path, timeout: float) -> dict:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "REAL_HUB_DISABLE_PROGRESS_BARS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text())


def matmul_flops(n: int = 2048, reps: int = 10) -> float:
    """Measured fp32 matmul rate of this process's torch threads (FLOP/s, median of ``reps`` timings)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        torch.matmul(a, b)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times)


def _sign_agreement(a: dict, b: dict) -> float:
    import numpy as np

    sa = np.sign(np.subtract(a["chosen"], a["rejected"]))
    sb = np.sign(np.subtract(b["chosen"], b["rejected"]))
    return float((sa == sb).mean())


def load_rows(path: str, n: int) -> list[dict]:
    import datasets

    from real_hub import to_pairs

    datasets.disable_progress_bars()
    pairs, _ = to_pairs(datasets.load_dataset("json", data_files=path, split="train"))
    pairs = pairs.select(range(min(n, len(pairs))))
    return [{"messages": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in pairs]


def main() -> None:  # noqa: PLR0915 (one linear report)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", default=str(HH))
    parser.add_argument("--json", default=None)
    parser.add_argument("--peer-venv", default=str(ROOT / "benchmarks" / ".venv-rewardbench"))
    parser.add_argument("--batch-size", type=int, default=16, help="real-hub's batch size (its default)")
    parser.add_argument("--peer-batch-size", type=int, default=6, help="RewardBench's (run_dpo.py's default)")
    parser.add_argument(
        "--engine",
        choices=["auto", "processor", "direct"],
        default="auto",
        help="real-hub side: DensityRatioReward via Dataset.map when available (auto), or score_sequences",
    )
    parser.add_argument("--worker", choices=["time", "conventions"], help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        rows = json.loads(Path(args.input).read_text())
        if args.worker == "time":
            report = worker_time(rows, args.batch_size, args.engine)
        else:
            report = worker_conventions(rows, args.batch_size)
        Path(args.out).write_text(json.dumps(report))
        return

    import numpy as np
    from transformers import AutoTokenizer

    began = time.perf_counter()
    peer_python = ensure_peer_venv(Path(args.peer_venv))
    rows = load_rows(args.data, args.pairs)
    folder, gguf_file = _model_files()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    for r in rows:  # the exact-mode text for RewardBench: what real-hub scores
        r["prompt_text"], chosen = render(tok, r["messages"], r["chosen"])
        _, rejected = render(tok, r["messages"], r["rejected"])
        r["chosen_text"], r["rejected_text"] = r["prompt_text"] + chosen, r["prompt_text"] + rejected

    tmp = Path(tempfile.mkdtemp(prefix="bench_reward_"))
    data = tmp / "pairs.json"
    data.write_text(json.dumps(rows))

    def ours(worker: str = "time") -> dict:
        out = tmp / f"ours_{worker}.json"
        cmd = [sys.executable, __file__, "--worker", worker, "--input", str(data), "--out", str(out)]
        cmd += ["--batch-size", str(args.batch_size), "--engine", args.engine]
        return _run(cmd, out, timeout=1800)

    def peer(mode: str = "default") -> dict:
        out = tmp / f"peer_{mode}.json"
        cmd = [str(peer_python), str(DRIVER), "--pairs", str(data), "--model-dir", folder]
        cmd += ["--gguf-file", gguf_file, "--mode", mode, "--batch-size", str(args.peer_batch_size)]
        return _run([*cmd, "--out", str(out)], out, timeout=1800)

    runs: dict[str, list[dict]] = {"real-hub": [], "rewardbench": []}
    for i in range(args.runs):
        for name, fn in (("real-hub", ours), ("rewardbench", peer)):
            r = fn()
            runs[name].append(r)
            print(
                f"run {i + 1}/{args.runs} {name:11s} {r['seconds']:8.2f} s  peak "
                f"{r['peak_rss_bytes'] / 2**30:.2f} GiB",
                flush=True,
            )
    exact = peer("exact")
    print(f"rewardbench exact mode {exact['seconds']:.2f} s", flush=True)
    conv = ours("conventions")
    flops_rate = matmul_flops()

    summary: dict[str, dict] = {}
    for name, rs in runs.items():
        resp = 2 * rs[0]["tokens_per_model"]["response"]  # both models
        real = 2 * rs[0]["tokens_per_model"]["real"]
        med_s = statistics.median(r["seconds"] for r in rs)
        summary[name] = {
            "seconds": [r["seconds"] for r in rs],
            "median_seconds": med_s,
            "response_tokens_both_models": resp,
            "tokens_processed_both_models": real,
            "response_tokens_per_s": statistics.median(resp / r["seconds"] for r in rs),
            "tokens_processed_per_s": statistics.median(real / r["seconds"] for r in rs),
            "pairs_per_s": statistics.median(len(rows) / r["seconds"] for r in rs),
            "peak_rss_bytes": statistics.median(r["peak_rss_bytes"] for r in rs),
            "peak_rss_bytes_after_load": statistics.median(r["peak_rss_bytes_after_load"] for r in rs),
        }
    summary["rewardbench"]["padded_tokens_both_models"] = (
        2 * runs["rewardbench"][0]["tokens_per_model"]["padded"]
    )
    ours_s, peer_s = summary["real-hub"], summary["rewardbench"]
    params = runs["real-hub"][0]["parameters"]
    achieved = 2 * params * ours_s["tokens_processed_both_models"] / ours_s["median_seconds"]
    peer_achieved = 2 * params * peer_s["tokens_processed_both_models"] / peer_s["median_seconds"]

    o_logp = runs["real-hub"][0]["logp"]
    d_logp, e_logp = runs["rewardbench"][0]["logp"], exact["logp"]
    models = (("strong", "policy"), ("weak", "reference"))
    n = len(rows)
    c = {k: np.array(v) for k, v in conv["logp"].items()}
    c["plain"] = np.array(o_logp["strong"]["chosen"] + o_logp["strong"]["rejected"])
    c["bos"] = c["bos_eos"] - c["eos_token"]
    e_pol = np.array(e_logp["policy"]["chosen"] + e_logp["policy"]["rejected"])
    d_pol = np.array(d_logp["policy"]["chosen"] + d_logp["policy"]["rejected"])
    peer_resp_exact = np.array([t for pair in exact["response_tokens"] for t in pair]).reshape(n, 2).T.ravel()
    peer_resp_default = np.array([t for pair in runs["rewardbench"][0]["response_tokens"] for t in pair])
    peer_resp_default = peer_resp_default.reshape(n, 2).T.ravel()
    exactness = {
        "sign_agreement_exact_mode": {o: _sign_agreement(o_logp[o], e_logp[p]) for o, p in models},
        "sign_agreement_default_mode": {o: _sign_agreement(o_logp[o], d_logp[p]) for o, p in models},
        "sign_agreement_ours_vs_ours_with_bos_eos": _sign_agreement(
            {"chosen": c["plain"][:n], "rejected": c["plain"][n:]},
            {"chosen": c["bos_eos"][:n], "rejected": c["bos_eos"][n:]},
        ),
        "mean_abs_effect_forced_bos": float(np.abs(c["bos"] - c["plain"]).mean()),
        "mean_abs_effect_appended_eos": float(np.abs(c["eos_token"]).mean()),
        "mean_abs_effect_bos_and_eos": float(np.abs(c["bos_eos"] - c["plain"]).mean()),
        "max_abs_diff_ours_with_bos_eos_vs_rewardbench_exact": float(np.abs(c["bos_eos"] - e_pol).max()),
        "mean_abs_diff_ours_with_bos_eos_vs_rewardbench_exact": float(np.abs(c["bos_eos"] - e_pol).mean()),
        "response_token_count_mismatches_exact_mode": int(
            (peer_resp_exact != np.array(conv["n_tokens"]) + 1).sum()
        ),
        "mean_abs_effect_assistant_header_scored": float(np.abs(d_pol - e_pol).mean()),
        "header_tokens_scored_per_response": sorted(set((peer_resp_default - peer_resp_exact).tolist())),
        "prompts_over_128_tokens": runs["rewardbench"][0]["prompts_over_128"],
        "pairs_cut_by_default_limits": runs["rewardbench"][0]["pairs_cut_by_default_limits"],
        "max_abs_diff_strong_vs_weak_ours": float(
            np.abs(np.subtract(o_logp["strong"]["chosen"], o_logp["weak"]["chosen"])).max()
        ),
    }
    result = {
        "pairs": n,
        "runs": args.runs,
        "summary": summary,
        "ratios": {
            "response_tokens_per_s": ours_s["response_tokens_per_s"] / peer_s["response_tokens_per_s"],
            "pairs_per_s": ours_s["pairs_per_s"] / peer_s["pairs_per_s"],
            "peak_rss": ours_s["peak_rss_bytes"] / peer_s["peak_rss_bytes"],
        },
        "exactness": exactness,
        "flops": {
            "parameters": params,
            "real_hub_achieved_flop_per_s": achieved,
            "rewardbench_achieved_flop_per_s": peer_achieved,
            "matmul_2048_fp32_flop_per_s": flops_rate,
            "real_hub_fraction_of_matmul": achieved / flops_rate,
        },
        "peer": {
            k: exact[k] for k in ("versions", "eos_fixed", "bos_token_id", "eos_token_id", "torch_threads")
        },
        "conventions_tokens": {"bos": conv["bos_token"], "eos": conv["eos_token"]},
        "context_starts_with_bos": conv["context_starts_with_bos"],
        "engine": runs["real-hub"][0]["engine"],
        "same_model_object": runs["real-hub"][0]["same_object"],
        "torch_threads": runs["real-hub"][0]["torch_threads"],
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "wall_seconds": time.perf_counter() - began,
        "runs_raw": {
            k: [{kk: vv for kk, vv in r.items() if kk not in ("logp",)} for r in v] for k, v in runs.items()
        },
    }
    r = result["ratios"]
    print(f"pairs {n}, {args.runs} runs each, alternating; medians; real-hub side: {result['engine']}")
    for name, s in summary.items():
        print(
            f"{name:11s} {s['median_seconds']:8.2f} s  {s['response_tokens_per_s']:8.1f} resp tok/s  "
            f"{s['tokens_processed_both_models']:7d} tok processed  "
            f"peak {s['peak_rss_bytes'] / 2**30:.2f} GiB"
        )
    print(
        f"speed-up (response tok/s) {r['response_tokens_per_s']:.1f}x (target >= 3x); "
        f"peak ratio {r['peak_rss']:.2f} (target <= 0.5)"
    )
    print(f"sign agreement (exact mode): {exactness['sign_agreement_exact_mode']} (target >= 0.99)")
    print(json.dumps(exactness, indent=1))
    print(
        f"achieved {achieved / 1e9:.1f} GFLOP/s vs matmul {flops_rate / 1e9:.1f} GFLOP/s "
        f"({achieved / flops_rate:.0%})"
    )
    print(f"wall {result['wall_seconds']:.0f} s")
    if args.json:
        from real_hub.atomic import write_json_atomic

        write_json_atomic(args.json, result, indent=2)


if __name__ == "__main__":
    main()
