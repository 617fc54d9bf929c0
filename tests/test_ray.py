"""The processors run unchanged on Ray Data: ``map_batches`` gives ``Dataset.map``'s columns, row for row.

Ray runs in local mode on 2 CPUs, started once for the module. Every processor is checked in the three
batch formats Ray offers (``pyarrow``, ``numpy``, ``pandas``), as a class (one instance per actor, built
from ``fn_constructor_kwargs``) and as an instance (function form).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from datasets import Dataset

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'real-hub[ray]'")

from real_hub import (  # noqa: E402
    DensityRatioReward,
    EmbedResponses,
    OrientByReward,
    PairsFromRewards,
    PairSimilarity,
    SelectPairs,
)

FORMATS = ["pyarrow", "numpy", "pandas"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_local():
    """Ray in local mode on 2 CPUs, once for the module; workers import this checkout."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        runtime_env={"env_vars": {"PYTHONPATH": path, "TOKENIZERS_PARALLELISM": "false"}},
    )
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    yield ray
    ray.shutdown()


def _rng_unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def candidates_with_embeddings() -> Dataset:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(9):
        n = [4, 3, 1, 5, 2, 4, 3, 4, 2][i]
        responses = [f"response {j} to prompt {i}" for j in range(n)]
        if i == 5:
            responses[2] = responses[0]  # a repeated text counts once
        rows.append(
            {
                "prompt": f"prompt {i}",
                "responses": responses,
                "scores": None if i == 3 else [float((j * 7 + i) % 5) for j in range(n)],
                "rewards": [float(v) for v in rng.standard_normal(n)] if i != 4 else [1.0, 1.0],
                "responses_embedding": _rng_unit(rng, n, 8).tolist(),
                "source_id": f"id-{i}",
            }
        )
    return Dataset.from_list(rows)


def pairs_with_embeddings() -> Dataset:
    rng = np.random.default_rng(1)
    rows = []
    for i in range(10):
        rows.append(
            {
                "prompt": f"prompt {i}",
                "chosen": f"chosen {i}",
                "rejected": f"rejected {i}",
                "chosen_embedding": _rng_unit(rng, 8).tolist(),
                "rejected_embedding": _rng_unit(rng, 8).tolist(),
                "chosen_reward": None if i == 2 else float(rng.standard_normal()),
                "rejected_reward": 0.5 if i in (2, 6) else float(rng.standard_normal()),
                "chosen_score": float(i),
                "rejected_score": float(-i),
            }
        )
    rows[6]["chosen_reward"] = 0.5  # a tie abstains
    return Dataset.from_list(rows)


def text_pairs() -> Dataset:
    return Dataset.from_list(
        [
            {"prompt": "Say hello.", "chosen": "Hello there!", "rejected": "No."},
            {"prompt": "What is the capital of France?", "chosen": "Paris.", "rejected": "Lyon, maybe."},
            {"prompt": "How do I bake bread?", "chosen": "Mix flour and water.", "rejected": "Buy some."},
            {"prompt": "Tell me a joke.", "chosen": "Why did the chicken cross the road?", "rejected": "No."},
            {"prompt": "Count to three.", "chosen": "One, two, three.", "rejected": "Three, two."},
        ]
    )


def text_candidates() -> Dataset:
    return Dataset.from_list(
        [
            {"prompt": "Say hello.", "responses": ["Hello there!", "No.", "Hi!"], "scores": [2.0, 0.0, 1.0]},
            {
                "prompt": "What is the capital of France?",
                "responses": ["Paris.", "Lyon, maybe.", "Paris."],
                "scores": [1.0, 0.0, 1.0],
            },
            {"prompt": "Tell me a joke.", "responses": ["Why did the chicken cross?", "No."], "scores": None},
        ]
    )


def run_ray(data: Dataset, processor_cls, kwargs: dict, batch_format: str, form: str, batch_size: int):
    """``map_batches`` over ``ray.data.from_huggingface(data)``; the rows as Python values."""
    ds = ray.data.from_huggingface(data)
    if form == "class":
        out = ds.map_batches(
            processor_cls,
            fn_constructor_kwargs=kwargs,
            batch_size=batch_size,
            batch_format=batch_format,
            concurrency=1,
            num_cpus=0.5,
        )
    else:
        out = ds.map_batches(processor_cls(**kwargs), batch_size=batch_size, batch_format=batch_format)
    return pa.concat_tables(ray.get(out.to_arrow_refs())).to_pylist()


def run_datasets(data: Dataset, processor, batch_size: int, replace: bool) -> list[dict]:
    removed = data.column_names if replace else None
    return data.map(processor, batched=True, batch_size=batch_size, remove_columns=removed).to_list()


def same(a, b) -> bool:
    """Equal values, a float NaN equal to None (Ray's numpy format turns nulls of numbers into NaN)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    nan = lambda v: v is None or (isinstance(v, float) and v != v)  # noqa: E731
    return (nan(a) and nan(b)) or a == b


def assert_same_rows(got: list[dict], expected: list[dict], batch_format: str) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert sorted(g) == sorted(e)
        assert same(g, e) if batch_format == "numpy" else g == e, (g, e)


CASES = {
    "SelectPairs": (
        candidates_with_embeddings,
        SelectPairs,
        {"strategy": "dissimilar", "pairs_per_prompt": 2, "keep_skipped": True},
        True,
    ),
    "SelectPairs-centroid": (
        candidates_with_embeddings,
        SelectPairs,
        {"strategy": "centroid", "scores_column": "rewards"},
        True,
    ),
    "PairSimilarity": (pairs_with_embeddings, PairSimilarity, {}, False),
    "OrientByReward": (pairs_with_embeddings, OrientByReward, {"keep_skipped": True}, True),
    "PairsFromRewards": (
        candidates_with_embeddings,
        PairsFromRewards,
        {"mode": "best-vs-random", "seed": 3, "keep_skipped": True},
        True,
    ),
}


@pytest.mark.parametrize("batch_format", FORMATS)
@pytest.mark.parametrize("name", list(CASES))
def test_vector_and_label_processors_match_dataset_map(ray_local, name, batch_format):
    make, cls, kwargs, replace = CASES[name]
    data = make()
    expected = run_datasets(data, cls(**kwargs), batch_size=4, replace=replace)
    got = run_ray(data, cls, kwargs, batch_format, "function", batch_size=4)
    assert_same_rows(got, expected, batch_format)


@pytest.mark.parametrize("batch_format", FORMATS)
def test_embed_responses_matches_dataset_map(ray_local, gpt2_lm_dir, batch_format):
    kwargs = {"model": str(gpt2_lm_dir), "backend": "causal-lm", "batch_size": 4}
    for data in (text_pairs(), text_candidates()):
        expected = run_datasets(data, EmbedResponses(**kwargs), batch_size=2, replace=False)
        got = run_ray(data, EmbedResponses, kwargs, batch_format, "function", batch_size=2)
        assert_same_rows(got, expected, batch_format)


@pytest.mark.parametrize("batch_format", FORMATS)
def test_density_ratio_reward_matches_dataset_map(ray_local, llama_lm_dir, gpt2_lm_dir, batch_format):
    kwargs = {"strong": str(llama_lm_dir), "weak": str(gpt2_lm_dir), "domain_routing": False}
    for data in (text_pairs(), text_candidates()):
        expected = run_datasets(data, DensityRatioReward(**kwargs), batch_size=2, replace=False)
        got = run_ray(data, DensityRatioReward, kwargs, batch_format, "function", batch_size=2)
        assert_same_rows(got, expected, batch_format)


def chain(data: Dataset, steps: list[tuple[type, dict, bool, str]]) -> tuple[list[dict], list[dict]]:
    """The same processors through ``Dataset.map`` and through Ray in class form (one actor each).

    Each step is ``(class, constructor kwargs, emits rows, Ray batch format)``; all actors of the chain
    start together (a quarter of a CPU each).
    """
    expected = data
    ds = ray.data.from_huggingface(data)
    for cls, kwargs, replace, batch_format in steps:
        removed = expected.column_names if replace else None
        expected = expected.map(cls(**kwargs), batched=True, batch_size=2, remove_columns=removed)
        ds = ds.map_batches(
            cls,
            fn_constructor_kwargs=kwargs,
            batch_size=2,
            batch_format=batch_format,
            concurrency=1,
            num_cpus=0.25,
        )
    return pa.concat_tables(ray.get(ds.to_arrow_refs())).to_pylist(), expected.to_list()


def test_class_form_pairs_chain(ray_local, gpt2_lm_dir, llama_lm_dir):
    """Embed, reward, similarity and orientation as actors, each in another batch format."""
    embed = {"model": str(gpt2_lm_dir), "backend": "causal-lm"}
    reward = {"strong": str(llama_lm_dir), "weak": str(gpt2_lm_dir), "domain_routing": False}
    got, expected = chain(
        text_pairs(),
        [
            (EmbedResponses, embed, False, "pyarrow"),
            (DensityRatioReward, reward, False, "pandas"),
            (PairSimilarity, {}, False, "numpy"),
            (OrientByReward, {"keep_skipped": True}, True, "pyarrow"),
        ],
    )
    assert_same_rows(got, expected, "numpy")
    assert {"chosen_embedding", "chosen_reward", "similarity", "margin", "flipped"} <= set(got[0])


def test_class_form_candidates(ray_local):
    """SelectPairs and PairsFromRewards as actors (both pipelines run at once)."""
    from concurrent.futures import ThreadPoolExecutor

    data = candidates_with_embeddings()
    cases = [
        (SelectPairs, {"strategy": "random", "pairs_per_prompt": 2, "keep_skipped": True}, "numpy"),
        (PairsFromRewards, {"mode": "best-vs-worst", "keep_skipped": True}, "pandas"),
    ]
    with ThreadPoolExecutor(len(cases)) as pool:
        runs = [pool.submit(run_ray, data, cls, kw, fmt, "class", 4) for cls, kw, fmt in cases]
        results = [r.result() for r in runs]
    for (cls, kwargs, fmt), got in zip(cases, results):
        assert_same_rows(got, run_datasets(data, cls(**kwargs), batch_size=4, replace=True), fmt)


def test_a_bad_row_is_named_in_the_ray_error(ray_local):
    data = pairs_with_embeddings().to_list()
    data[3]["chosen_embedding"] = [0.0] * 8
    ds = ray.data.from_huggingface(Dataset.from_list(data))
    with pytest.raises(Exception, match=r"row 3 of this batch.*non-zero"):
        ds.map_batches(PairSimilarity(), batch_size=10, batch_format="pyarrow").materialize()


# ---------------------------------------------------------------------------------------------- curate


HH = ROOT.parent.parent / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"
if not HH.exists():  # the worktree layout (/work/wt/issueN) or the main checkout (/work/main)
    HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"


def _curate_both(tmp_path, source, **options):
    from real_hub.pipeline import curate

    results = {}
    for engine in ("datasets", "ray"):
        results[engine] = curate(source, output_dir=tmp_path / engine, engine=engine, **options)
    return results["datasets"], results["ray"]


def _card_statistics(folder, config):
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(folder / "README.md")
    return card.data.to_dict()["real_hub"]["configs"][config]["statistics"]


def _assert_same_curation(tmp_path, default, on_ray):
    from datasets import load_dataset

    assert on_ray.dataset.to_list() == default.dataset.to_list()
    a, b = default.report.to_dict(), on_ray.report.to_dict()
    for report in (a, b):
        report.pop("seconds"), report.pop("output_dir")
    assert a == b
    assert b["budget"]["pairs_kept"] == round(0.35 * b["budget"]["pairs_in"])
    assert _card_statistics(tmp_path / "ray", "dissimilar") == _card_statistics(
        tmp_path / "datasets", "dissimilar"
    )
    assert load_dataset(str(tmp_path / "ray"), "dissimilar")["train"].to_list() == default.dataset.to_list()


def hh_file(path: Path) -> Path:
    """HH-RLHF-shaped transcripts (gzipped JSON Lines): short, with repeats (tied similarities) and skips."""
    import gzip
    import json

    rng = np.random.default_rng(0)
    words = "hello there yes no maybe bread water cat dog sun rain please thanks sorry help".split()
    rows = []
    for i in range(60):
        question = " ".join(rng.choice(words, 4))
        good, bad = " ".join(rng.choice(words, 5)), " ".join(rng.choice(words, 3))
        if i % 10 == 3:
            good, bad = "yes please", "no thanks"  # the same pair again: equal similarities, ties by row
        prefix = f"\n\nHuman: {question}"
        rows.append({"chosen": f"{prefix}\n\nAssistant: {good}", "rejected": f"{prefix}\n\nAssistant: {bad}"})
    rows[7]["rejected"] = rows[7]["chosen"]  # identical responses: skipped and counted
    rows[11]["rejected"] = "\n\nHuman: something else\n\nAssistant: no"  # prompt mismatch: skipped
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def test_curate_on_ray_gives_the_default_engines_pairs_and_report(ray_local, tmp_path, gpt2_lm_dir):
    """HH-shaped data, budget 0.35, tiny embedder: same pairs in the same order, same report and card."""
    source = str(hh_file(tmp_path / "hh.jsonl.gz"))
    default, on_ray = _curate_both(
        tmp_path, source, embedder=str(gpt2_lm_dir), embed_backend="causal-lm", budget=0.35
    )
    _assert_same_curation(tmp_path, default, on_ray)
    assert on_ray.report.conversion.rows_in == 60
    assert on_ray.report.conversion.skipped == {"identical_responses": 1, "prompt_mismatch": 1}


@pytest.mark.slow
def test_curate_on_ray_hh_slice_at_budget_035(ray_local, tmp_path):
    """300 real HH rows in batches of 64: the engines' pairs, reports and cards are equal to the bit.

    The whole file (2,312 rows) is checked the same way by benchmarks/check_ray_hh.py.
    """
    import gzip

    with gzip.open(HH, "rt", encoding="utf-8") as f:
        lines = [line for _, line in zip(range(300), f)]
    part = tmp_path / "hh-300.jsonl.gz"
    with gzip.open(part, "wt", encoding="utf-8") as f:
        f.writelines(lines)
    default, on_ray = _curate_both(tmp_path, str(part), budget=0.35, batch_size=64)
    _assert_same_curation(tmp_path, default, on_ray)
    assert on_ray.report.conversion.rows_in == 300


def test_curate_on_ray_candidates_with_globs(ray_local, tmp_path, gpt2_lm_dir):
    """Candidates split over two files read with a glob: selection report and pairs as the default's."""
    import json

    rows = text_candidates().to_list() + [{"prompt": "Alone.", "responses": ["Only one."], "scores": [1.0]}]
    for k, part in enumerate((rows[:2], rows[2:])):
        (tmp_path / f"part-{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    from real_hub.pipeline import curate

    options = {"embedder": str(gpt2_lm_dir), "embed_backend": "causal-lm", "pairs_per_prompt": 2}
    default = curate([str(tmp_path / "part-0.jsonl"), str(tmp_path / "part-1.jsonl")], **options)
    on_ray = curate(str(tmp_path / "part-*.jsonl"), engine="ray", **options)
    assert on_ray.dataset.to_list() == default.dataset.to_list()
    assert on_ray.report.selection == default.report.selection
    assert on_ray.report.selection.skipped == {"fewer_than_two_responses": 1}
    assert on_ray.report.conversion == default.report.conversion


class _RecordBatches:
    """An actor that answers each batch with its first source row and its size."""

    def __call__(self, table: pa.Table) -> pa.Table:
        index = table.column("__index").to_pylist()
        return pa.table({"first": [index[0]], "size": [len(index)]})


def test_models_get_the_batches_dataset_map_gives_them(ray_local):
    """Kept rows in ragged blocks (skips removed) reach an actor in Dataset.map's batches of B rows."""
    from real_hub.scale.files import INDEX_COLUMN
    from real_hub.scale.ray_engine import model_batches

    kept = [i for i in range(80) if i % 7 != 3 and i not in (20, 21, 22, 23)]  # skipped source rows
    blocks, start = [], 0
    for size in (3, 10, 1, 0, 7, 20, 5, 9, 11):  # the blocks a reader and a converter might leave
        part = kept[start : start + size]
        blocks.append(
            pa.table({INDEX_COLUMN: pa.array(part, type=pa.int64()), "x": [float(i) for i in part]})
        )
        start += size
    blocks.append(
        pa.table({INDEX_COLUMN: pa.array(kept[start:], type=pa.int64()), "x": [0.0] * (len(kept) - start)})
    )
    data = model_batches(ray.data.from_arrow(blocks), 8).map_batches(
        _RecordBatches, batch_size=8, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=1)
    )
    got = [(r["first"], r["size"]) for r in data.iter_rows()]
    expected = [(kept[k], len(kept[k : k + 8])) for k in range(0, len(kept), 8)]  # Dataset.map's batches
    assert got == expected


def test_collect_streams_rows_to_a_memory_mapped_dataset_in_source_order(ray_local, tmp_path):
    """Blocks out of order are sorted by source row (stably), dropped columns never arrive, types agree."""
    from real_hub.scale.files import INDEX_COLUMN
    from real_hub.scale.ray_engine import collect

    def block(index, reasons):
        return pa.table(
            {
                INDEX_COLUMN: pa.array(index, type=pa.int64()),
                "pair": [f"pair {i}.{k}" for k, i in enumerate(index)],
                "skip_reason": pa.array(reasons),  # an all-None block infers the null type
                "chosen_embedding": [[float(i)] * 4 for i in index],
            }
        )

    blocks = [block([4, 4, 5], [None, None, "too_short"]), block([0, 1, 1], [None] * 3), block([7], ["x"])]
    rows = collect(ray.data.from_arrow(blocks), drop=["chosen_embedding"], directory=tmp_path)
    assert rows.column_names == ["pair", "skip_reason"]
    assert rows["pair"] == [
        "pair 0.0",
        "pair 1.1",
        "pair 1.2",
        "pair 4.0",
        "pair 4.1",
        "pair 5.2",
        "pair 7.0",
    ]
    assert rows["skip_reason"] == [None, None, None, None, None, "too_short", "x"]
    assert rows.features["skip_reason"].dtype == "string"
    assert {Path(f["filename"]).parent for f in rows.cache_files} == {tmp_path}  # on disk, memory-mapped

    assert collect(ray.data.from_arrow([block([], [])]), directory=tmp_path) is None


def test_curate_on_ray_returns_rows_backed_by_files(ray_local, tmp_path, gpt2_lm_dir):
    from real_hub.pipeline import CurateOptions
    from real_hub.scale.ray_engine import run_on_ray

    source = str(hh_file(tmp_path / "hh.jsonl.gz"))
    opts = CurateOptions(embedder=str(gpt2_lm_dir), embed_backend="causal-lm", engine="ray", batch_size=16)
    run = run_on_ray(source, opts)
    assert run.rows.cache_files  # not an in-memory table on the driver
    assert "chosen_embedding" not in run.rows.column_names  # left on the cluster
    assert len(run.rows) == run.conversion.rows_out == 58


def test_a_malformed_row_is_named_by_file_and_row_by_both_engines(ray_local, tmp_path, capsys):
    import json

    from real_hub.cli.main import main

    good = {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go away"}
    (tmp_path / "a.jsonl").write_text(json.dumps(good) + "\n")
    rows = [good] * 3 + [{"chosen": "garbage without turns", "rejected": good["rejected"]}] + [good]
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    errors = {}
    for engine in ("datasets", "ray"):
        files = [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]
        code = main(["curate", *files, "--engine", engine, "--output-dir", str(tmp_path / engine), "-q"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and "Traceback" not in "\n".join(err)
        errors[engine] = err[-1]
    expected = f"error: file {tmp_path / 'b.jsonl'}, row 3, column 'chosen': expected an HH-RLHF transcript"
    assert errors["datasets"].startswith(expected)
    assert errors["ray"] == errors["datasets"]


def test_without_ray_the_error_names_the_extra(tmp_path, capsys, monkeypatch):
    import sys

    from real_hub.cli.main import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if not installed
    (tmp_path / "a.jsonl").write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    code = main(["curate", str(tmp_path / "a.jsonl"), "--engine", "ray", "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        code == 2
        and err[-1]
        == "error: engine='ray' needs Ray Data, which is not installed: pip install 'real-hub[ray]'"
    )


def test_an_unreachable_ray_address_is_one_line_within_30_seconds(tmp_path):
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "a.jsonl").write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}"}
    command = [sys.executable, "-m", "real_hub.cli.main", "curate", str(tmp_path / "a.jsonl")]
    start = time.monotonic()
    done = subprocess.run(
        [*command, "--engine", "ray", "--output-dir", str(tmp_path / "o")],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert time.monotonic() - start < 30
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: cannot reach the Ray cluster at 127.0.0.1:{port}")


@pytest.mark.slow
def test_curate_joins_the_cluster_named_by_ray_address(tmp_path, gpt2_lm_dir):
    """A real Ray head on a free port: --ray-address joins it and the pairs equal the default engine's."""
    import shutil
    import socket
    import subprocess
    import sys
    import tempfile
    import time

    from datasets import load_dataset

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_cli = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_ADDRESS", None)
    env["RAY_AUTH_MODE"] = "disabled"  # a loopback cluster of this test: no token to share with the driver
    # its own temp dir (short: Unix socket paths), so its address file does not outlive it in /tmp/ray,
    # where a later ray.init() on this machine would try to join the stopped cluster
    temp = tempfile.mkdtemp(prefix="rh-ray-")
    start = [ray_cli, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false"]
    start += [f"--temp-dir={temp}", "--block"]
    head = subprocess.Popen(start, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None and time.monotonic() < deadline, "the Ray head did not start"
                time.sleep(1)
        source = str(hh_file(tmp_path / "hh.jsonl.gz"))
        options = ["--embedder", str(gpt2_lm_dir), "--embed-backend", "causal-lm", "--budget", "0.5"]
        command = [sys.executable, "-m", "real_hub.cli.main", "curate", source, *options]
        runs = {}
        for engine in ("datasets", "ray"):
            out = tmp_path / engine
            flags = ["--engine", engine, "--output-dir", str(out)]
            flags += ["--ray-address", f"127.0.0.1:{port}"] if engine == "ray" else []
            done = subprocess.run([*command, *flags], env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-3000:]
            runs[engine] = (done.stderr, load_dataset(str(out), "dissimilar", split="train").to_list())
        assert f"Ray: joined the cluster at 127.0.0.1:{port}, 2 CPUs" in runs["ray"][0]
        assert runs["ray"][1] == runs["datasets"][1] and len(runs["ray"][1]) == 29
    finally:
        head.terminate()
        head.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)
