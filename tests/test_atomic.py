"""real_hub.atomic: whole files or none, leftovers of killed writers cleaned, failures as one line.

Also the writers built on it that are not curated folders (those are in test_curated_commit.py): the
Space's annotation log after a torn line, the derived-model cache, the CLI's JSON outputs.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from real_hub import atomic
from real_hub.atomic import (
    TMP_SUFFIX,
    append_line,
    check_writable,
    clean_leftovers,
    temp_path,
    write_json_atomic,
    write_text_atomic,
)
from real_hub.errors import OutputError


def dead_pid() -> int:
    """The id of a process that has exited."""
    out = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(out.stdout)


def leftover(path: Path, pid: int, text: str = "half") -> Path:
    tmp = path.with_name(f".{path.name}.{pid}-deadbeef{TMP_SUFFIX}")
    tmp.write_text(text)
    return tmp


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------------------------------ whole files


def test_a_write_replaces_the_file_and_leaves_no_temporary_name(tmp_path):
    path = tmp_path / "report.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2, "b": [1, 2]}, indent=2)
    assert json.loads(path.read_text()) == {"a": 2, "b": [1, 2]}
    assert path.read_text().endswith("\n")
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("where", ["write", "rename"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, where):
    path = tmp_path / "card.md"
    path.write_text("old")
    full = OSError(errno.ENOSPC, "No space left on device")
    if where == "write":
        real = Path.write_bytes

        def write_bytes(self, data):
            real(self, data[:3])  # a part reached the disk, then it filled up
            raise full

        monkeypatch.setattr(Path, "write_bytes", write_bytes)
    else:
        monkeypatch.setattr(atomic.os, "replace", lambda *a: (_ for _ in ()).throw(full))
    with pytest.raises(OSError, match="No space"):
        write_text_atomic(path, "new and longer")
    assert path.read_text() == "old"
    assert hidden(tmp_path) == []


def test_temporary_names_are_hidden_unique_and_carry_the_pid(tmp_path):
    a, b = temp_path(tmp_path / "x.json"), temp_path(tmp_path / "x.json")
    assert a != b and a.parent == tmp_path
    assert a.name.startswith(f".x.json.{os.getpid()}-") and a.name.endswith(TMP_SUFFIX)


def test_leftovers_of_gone_writers_are_removed_and_live_ones_kept(tmp_path):
    path = tmp_path / "README.md"
    gone = leftover(path, dead_pid())
    mine = leftover(path, os.getpid())  # another thread of this process may be writing it
    other = leftover(tmp_path / "other.md", dead_pid())  # another file's: not this write's business
    assert clean_leftovers(path) == 1
    assert not gone.exists() and mine.exists() and other.exists()
    write_text_atomic(other.with_name("other.md"), "x")  # the next write of that file cleans its own
    assert not other.exists()


def test_an_old_leftover_is_removed_even_if_its_pid_is_taken(tmp_path):
    path = tmp_path / "x.json"
    tmp = leftover(path, 1)  # pid 1 always runs
    assert clean_leftovers(path) == 0
    old = atomic.STALE_AFTER + 60
    os.utime(tmp, (tmp.stat().st_atime - old, tmp.stat().st_mtime - old))
    assert clean_leftovers(path) == 1


# ------------------------------------------------------------------------------------------ appends


def test_an_append_after_a_torn_line_starts_a_fresh_line(tmp_path):
    from real_hub.space.annotation import AnnotationStore, read_records

    store = AnnotationStore(tmp_path, session="s1")
    store.append(pid="p1", annotator="ann", label="A", a_side="chosen")
    whole = store.path.read_bytes()
    torn = json.dumps({"pair_id": "p2", "annotator": "ann", "label": "B"}).encode()[:25]
    store.path.write_bytes(whole + torn)  # the writer was killed mid-line
    again = AnnotationStore(tmp_path, session="s1")  # the same session reopened
    again.append(pid="p3", annotator="ann", label="B", a_side="rejected")
    again.append(pid="p4", annotator="ann", label="tie", a_side="chosen")
    data = store.path.read_bytes()
    assert data.startswith(whole + torn + b"\n")  # nothing stored before was changed
    records, bad = read_records(tmp_path)
    assert [r["pair_id"] for r in records] == ["p1", "p3", "p4"]
    assert bad == 1  # the torn line, counted
    assert [r["pair_id"] for r in AnnotationStore(tmp_path, session="reader").read_new()] == [
        "p1",
        "p3",
        "p4",
    ]


def test_append_line_adds_nothing_before_a_whole_line(tmp_path):
    path = tmp_path / "log.jsonl"
    append_line(path, "a")
    append_line(path, "b\n")
    assert path.read_text() == "a\nb\n"


# ------------------------------------------------------------------------------------------ failures


def test_an_unwritable_folder_is_one_line_naming_it(tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: Path(path) != tmp_path)
    with pytest.raises(OutputError) as err:
        check_writable(out)  # missing: the parent it would be made in is checked
    message = str(err.value)
    assert message == f"cannot write the output folder {out}: permission denied ({tmp_path} is not writable)"
    assert err.value.folder == str(out)


def test_a_read_only_file_system_is_found_by_writing(tmp_path, monkeypatch):
    def refuse(**kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    with pytest.raises(
        OutputError, match=rf"^cannot write the output folder {tmp_path}: read-only file system"
    ):
        check_writable(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="permission bits do not bind root")
def test_a_folder_without_write_permission_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            check_writable(locked / "out")
    finally:
        locked.chmod(0o755)


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(OutputError, match=r"out is a file, not a folder"):
        check_writable(tmp_path / "out" / "sub")


# ------------------------------------------------------------------------------------------ the model cache


def test_publish_cleans_dead_builds_and_names_a_full_cache(tmp_path):
    from real_hub.cache import publish

    target = tmp_path / "static" / "model-abc"
    target.parent.mkdir()
    dead = target.with_name(f".{target.name}.{dead_pid()}-0123abcd{TMP_SUFFIX}")
    (dead / "weights").mkdir(parents=True)  # a build killed halfway

    def full(scratch: Path) -> None:
        (scratch / "config.json").write_text("{}")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError) as err:
        publish(full, target)
    assert str(err.value) == f"building model-abc in {target.parent} failed: no space left on device"
    assert not target.exists() and not dead.exists()
    assert hidden(target.parent) == []
    publish(lambda scratch: (scratch / "config.json").write_text("{}"), target)
    assert (target / "config.json").read_text() == "{}"
    assert hidden(target.parent) == []


# ------------------------------------------------------------------------------------------ the CLI's files


def test_curate_checks_the_report_folder_before_the_pipeline(tmp_path, monkeypatch, capsys):
    from real_hub.cli.main import main

    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: Path(path) != ro)
    code = main(
        [
            "curate",
            str(tmp_path / "no-such.jsonl"),
            "--output-dir",
            str(tmp_path / "o"),
            "--report",
            str(ro / "r.json"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert (
        err == f"error: cannot write the folder of --report {ro}: permission denied ({ro} is not writable)\n"
    )


def test_the_demo_checks_its_folder_before_embedding(tmp_path, monkeypatch):
    from real_hub import demo

    def embedding(*args, **kwargs):
        raise AssertionError("embedded before the folder was checked")

    monkeypatch.setattr(demo, "select_demo", embedding)
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: False)
    with pytest.raises(
        OutputError, match=rf"^cannot write the output folder {tmp_path / 'd'}: permission denied"
    ):
        demo.run_demo(tmp_path / "d")


def test_evaluate_json_is_written_whole(tmp_path, monkeypatch, capsys):
    from datasets import Dataset

    from real_hub.cli.main import main

    data = tmp_path / "pairs.parquet"
    Dataset.from_dict(
        {"prompt": ["p", "q"], "chosen_reward": [1.0, 0.0], "rejected_reward": [0.0, 1.0]}
    ).to_parquet(data)
    out = tmp_path / "r.json"
    out.write_text('{"old": true}')

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    capsys.readouterr()
    assert main(["eval", str(data), "--json", str(out), "-q"]) == 2
    assert capsys.readouterr().err == f"error: cannot write --json {out}: no space left on device\n"
    assert out.read_text() == '{"old": true}'
    assert hidden(tmp_path) == []
    monkeypatch.undo()
    assert main(["eval", str(data), "--json", str(out), "-q"]) == 0
    assert json.loads(out.read_text())["accuracy"] == 0.5
