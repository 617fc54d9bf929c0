"""A curated folder is written as one commit: killed, full or refused writes leave the old state whole.

Every check of what a reader sees uses plain ``datasets.load_dataset(folder, config)``. Writers are
stopped at each step of the write path (``real_hub.hub.commit._checkpoint`` and the temporary card),
in a subprocess killed with SIGKILL there, and at random moments; disks fill up (a patched write raising
``ENOSPC``) and folders refuse writes (a patched ``os.access``: the tests run as root, whom permission
bits do not stop). Broken cards and shards are named in one line by every reader.
"""

from __future__ import annotations

import errno
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict, load_dataset
from huggingface_hub import DatasetCard

from real_hub import atomic, load_curated, repair_card, save_curated
from real_hub.errors import ConfigError, CorruptFileError, OutputError
from real_hub.hub import commit

WRITER = r"""
import os, signal, sys
from pathlib import Path
from datasets import Dataset
import real_hub.atomic as atomic
import real_hub.hub.commit as commit
from real_hub import save_curated

out, config, step, tag, n = sys.argv[1:6]
COLUMNS = ("prompt", "chosen", "rejected")
rows = Dataset.from_dict({k: [f"{tag} {k} {i}" for i in range(int(n))] for k in COLUMNS})

def kill():
    os.kill(os.getpid(), signal.SIGKILL)

real_fsync = atomic.fsync_file
def fsync(path):  # the temporary file is written and flushed, not yet renamed
    real_fsync(path)
    name = Path(path).name
    prefix = {"card-tmp": ".README.md.", "shard-tmp": ".train."}.get(step)
    if prefix and name.startswith(prefix):
        kill()
atomic.fsync_file = fsync
commit._checkpoint = lambda at: kill() if at == step else None
if step == "loop":  # rewrite the config over and over until killed from outside
    other = Dataset.from_dict({k: [f"b {k} {i}" for i in range(int(n) // 2)] for k in COLUMNS})
    print("ready", flush=True)
    for i in range(10_000):
        save_curated(other if i % 2 else rows, out, config, overwrite=True)
else:
    save_curated(rows, out, config, overwrite=True)
print("finished", flush=True)
"""


def rows(tag: str, n: int) -> Dataset:
    return Dataset.from_dict(
        {k: [f"{tag} {k} {i}" for i in range(n)] for k in ("prompt", "chosen", "rejected")}
    )


def seen(folder: Path, config: str) -> list[str] | None:
    """The prompts plain ``load_dataset`` reads for ``config``; ``None`` if the folder has no such config."""
    try:
        return load_dataset(str(folder), config, split="train")["prompt"]
    except ValueError as err:
        if f"BuilderConfig '{config}' not found" in str(err) or "doesn't contain any data files" in str(err):
            return None
        raise


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_tidy(folder: Path) -> None:
    """No temporary file anywhere, and each config folder holds exactly the shards the card lists."""
    assert [p for p in folder.rglob(".*")] == []
    card = DatasetCard.load(folder / "README.md")
    for entry in card.data.configs:
        listed = sorted(Path(f["path"]).name for f in entry["data_files"])
        assert sorted(p.name for p in (folder / entry["config_name"]).iterdir()) == listed


def run_writer(
    out: Path, config: str, step: str, tag: str = "new", n: int = 5
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WRITER, str(out), config, step, tag, str(n)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def folder(tmp_path) -> Path:
    """A folder with configs ``dissimilar`` (3 rows tagged old) and ``similar`` (2 rows tagged sim)."""
    out = tmp_path / "out"
    save_curated(rows("old", 3), out, "dissimilar")
    save_curated(rows("sim", 2), out, "similar")
    return out


OLD, SIM, NEW = rows("old", 3)["prompt"], rows("sim", 2)["prompt"], rows("new", 5)["prompt"]


# ------------------------------------------------------------------------------------------ killed writers


@pytest.mark.parametrize(
    ("config", "step", "expected"),
    [
        ("dissimilar", "shard-tmp", OLD),
        ("dissimilar", "staged", OLD),
        ("dissimilar", "moved", OLD),
        ("dissimilar", "card-tmp", OLD),
        ("dissimilar", "card", NEW),
        ("dissimilar", "cleaned", NEW),
        ("random", "moved", None),
        ("random", "card-tmp", None),
        ("random", "card", NEW),
    ],
)
def test_a_writer_killed_at_each_step_leaves_the_old_or_the_new_set(folder, config, step, expected):
    done = run_writer(folder, config, step)
    assert done.returncode == -signal.SIGKILL, done.stderr  # it reached the step and died there
    assert seen(folder, config) == expected
    assert seen(folder, "similar") == SIM  # the neighbour is never touched
    assert load_curated(folder, "similar").dataset["train"]["prompt"] == SIM
    save_curated(rows("next", 1), folder, "similar", overwrite=True)  # the next write cleans up
    assert_tidy(folder)
    assert seen(folder, config) == expected


def test_a_killed_first_write_reruns_to_the_uninterrupted_result(tmp_path):
    killed, clean = tmp_path / "a" / "out", tmp_path / "b" / "out"
    done = run_writer(killed, "dissimilar", "moved")
    assert done.returncode == -signal.SIGKILL
    assert not (killed / "README.md").exists()
    save_curated(rows("new", 5), killed, "dissimilar", overwrite=True)
    save_curated(rows("new", 5), clean, "dissimilar")
    assert tree(killed).keys() == tree(clean).keys()
    assert {k: v for k, v in tree(killed).items() if k != "README.md"} == {
        k: v for k, v in tree(clean).items() if k != "README.md"
    }
    card = (killed / "README.md").read_text().replace(str(killed), str(clean))
    assert card == (clean / "README.md").read_text()
    assert seen(killed, "dissimilar") == NEW
    assert_tidy(killed)


def test_shards_of_a_killed_first_write_go_with_the_next_write_of_any_config(tmp_path):
    out = tmp_path / "out"
    assert run_writer(out, "dissimilar", "moved").returncode == -signal.SIGKILL
    assert list((out / "dissimilar").glob("*.parquet"))  # moved in, never committed
    save_curated(rows("sim", 2), out, "similar")  # not refused: nothing committed is on disk
    assert [c["config_name"] for c in DatasetCard.load(out / "README.md").data.configs] == ["similar"]
    assert not (out / "dissimilar").exists()
    assert_tidy(out)


def test_repair_never_adopts_the_shards_of_a_killed_write(folder):
    assert run_writer(folder, "dissimilar", "moved").returncode == -signal.SIGKILL
    readme = folder / "README.md"
    readme.write_text(readme.read_text()[:40])  # then the card is cut short
    report = repair_card(folder)
    assert report.repaired and sorted(report.configs) == ["dissimilar", "similar"]
    assert seen(folder, "dissimilar") == OLD  # not the newer, uncommitted shard
    assert_tidy(folder)


def test_a_writer_killed_at_random_moments_never_leaves_a_mix(folder):
    states = {tuple(OLD), tuple(rows("k", 400)["prompt"]), tuple(f"b prompt {i}" for i in range(200))}
    rng = random.Random(0)
    for _ in range(2):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(folder), "dissimilar", "loop", "k", "400"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert tuple(seen(folder, "dissimilar")) in states
        assert seen(folder, "similar") == SIM
    save_curated(rows("next", 1), folder, "random")
    assert_tidy(folder)


@pytest.mark.parametrize("step", ["staged", "moved", "card"])
def test_an_exception_at_each_step_keeps_the_folder_whole(folder, monkeypatch, step):
    class Stop(Exception):
        pass

    def stop(at: str) -> None:
        if at == step:
            raise Stop(at)

    before = tree(folder)
    monkeypatch.setattr(commit, "_checkpoint", stop)
    with pytest.raises(Stop):
        save_curated(rows("new", 5), folder, "dissimilar", overwrite=True)
    assert seen(folder, "dissimilar") == (NEW if step == "card" else OLD)
    if step != "card":  # before the swap, everything the write added is taken away again
        assert tree(folder) == before


def test_an_interrupt_just_after_the_card_swap_keeps_the_new_set(folder, monkeypatch):
    def interrupt(path):  # atomic_path flushes the folder after os.replace: the card is in already
        if Path(path) == folder:
            raise KeyboardInterrupt

    monkeypatch.setattr(atomic, "fsync_dir", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_curated(rows("new", 5), folder, "dissimilar", overwrite=True)
    monkeypatch.undo()
    assert seen(folder, "dissimilar") == NEW  # its shards were not taken back
    save_curated(rows("next", 1), folder, "random")
    assert_tidy(folder)


def test_concurrent_writers_of_different_configs_keep_every_config(tmp_path):
    out = tmp_path / "out"
    threads = [
        threading.Thread(target=save_curated, args=(rows(f"c{i}", i + 1), out, f"c{i}")) for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [c["config_name"] for c in DatasetCard.load(out / "README.md").data.configs] == [
        "c0",
        "c1",
        "c2",
        "c3",
    ]
    assert [len(seen(out, f"c{i}")) for i in range(4)] == [1, 2, 3, 4]
    assert_tidy(out)


def test_readers_ignore_a_staging_folder_and_temporary_card(folder):
    stage = folder / commit.STAGING / "1-abc"
    (stage / "dissimilar").mkdir(parents=True)
    rows("stale", 9).to_parquet(str(stage / "dissimilar" / "train-00000-of-00001-0000000000000000.parquet"))
    (folder / ".README.md.1-abc.real-hub-tmp").write_text("---\nconfigs: [")
    assert seen(folder, "dissimilar") == OLD
    assert load_curated(folder, "dissimilar").dataset["train"]["prompt"] == OLD


# ------------------------------------------------------------------------------ full disks, no permission


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    ("where", "doing"),
    [
        ("shards", "writing the new shards"),
        ("move", "moving the new shards in"),
        ("card", "writing README.md"),
    ],
)
def test_a_full_disk_leaves_the_old_set_and_says_where(folder, monkeypatch, where, doing):
    before = tree(folder)
    if where == "shards":
        monkeypatch.setattr(Dataset, "to_parquet", no_space)
    elif where == "move":  # the second split's rename fails: the first one is taken back
        real = os.replace
        monkeypatch.setattr(
            commit.os,
            "replace",
            lambda a, b: (
                no_space() if Path(b).parent == folder / "dissimilar" and "test-" in b.name else real(a, b)
            ),
        )
    else:
        real_write = Path.write_bytes
        monkeypatch.setattr(
            Path,
            "write_bytes",
            lambda p, d: no_space() if p.name.startswith(".README.md.") else real_write(p, d),
        )
    data = DatasetDict({"train": rows("new", 5), "test": rows("t", 2)})
    with pytest.raises(OutputError) as err:
        save_curated(data, folder, "dissimilar", overwrite=True)
    assert str(err.value) == (
        f"cannot write config 'dissimilar' to {folder}: no space left on device ({doing}); "
        "the folder is as it was"
    )
    monkeypatch.undo()
    assert tree(folder) == before
    assert seen(folder, "dissimilar") == OLD


def test_an_unwritable_folder_is_refused_before_anything_is_written(folder, monkeypatch):
    before = tree(folder)
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: Path(path) != folder)
    with pytest.raises(OutputError, match=rf"^cannot write the output folder {folder}: permission denied"):
        save_curated(rows("new", 5), folder, "random")
    assert tree(folder) == before


def test_curate_checks_the_output_folder_before_loading_anything(tmp_path, monkeypatch, capsys):
    from real_hub.cli.main import main
    from real_hub.pipeline import curate

    out = tmp_path / "out"
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: Path(path) != tmp_path)
    with pytest.raises(OutputError, match=rf"^cannot write the output folder {out}: permission denied"):
        curate(str(tmp_path / "no-such-source.jsonl"), output_dir=out)  # not a FormatError: checked first
    assert main(["curate", str(tmp_path / "no-such.jsonl"), "--output-dir", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"error: cannot write the output folder {out}: permission denied"
    )


# ------------------------------------------------------------------------------------------ broken cards


def break_card(folder: Path, how: str) -> int | None:
    """Damage ``folder/README.md``; return the line of a YAML error, if the damage makes one."""
    readme = folder / "README.md"
    text = readme.read_text()
    lines = text.splitlines(keepends=True)
    if how == "truncated":  # cut inside the configs list, as a killed in-place write left it
        readme.write_text(text[: text.index("similar/train")])
    elif how == "yaml":
        n = next(i for i, line in enumerate(lines) if line.startswith("tags:"))
        lines[n] = "tags: dpo: preference\n"
        readme.write_text("".join(lines))
        return n + 1
    elif how == "empty":
        readme.write_text("")
    return None


@pytest.mark.parametrize("how", ["truncated", "yaml", "empty"])
def test_a_broken_card_is_named_and_no_write_drops_a_config(folder, capsys, how):
    line = break_card(folder, how)
    before = tree(folder)
    readme = folder / "README.md"
    what = {
        "truncated": "truncated: the YAML block opened by '---' on line 1 is never closed",
        "yaml": f"broken YAML at line {line}: mapping values are not allowed here",
        "empty": "empty",
    }[how]
    with pytest.raises(CorruptFileError) as err:
        save_curated(rows("new", 5), folder, "random")
    message = str(err.value)
    assert message.startswith(f"{readme} is broken: {what}") and "\n" not in message
    assert message.endswith(
        f"run `real-hub repair {folder}` (or real_hub.repair_card) to rebuild it from the shards on disk"
    )
    assert err.value.file == str(readme)
    assert tree(folder) == before  # refused before anything was written
    with pytest.raises(CorruptFileError, match=f"^{readme} is broken: "):
        load_curated(folder, "dissimilar")
    from real_hub.cli.main import main
    from real_hub.space.browse import load_pair_source

    with pytest.raises(CorruptFileError, match=f"^{readme} is broken: "):
        load_pair_source(str(folder))
    capsys.readouterr()
    assert main(["curate", str(folder / "nothing.jsonl"), "--output-dir", str(folder), "-q"]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert main(["eval", str(folder), "--config", "dissimilar", "-q"]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_the_yaml_error_names_the_line_of_the_file(folder):
    readme = folder / "README.md"
    lines = readme.read_text().splitlines(keepends=True)
    n = next(i for i, line in enumerate(lines) if "config_name: similar" in line)
    lines[n] = lines[n].replace("config_name: similar", "config_name: similar: bad")
    readme.write_text("".join(lines))
    with pytest.raises(
        CorruptFileError, match=rf"broken YAML at line {n + 1}: mapping values are not allowed here"
    ):
        load_curated(folder, "dissimilar")


def test_a_lost_card_with_shards_on_disk_is_not_rebuilt_without_them(folder):
    (folder / "README.md").unlink()
    with pytest.raises(
        CorruptFileError,
        match=r"has no README.md, but holds shards of config\(s\) \['dissimilar', 'similar'\]",
    ):
        save_curated(rows("new", 5), folder, "random")
    report = repair_card(folder)
    assert report.repaired and sorted(report.configs) == ["dissimilar", "similar"]
    assert seen(folder, "dissimilar") == OLD and seen(folder, "similar") == SIM


def test_repair_rebuilds_the_card_from_the_shards_and_what_the_old_card_still_says(tmp_path, capsys):
    from real_hub import Provenance, Statistics
    from real_hub.cli.main import main

    out = tmp_path / "out"
    save_curated(
        rows("old", 3),
        out,
        "dissimilar",
        provenance=Provenance(source="hh", budget=0.5),
        statistics=Statistics(rows_in=10),
    )
    save_curated(rows("sim", 2), out, "similar", provenance=Provenance(source="hh", strategy="similar"))
    readme = out / "README.md"
    text = readme.read_text()
    cut = text[: text.index("    similar:")]  # the real_hub block cut after the dissimilar entry
    readme.write_text(cut)
    rows("stray", 7).to_parquet(str(out / "similar" / "train-00000-of-00001-ffffffffffffffff.parquet"))
    (out / "dissimilar" / "test-00000-of-00001-0123456789abcdef.parquet").write_bytes(b"PAR1 cut short")
    assert main(["repair", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"{out}/README.md was broken: {readme} is broken: truncated")
    assert printed[1] == f"kept the broken card as {readme}.broken"
    assert (out / "README.md.broken").read_text() == cut
    assert printed[-1].startswith(
        f"left out {out / 'dissimilar' / 'test-00000-of-00001-0123456789abcdef.parquet'}: truncated"
    )
    assert seen(out, "dissimilar") == OLD
    assert seen(out, "similar") == SIM  # the shard the old card listed, not the newer stray one
    dis, sim = load_curated(out, "dissimilar"), load_curated(out, "similar")
    assert dis.provenance == Provenance(source="hh", budget=0.5)
    assert dis.statistics == Statistics(rows_in=10, rows_out={"train": 3})
    assert sim.provenance == Provenance() and sim.statistics == Statistics(rows_out={"train": 2})
    save_curated(rows("new", 5), out, "random")  # writable again; the stray shard goes
    assert_tidy(out)
    assert main(["repair", str(out)]) == 0
    assert "nothing to repair" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ broken shards


def break_shard(path: Path, how: str) -> str:
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
        return "empty (0 bytes)"
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
        return f"truncated ({len(data) // 2} bytes, no parquet footer)"
    if how == "not-parquet":
        path.write_text('{"prompt": "a json line"}\n')
        return "not a parquet file (it starts with b'{\"pr', not b'PAR1')"
    path.unlink()
    return "missing"


@pytest.mark.parametrize("how", ["empty", "truncated", "not-parquet", "missing"])
def test_a_broken_shard_is_named_by_every_reader(folder, capsys, how):
    from real_hub.cli.main import main
    from real_hub.space.browse import load_pair_source

    shard = next((folder / "dissimilar").glob("*.parquet"))
    what = break_shard(shard, how)
    expected = f"{shard} is {what}: a shard of config 'dissimilar' that {folder / 'README.md'} lists"
    with pytest.raises(CorruptFileError) as err:
        load_curated(folder, "dissimilar")
    assert str(err.value).startswith(expected) and err.value.file == str(shard)
    with pytest.raises(
        CorruptFileError, match="^" + expected.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        load_pair_source(str(folder))
    capsys.readouterr()
    assert main(["eval", str(folder), "--config", "dissimilar", "-q"]) == 2
    err_line = capsys.readouterr().err
    assert err_line.startswith(f"error: {expected}") and err_line.count("\n") == 1
    if how == "missing":  # datasets resolves every config's files: the neighbour names it too
        with pytest.raises(CorruptFileError, match="datasets needs every config's files"):
            load_curated(folder, "similar")
    else:
        assert load_curated(folder, "similar").dataset["train"]["prompt"] == SIM
    save_curated(rows("new", 5), folder, "dissimilar", overwrite=True)  # rewriting the config mends it
    assert seen(folder, "dissimilar") == NEW
    assert_tidy(folder)


def test_a_shard_with_corrupt_pages_is_named_once_pyarrow_fails_on_it(tmp_path, capsys):
    import pyarrow.parquet as pq

    from real_hub.cli.main import main

    out = tmp_path / "out"
    save_curated(rows("long text " * 5, 200), out, "dissimilar")
    shard = next((out / "dissimilar").glob("*.parquet"))
    data = bytearray(shard.read_bytes())
    start = pq.read_metadata(shard).row_group(0).column(0).data_page_offset
    data[start + 20 : start + 200] = b"\xff" * 180  # header and footer intact, compressed pages not
    shard.write_bytes(bytes(data))
    expected = f"{shard} is corrupt ("
    with pytest.raises(CorruptFileError, match="^" + re.escape(expected)):
        load_curated(out, "dissimilar")
    capsys.readouterr()
    assert main(["eval", str(out), "--config", "dissimilar", "-q"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {expected}")


def test_a_reader_racing_a_writer_gets_a_whole_set(folder, monkeypatch):
    """A commit between reading the card and reading the shards: load_curated reads the new card again."""
    from datasets import load_dataset as real_load

    from real_hub.hub import folder as module

    raced = []

    def racing(path, config, **kwargs):
        if not raced:  # datasets resolved the old card's files; a writer commits and removes them
            raced.append(True)
            old = next((Path(path) / "dissimilar").glob("*.parquet"))
            save_curated(rows("new", 5), path, "dissimilar", overwrite=True)
            raise FileNotFoundError(f"Unable to find '{old}'")
        return real_load(path, config, **kwargs)

    monkeypatch.setattr("datasets.load_dataset", racing)
    assert load_curated(folder, "dissimilar").dataset["train"]["prompt"] == NEW
    assert module.load_config(folder, "similar")[0]["train"]["prompt"] == SIM


def test_overwrite_is_still_refused_and_new_configs_still_added(folder):
    with pytest.raises(ConfigError, match="already exists"):
        save_curated(rows("new", 5), folder, "dissimilar")
    save_curated(rows("new", 5), folder, "random")
    assert [seen(folder, c) for c in ("dissimilar", "random", "similar")] == [OLD, NEW, SIM]
    assert_tidy(folder)
