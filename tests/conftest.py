"""Shared pytest fixtures.

The tiny random models are built once per session and deep-copied per test, so a test may change its
copy freely. Other fixtures of the suite are added here too.
"""

from __future__ import annotations

import copy
import os

import pytest
import tiny_models
from tiny_models import Tiny

# ---------------------------------------------------------------------------------------- process state


@pytest.fixture(autouse=True)
def _restore_process_state():
    """Commands run in-process (``main([...])``) may set env vars and switch progress bars off: undo it."""
    from datasets.utils.tqdm import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    env = dict(os.environ)
    disabled = are_progress_bars_disabled()
    yield
    os.environ.clear()
    os.environ.update(env)
    (disable_progress_bars if disabled else enable_progress_bars)()


# ---------------------------------------------------------------------------------------- tiny random models


@pytest.fixture(scope="session")
def gpt2_lm_session() -> Tiny:
    tokenizer = tiny_models.gpt2_tokenizer()
    return Tiny(tiny_models.tiny_gpt2(tokenizer), tokenizer)


@pytest.fixture(scope="session")
def llama_lm_session() -> Tiny:
    tokenizer = tiny_models.llama_tokenizer()
    return Tiny(tiny_models.tiny_llama(tokenizer), tokenizer)


@pytest.fixture
def gpt2_lm(gpt2_lm_session: Tiny) -> Tiny:
    """Tiny GPT-2 (no BOS added by its tokenizer), a fresh copy per test."""
    return Tiny(copy.deepcopy(gpt2_lm_session.model), copy.deepcopy(gpt2_lm_session.tokenizer))


@pytest.fixture
def llama_lm(llama_lm_session: Tiny) -> Tiny:
    """Tiny Llama (its tokenizer adds ``<s>`` and has a chat template), a fresh copy per test."""
    return Tiny(copy.deepcopy(llama_lm_session.model), copy.deepcopy(llama_lm_session.tokenizer))


@pytest.fixture(scope="session")
def gpt2_lm_dir(tmp_path_factory, gpt2_lm_session: Tiny):
    """Folder holding the tiny GPT-2 and its tokenizer, written with ``save_pretrained`` (read-only use)."""
    return tiny_models.save_tiny(*gpt2_lm_session, tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def llama_lm_dir(tmp_path_factory, llama_lm_session: Tiny):
    """Folder holding the tiny Llama and its tokenizer, written with ``save_pretrained`` (read-only use)."""
    return tiny_models.save_tiny(*llama_lm_session, tmp_path_factory.mktemp("tiny-llama"))


# ---------------------------------------------------------------------------------------- Hub-API test server

HUB_USER = "tester"
HUB_TOKEN = "hf_test_token_0123456789abcdef"
"""The test server's one valid token (user :data:`HUB_USER`); tests assert it never leaks."""


@pytest.fixture(scope="session")
def hub_server_session(tmp_path_factory):
    """The Hub-API server of ``tests/hub_server.py`` on 127.0.0.1 (random port), one per session."""
    from hub_server import HubServer

    server = HubServer(tmp_path_factory.mktemp("hub-server"), {HUB_TOKEN: HUB_USER}).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hub_cache_session(tmp_path_factory):
    """Download caches for the test server's files, kept apart from the user's own caches."""
    return tmp_path_factory.mktemp("hub-cache")


@pytest.fixture
def hub(hub_server_session, hub_cache_session, monkeypatch):
    """Point ``huggingface_hub``, ``datasets`` and ``transformers`` at the test server for one test.

    Sets ``HF_ENDPOINT``, ``HF_HUB_DISABLE_XET=1`` and ``HF_TOKEN`` (:data:`HUB_TOKEN`), and patches the
    module constants the libraries read those into at import time; all is restored after the test, so
    tests that do not ask for ``hub`` never reach the server.
    """
    import datasets.config
    from huggingface_hub import constants

    url = hub_server_session.url
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {"127.0.0.1"})
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")  # TRL's trainers report to the endpoint otherwise
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache_session / "hub"))
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", url)
    monkeypatch.setattr(
        datasets.config, "HUB_DATASETS_URL", url + "/datasets/{repo_id}/resolve/{revision}/{path}"
    )
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", hub_cache_session / "datasets")
    monkeypatch.setattr(
        datasets.config, "DOWNLOADED_DATASETS_PATH", hub_cache_session / "datasets" / "downloads"
    )
    monkeypatch.setattr(
        datasets.config, "EXTRACTED_DATASETS_PATH", hub_cache_session / "datasets" / "downloads" / "extracted"
    )
    return hub_server_session


@pytest.fixture(scope="session")
def lm_dirs(tmp_path_factory):
    """Tiny GPT-2 and Llama models saved to folders (two Llamas of different seeds, same tokenizer)."""
    root = tmp_path_factory.mktemp("lms")
    gtok, ltok = tiny_models.gpt2_tokenizer(), tiny_models.llama_tokenizer()
    return {
        "gpt2": str(tiny_models.save_tiny(tiny_models.tiny_gpt2(gtok), gtok, root / "gpt2")),
        "llama": str(tiny_models.save_tiny(tiny_models.tiny_llama(ltok), ltok, root / "llama")),
        "llama2": str(tiny_models.save_tiny(tiny_models.tiny_llama(ltok, seed=1), ltok, root / "llama2")),
    }
