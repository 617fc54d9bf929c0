"""One GPU, from a bare machine: the log-prob engine against TRL's reference pass, achieved FLOP/s, peak
memory, and EmbedResponses through Dataset.map against one encode call, at three model shapes.

A GPU machine lent to a task starts bare, reaches no network, and takes 64 MiB of files per call; its image
has torch, transformers and sentence-transformers but neither ``datasets`` nor ``trl``. So the run is in two
steps:

    # here: configs and tokenizers (no weights), the HH pairs, and the wheels the image lacks (< 60 MiB)
    python benchmarks/bench_gpu.py --prepare benchmarks/out/gpu
    # there (the device tool carries benchmarks/out/gpu): random bf16 models of the real shapes
    python3 benchmarks/bench_gpu.py --from benchmarks/out/gpu --json $OUT/bench_gpu.json

    python benchmarks/bench_gpu.py --dry-run   # both steps on the CPU with tiny shapes (the test suite)

Speed does not depend on the weights' values, so randomly initialised models of SmolLM2-135M-Instruct's,
Llama-3.2-1B's and Llama-3.1-8B's shapes measure the throughput of the real ones; all use SmolLM2's
tokenizer and chat template (token ids stay below every shape's vocabulary). Measured in one run, per shape:

- ``score_sequences`` over the chosen and rejected responses of the pairs: response tokens per second, tokens
  forwarded per second, achieved FLOP/s = 2 x parameters (a tied LM head counted again) x tokens forwarded,
  against the bf16 rate of an 8192^3 matmul on the same GPU, and peak GPU memory;
- TRL's own reference pass, ``DPOTrainer(precompute_ref_log_probs=True)`` on the same pairs and model, timed
  as construction with the precompute minus construction without it;
- ``ds.map(EmbedResponses(...), batched=True)`` against one ``SentenceTransformer.encode`` call on the same
  response texts (a random all-MiniLM-L6-v2).

The pairs per shape are budgeted so that the whole run stays under 8 minutes on an H100/H200-class GPU.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from real_hub.atomic import write_json_atomic  # noqa: E402

HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"
MAX_FOLDER_BYTES = 60 * 2**20
MAX_FILE_BYTES = 20 * 10**6
#: The shapes measured, with the share of ``--pairs`` each gets (the 8B shape is slower per pair).
SHAPES = {
    "SmolLM2-135M-Instruct shape": ("smollm2", 1.0),
    "Llama-3.2-1B shape": ("llama-1b", 0.5),
    "Llama-3.1-8B shape": ("llama-8b", 0.125),
}
LLAMA_1B = {
    "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
    "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
    "tie_word_embeddings": True, "rope_theta": 500000.0, "head_dim": 64,
}  # fmt: skip
LLAMA_8B = {
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
    "tie_word_embeddings": False, "rope_theta": 500000.0, "head_dim": 128,
}  # fmt: skip
TINY_LLAMA = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "head_dim": 16}  # fmt: skip
TINY_BERT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
#: What the GPU image lacks (or has at versions transformers 5 refuses), with what they need; the
#: large or compiled libraries it has (torch, numpy, pyarrow, pandas, ...) are left out.
WHEEL_ROOTS = ("datasets", "trl", "transformers", "sentence-transformers", "accelerate", "huggingface-hub",
               "tokenizers", "safetensors")  # fmt: skip
IMAGE_HAS = {
    "torch", "numpy", "pyarrow", "pandas", "scipy", "scikit-learn", "triton", "sympy", "networkx", "pillow",
    "setuptools", "mpmath", "jinja2", "markupsafe", "psutil", "pyyaml", "regex", "requests", "urllib3",
    "certifi", "idna", "charset-normalizer", "aiohttp", "yarl", "multidict", "frozenlist", "aiosignal",
    "propcache", "attrs", "aiohappyeyeballs", "fsspec", "filelock", "packaging", "tqdm", "typing-extensions",
    "xxhash", "python-dateutil", "pytz", "tzdata", "six", "joblib", "threadpoolctl",
}  # fmt: skip
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")  # fmt: skip


# ------------------------------------------------------------------------------------------------- prepare


def prepare(folder: Path, pairs: int, *, wheels: bool) -> dict:
    """Write what a GPU run needs into ``folder``; refuse a folder over 60 MiB or a file over 20 MB."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "models").mkdir(parents=True)
    save_smollm2(folder / "models" / "smollm2")
    save_minilm(folder / "models" / "minilm")
    for name, shape in (("llama-1b", LLAMA_1B), ("llama-8b", LLAMA_8B)):
        write_json_atomic(folder / "models" / f"{name}.json", {"model_type": "llama", **shape}, indent=2)
    (folder / "data").mkdir()
    rows = hh_pairs(pairs)
    with open(folder / "data" / "hh_pairs.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    listed = download_wheels(folder / "wheels") if wheels else []
    manifest = {"pairs": len(rows), "wheels": listed, "python": "3.12", "platform": "manylinux x86-64"}
    write_json_atomic(folder / "manifest.json", manifest, indent=2)
    files = [p for p in folder.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    too_big = [f"{p.relative_to(folder)} ({p.stat().st_size / 1e6:.1f} MB)" for p in files
               if p.stat().st_size > MAX_FILE_BYTES]  # fmt: skip
    weights = [str(p.relative_to(folder)) for p in files if p.suffix in {".safetensors", ".bin", ".gguf"}]
    if total > MAX_FOLDER_BYTES or too_big or weights:
        raise SystemExit(
            f"{folder}: {total / 2**20:.1f} MiB; files over 20 MB: {too_big}; weights: {weights}"
        )
    manifest["bytes"] = total
    write_json_atomic(folder / "manifest.json", manifest, indent=2)
    print(f"prepared {folder}: {total / 2**20:.1f} MiB in {len(files)} files, {len(listed)} wheels")
    return manifest


def save_smollm2(target: Path) -> None:
    """SmolLM2-135M-Instruct's config and tokenizer, read off the packaged GGUF's metadata (no weights)."""
    from transformers import AutoConfig, AutoTokenizer

    from real_hub.models import SMOLLM2_135M_INSTRUCT, resolve_model

    resolved = resolve_model(SMOLLM2_135M_INSTRUCT)
    kwargs = {"gguf_file": resolved.gguf_file} if resolved.gguf_file else {}
    config = AutoConfig.from_pretrained(resolved.path, **kwargs)
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config
    config.save_pretrained(target)
    AutoTokenizer.from_pretrained(resolved.path, **kwargs).save_pretrained(target)


def save_minilm(target: Path) -> None:
    """all-MiniLM-L6-v2's sentence-transformers folder without its weights."""
    from real_hub.models import DEFAULT_EMBEDDER, resolve_model

    source = Path(resolve_model(DEFAULT_EMBEDDER).path)
    skip = {".safetensors", ".bin", ".onnx", ".h5", ".msgpack", ".ot"}
    for path in source.rglob("*"):
        if (
            path.is_file()
            and path.suffix not in skip
            and path.name != "README.md"
            and "onnx" not in path.parts
        ):
            out = target / path.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out)


def hh_pairs(n: int) -> list[dict]:
    """The first ``n`` HH-RLHF harmless-base test pairs (message prompts); made-up ones without the file."""
    from datasets import Dataset

    from real_hub import to_pairs

    if not HH.exists():
        return [{"prompt": [{"role": "user", "content": f"Question {i}?"}], "chosen": "Yes, gladly.",
                 "rejected": "No."} for i in range(n)]  # fmt: skip
    with gzip.open(HH, "rt", encoding="utf-8") as f:
        raw = [json.loads(line) for _, line in zip(range(n + 40), f)]
    pairs, _ = to_pairs(Dataset.from_list(raw))
    return pairs.select(range(min(n, len(pairs)))).select_columns(["prompt", "chosen", "rejected"]).to_list()


def wheel_names() -> dict[str, str]:
    """The distributions to carry, at this machine's versions: the roots and their needs, less the image's."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    out: dict[str, str] = {}
    todo = list(WHEEL_ROOTS)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in out or name in IMAGE_HAS or name.startswith(("nvidia-", "cuda-")):
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        out[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": "", "python_version": "3.12"}):
                todo.append(req.name)
    return dict(sorted(out.items()))


def download_wheels(folder: Path) -> list[str]:
    """The wheels of :func:`wheel_names` for CPython 3.12 on manylinux x86-64 (``pip download``)."""
    folder.mkdir(parents=True)
    pins = [f"{name}=={version}" for name, version in wheel_names().items()]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(folder), *pins],
        check=True,
    )  # fmt: skip
    return sorted(p.name for p in folder.glob("*.whl"))


# ----------------------------------------------------------------------------------------------- run from


def install_wheels(folder: Path) -> str | None:
    """Install the folder's wheels into a temporary target put first on ``sys.path`` (before any import)."""
    wheels = sorted((folder / "wheels").glob("*.whl")) if (folder / "wheels").exists() else []
    if not wheels:
        return None
    target = tempfile.mkdtemp(prefix="bench-gpu-site-")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
         "--target", target, *map(str, wheels)],
        check=True,
    )  # fmt: skip
    sys.path.insert(0, target)
    return target


def build_models(folder: Path, device: str, tiny: bool) -> tuple[dict, object]:
    """Random bf16 models of the prepared shapes (tiny ones on the CPU), and SmolLM2's tokenizer."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(folder / "models" / "smollm2")
    configs = {"smollm2": AutoConfig.from_pretrained(folder / "models" / "smollm2").to_dict()}
    for name in ("llama-1b", "llama-8b"):
        configs[name] = json.loads((folder / "models" / f"{name}.json").read_text())
    models = {}
    for label, (name, _) in SHAPES.items():
        values = {k: v for k, v in configs[name].items() if k in LlamaConfig().to_dict() or k == "head_dim"}
        if tiny:
            values.update(TINY_LLAMA, vocab_size=len(tokenizer))
        config = LlamaConfig(**values)
        torch.manual_seed(0)
        with torch.device(device):
            models[label] = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    return models, tokenizer


def random_minilm(folder: Path, tiny: bool) -> str:
    """A sentence-transformers folder of all-MiniLM-L6-v2's shape with random weights; its path."""
    import torch
    from transformers import BertConfig, BertModel

    target = Path(tempfile.mkdtemp(prefix="bench-gpu-minilm-"))
    shutil.copytree(folder / "models" / "minilm", target, dirs_exist_ok=True)
    config = BertConfig.from_pretrained(target)
    if tiny:
        for key, value in TINY_BERT.items():
            setattr(config, key, value)
        pooling = target / "1_Pooling" / "config.json"
        settings = json.loads(pooling.read_text())
        settings["word_embedding_dimension"] = config.hidden_size
        pooling.write_text(json.dumps(settings))
    torch.manual_seed(0)
    BertModel(config).save_pretrained(target)
    return str(target)


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
                output_dir=out, precompute_ref_log_probs=precompute, precompute_ref_batch_size=batch_size,
                per_device_train_batch_size=batch_size, report_to=[], bf16=bf16, use_cpu=not bf16,
                max_length=None,
            )  # fmt: skip
            # without the precompute TRL keeps a reference model: give it one, so nothing is loaded by name
            ref = None if precompute else copy.deepcopy(model)
            start = time.perf_counter()
            DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=data, processing_class=tokenizer)
            timings[precompute] = time.perf_counter() - start
            del ref
    return {"seconds_with_precompute": timings[True], "precompute_seconds": timings[True] - timings[False]}


def bench_embed(model_dir: str, texts: list[str], device: str) -> dict:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

    from real_hub import EmbedResponses

    model = SentenceTransformer(model_dir, device=device)
    model.encode(texts[:8])
    start = time.perf_counter()
    model.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False)
    raw = time.perf_counter() - start
    ds = Dataset.from_dict({"responses": [[t] for t in texts]})
    embed = EmbedResponses(model_dir, backend="sentence-transformers", device=device)
    embed.encoder()
    start = time.perf_counter()
    ds.map(embed, batched=True, batch_size=1000, load_from_cache_file=False)
    mapped = time.perf_counter() - start
    return {"texts": len(texts), "encode_seconds": raw, "map_seconds": mapped, "ratio": mapped / raw}


def run_from(folder: Path, *, pairs: int | None, batch_size: int, tiny: bool) -> dict:
    """Measure every shape on the prepared ``folder`` (wheels installed first, weights random)."""
    site = install_wheels(folder)
    started = time.perf_counter()
    import datasets
    import torch
    import transformers
    import trl

    datasets.disable_progress_bars()
    datasets.disable_caching()
    if not tiny and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: run with --dry-run to check the script on the CPU")
    device = "cpu" if tiny else "cuda"
    rows = [json.loads(line) for line in (folder / "data" / "hh_pairs.jsonl").read_text().splitlines()]
    total = len(rows) if pairs is None else min(pairs, len(rows))
    report: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
            "datasets": datasets.__version__,
        },
        "wheels_installed_to": site,
        "dry_run": tiny,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "matmul_flops_per_s": matmul_rate(device, torch.bfloat16, 256 if tiny else 8192, 3 if tiny else 20),
        "engine": [],
        "trl": [],
    }
    models, tokenizer = build_models(folder, device, tiny)
    for label, model in models.items():
        share = SHAPES[label][1]
        subset = rows[: 4 if tiny else max(8, int(total * share))]
        row = bench_engine(label, model, tokenizer, subset, device, batch_size)
        row["share_of_matmul_rate"] = row["flops_per_s"] / report["matmul_flops_per_s"]
        report["engine"].append(row)
        trl_row = bench_trl(model, tokenizer, subset, batch_size, bf16=not tiny)
        trl_row["model"] = label
        trl_row["engine_speedup"] = trl_row["precompute_seconds"] / row["seconds"]
        report["trl"].append(trl_row)
        print(json.dumps(row), json.dumps(trl_row), flush=True)
        del model
        models[label] = None
        if device == "cuda":
            torch.cuda.empty_cache()
    texts = [p[side] for p in rows[: 4 if tiny else total] for side in ("chosen", "rejected")]
    report["embed"] = bench_embed(random_minilm(folder, tiny), texts, device)
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report["seconds"] = time.perf_counter() - started
    report["machine"] = f"{platform.machine()}, Python {platform.python_version()}"
    return report


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prepare", metavar="DIR", help="Write the folder a GPU run needs, and stop.")
    parser.add_argument("--from", dest="source", metavar="DIR", help="Run on a folder written by --prepare.")
    parser.add_argument("--pairs", type=int, default=None, help="HH pairs (prepare: 640; run: all prepared).")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dry-run", action="store_true", help="Tiny shapes on the CPU; no wheels.")
    parser.add_argument("--json", default=None, help="Write the report here.")
    args = parser.parse_args()
    if args.prepare:
        prepare(Path(args.prepare), args.pairs or (8 if args.dry_run else 640), wheels=not args.dry_run)
        return
    folder = Path(args.source) if args.source else None
    if folder is None:
        if not args.dry_run:
            parser.error("give --prepare DIR, --from DIR, or --dry-run")
        folder = Path(tempfile.mkdtemp(prefix="bench-gpu-")) / "prepared"
        prepare(folder, 8, wheels=False)
    report = run_from(folder, pairs=args.pairs, batch_size=args.batch_size, tiny=args.dry_run)
    print(json.dumps(report, indent=2))
    if args.json:
        write_json_atomic(args.json, report, indent=2)


if __name__ == "__main__":
    main()
