"""What users install: the wheel and the sdist carry every file the package reads, and the installed wheel
(not the checkout) runs the main job; the command line starts without the heavy libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"
HEAVY = ("torch", "transformers", "trl", "gradio", "sentence_transformers")
#: What --help must not load either, to start in well under a second (datasets alone takes about 1 s).
SLOW = ("datasets", "pandas", "sklearn")


def package_files() -> set[str]:
    """Every file of the package folder in the checkout (what the package may read at run time)."""
    return {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "real_hub").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The sdist and the wheel built from it (``python -m build``), checked by ``twine``."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, out.iterdir())], check=True)
    return out


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> Path:
    """The wheel installed, without dependencies, into its own folder (the checkout cannot shadow it)."""
    target = tmp_path_factory.mktemp("site")
    wheel = next(dist.glob("real_hub-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
         str(target), str(wheel)],
        check=True,
    )  # fmt: skip
    return target


def run_installed(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_wheel_and_sdist_carry_every_package_file(dist):
    wheel = next(dist.glob("real_hub-*.whl"))
    sdist = next(dist.glob("real_hub-*.tar.gz"))
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    with tarfile.open(sdist) as tar:
        prefix = sdist.name.removesuffix(".tar.gz") + "/"
        in_sdist = {m.name.removeprefix(prefix) for m in tar.getmembers() if m.isfile()}
    expected = package_files()
    assert {"real_hub/hub/templates/dataset_card.md", "real_hub/train/templates/model_card.md"} <= expected
    assert expected - in_wheel == set()
    assert expected - in_sdist == set()


@pytest.mark.slow
def test_installed_wheel_runs_help_demo_curate_and_load(installed, tmp_path):
    from real_hub import __version__

    script = str(installed / "bin" / "real-hub")
    where = run_installed(installed, tmp_path, "-c", "import real_hub; print(real_hub.__file__)")
    assert where.stdout.strip().startswith(str(installed)), where.stderr
    out = run_installed(installed, tmp_path, script, "--version")
    assert out.stdout.strip() == f"real-hub {__version__}"
    out = run_installed(installed, tmp_path, script, "--help")
    assert out.returncode == 0 and "curate" in out.stdout and "demo" in out.stdout

    out = run_installed(installed, tmp_path, script, "demo", "--output-dir", "demo-output", "-q")
    assert out.returncode == 0, out.stderr
    assert "dissimilar" in out.stdout and (tmp_path / "demo-output" / "README.md").exists()

    args = ["curate", str(HH), "--limit", "40", "--budget", "0.5", "--output-dir", "curated", "-q"]
    out = run_installed(installed, tmp_path, script, *args)
    assert out.returncode == 0, out.stderr
    card = (tmp_path / "curated" / "README.md").read_text()
    assert "real_hub" in card and "DPOTrainer" in card

    load = (
        "import json; from real_hub import load_curated; c = load_curated('curated', 'dissimilar'); "
        "print(json.dumps([c.dataset['train'].num_rows, c.provenance.budget, c.provenance.limit, "
        "c.provenance.versions['real-hub']]))"
    )
    out = run_installed(installed, tmp_path, "-c", load)
    assert out.returncode == 0, out.stderr
    rows, budget, limit, version = json.loads(out.stdout)
    assert budget == 0.5 and limit == 40 and version == __version__
    assert 0 < rows <= 20


COMMANDS = [[], ["demo"], ["curate"], ["eval"], ["budget-curve"], ["space"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "real-hub")
def test_help_loads_none_of_the_heavy_libraries(command):
    code = (
        "import sys\n"
        "from real_hub.cli.main import main\n"
        "try:\n"
        f"    main({command + ['--help']!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {HEAVY + SLOW!r} if m in sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines()[-1] == "[]"
    assert "usage: real-hub" in out.stdout


def test_import_real_hub_is_light_and_names_resolve_on_use():
    code = (
        "import sys, real_hub\n"
        f"before = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "names = set(real_hub.__all__) <= set(dir(real_hub))\n"
        "from real_hub import EmbedResponses, score_sequences\n"
        "print(before, names, EmbedResponses.__module__, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["[]", "True", "real_hub.real.embed", "True"], out.stderr


def test_every_public_name_resolves():
    import real_hub

    for name in real_hub.__all__:
        assert getattr(real_hub, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        real_hub.nope  # noqa: B018


def test_one_version_everywhere():
    import re
    from importlib.metadata import version

    import tomllib

    from real_hub import __version__

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" in project["dynamic"]  # read from real_hub/version.py, nowhere else
    assert version("real-hub") == __version__ == "0.2.0"
    changelog = (ROOT / "README.md").read_text().split("## Changelog", 1)[1]
    assert re.search(r"\*\*(\d+\.\d+\.\d+)", changelog).group(1) == __version__
