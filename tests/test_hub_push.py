"""push_curated against the Hub-API test server (tests/hub_server.py), with the real client libraries.

Also the server's own round trips (``datasets`` push/load, ``transformers`` push/load), which the
training part relies on.
"""

from __future__ import annotations

import logging
import socket
import traceback
import uuid

import pytest
import torch
from conftest import HUB_TOKEN, HUB_USER
from datasets import Dataset, DatasetDict, load_dataset
from huggingface_hub import DatasetCard, HfApi, constants, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from real_hub import ConfigError, Provenance, Statistics, load_curated
from real_hub.errors import HubError
from real_hub.hub.curated import push_curated

PROV = Provenance(source="hh", embedder="m", strategy="dissimilar", budget=0.5, seed=1, versions={"x": "1"})
STATS = Statistics(rows_in=10, rows_out={"train": 5}, skipped={"tied_scores": 1}, similarity={"mean": 0.25})


def pairs(n: int, tag: str) -> Dataset:
    return Dataset.from_dict(
        {
            "prompt": [f"{tag} prompt {i}" for i in range(n)],
            "chosen": [f"good {tag} {i}" for i in range(n)],
            "rejected": [f"bad {tag} {i}" for i in range(n)],
            "similarity": [i / 10 for i in range(n)],
        }
    )


def new_repo() -> str:
    return f"{HUB_USER}/curated-{uuid.uuid4().hex[:8]}"


def remote_card(repo_id: str) -> DatasetCard:
    return DatasetCard.load(hf_hub_download(repo_id, "README.md", repo_type="dataset", force_download=True))


def snapshot(repo_id: str) -> tuple[str, list[str]]:
    api = HfApi()
    return api.dataset_info(repo_id).sha, sorted(api.list_repo_files(repo_id, repo_type="dataset"))


def test_two_configs_load_back_row_for_row_with_load_dataset_and_load_curated(hub):
    repo = new_repo()
    a, b = pairs(5, "a"), DatasetDict({"train": pairs(4, "b"), "test": pairs(2, "bt")})
    url = push_curated(a, repo, "dissimilar", provenance=PROV, statistics=STATS)
    sha, _ = snapshot(repo)
    assert url == f"{hub.url}/datasets/{repo}/commit/{sha}"
    push_curated(b, repo, "random", provenance=Provenance(source="hh", strategy="random", seed=3))

    assert load_dataset(repo, "dissimilar")["train"].to_list() == a.to_list()
    got_b = load_dataset(repo, "random")
    assert sorted(got_b) == ["test", "train"]
    assert got_b["train"].to_list() == b["train"].to_list()
    assert got_b["test"].to_list() == b["test"].to_list()

    curated = load_curated(repo, "dissimilar")
    assert curated.provenance == PROV
    assert curated.statistics == STATS
    assert curated.dataset["train"].to_list() == a.to_list()
    assert load_curated(repo, "random").provenance == Provenance(source="hh", strategy="random", seed=3)
    assert hub.unknown == []  # every request the clients made was one the server knows


def test_card_lists_both_configs_with_provenance_and_statistics_and_validates(hub):
    repo = new_repo()
    push_curated(pairs(3, "a"), repo, "dissimilar", provenance=PROV, statistics=STATS)
    push_curated(pairs(2, "b"), repo, "random")
    card = remote_card(repo)
    data = card.data.to_dict()
    files = HfApi().list_repo_files(repo, repo_type="dataset")

    assert [c["config_name"] for c in data["configs"]] == ["dissimilar", "random"]
    for config in data["configs"]:
        [entry] = config["data_files"]
        assert entry["split"] == "train"
        assert entry["path"].startswith(config["config_name"] + "/") and entry["path"] in files
    assert set(data["tags"]) >= {"dpo", "preference", "real-hub"}
    assert data["real_hub"]["configs"]["dissimilar"] == {
        "provenance": {
            "source": "hh",
            "embedder": "m",
            "strategy": "dissimilar",
            "budget": 0.5,
            "seed": 1,
            "versions": {"x": "1"},
        },
        "statistics": {
            "rows_in": 10,
            "rows_out": {"train": 5},
            "skipped": {"tied_scores": 1},
            "similarity": {"mean": 0.25},
        },
    }
    assert "### Config `dissimilar`" in card.text and "### Config `random`" in card.text
    assert "| budget | 0.5 |" in card.text and "| skipped.tied_scores | 1 |" in card.text
    card.validate(repo_type="dataset")  # the server's /api/validate-yaml
    broken = DatasetCard(str(card).replace("config_name: random", "name: random"))
    with pytest.raises(ValueError, match=r'configs\[1\]" must be a mapping with a string "config_name"'):
        broken.validate(repo_type="dataset")


def test_existing_config_needs_overwrite_and_the_repo_is_left_unchanged(hub):
    repo = new_repo()
    push_curated(pairs(3, "a"), repo, "dissimilar")
    push_curated(pairs(2, "b"), repo, "random")
    before = snapshot(repo)
    with pytest.raises(
        ConfigError, match=f"config 'dissimilar' already exists in dataset repo {repo}.*overwrite=True"
    ):
        push_curated(pairs(7, "z"), repo, "dissimilar")
    assert snapshot(repo) == before

    push_curated(pairs(7, "z"), repo, "dissimilar", overwrite=True)
    sha, files = snapshot(repo)
    assert sha != before[0]
    old = [f for f in before[1] if f.startswith("dissimilar/")]
    new = [f for f in files if f.startswith("dissimilar/")]
    assert len(old) == len(new) == 1 and old != new  # the old parquet was deleted in the same commit
    assert [f for f in files if f.startswith("random/")] == [f for f in before[1] if f.startswith("random/")]
    assert load_dataset(repo, "dissimilar")["train"].to_list() == pairs(7, "z").to_list()
    assert load_dataset(repo, "random")["train"].to_list() == pairs(2, "b").to_list()


def test_private_push_creates_a_private_repo_that_anonymous_callers_cannot_read(hub, tmp_path):
    repo = new_repo()
    push_curated(pairs(2, "a"), repo, "dissimilar", private=True)
    assert HfApi().dataset_info(repo).private is True
    assert hub.repos[("dataset", repo)].private is True
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo, "README.md", repo_type="dataset", token=False, cache_dir=tmp_path)
    assert load_dataset(repo, "dissimilar")["train"].to_list() == pairs(2, "a").to_list()  # with the token


def test_a_card_written_by_datasets_is_merged_and_its_config_overwritten(hub):
    repo = new_repo()
    pairs(3, "d").push_to_hub(repo)  # config "default", files data/train-*.parquet
    pairs(2, "o").push_to_hub(repo, config_name="other")
    with pytest.raises(ConfigError, match="config 'default' already exists"):
        push_curated(pairs(4, "c"), repo)
    push_curated(pairs(4, "c"), repo, overwrite=True)
    files = snapshot(repo)[1]
    assert not any(f.startswith("data/") for f in files)  # the glob data/train-* named them: deleted
    assert [c["config_name"] for c in remote_card(repo).data.configs] == ["default", "other"]
    assert load_dataset(repo, "default")["train"].to_list() == pairs(4, "c").to_list()
    assert load_dataset(repo, "other")["train"].to_list() == pairs(2, "o").to_list()


def test_a_broken_card_on_the_hub_is_named_and_never_pushed_over(hub, monkeypatch, tmp_path):
    import huggingface_hub

    from real_hub.errors import CorruptFileError

    repo = new_repo()
    push_curated(pairs(3, "a"), repo, "dissimilar")
    card = str(remote_card(repo)).splitlines(keepends=True)
    n = next(i for i, line in enumerate(card) if line.startswith("tags:"))
    card[n] = "tags: dpo: preference\n"
    broken = tmp_path / "README.md"
    broken.write_text("".join(card))
    # the Hub refuses a commit whose README.md does not parse; a card broken some other way is read so
    real = huggingface_hub.hf_hub_download

    def download(repo_id, filename, **kwargs):
        return str(broken) if filename == "README.md" else real(repo_id, filename, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    before = snapshot(repo)
    where = f"README.md of dataset repo {repo} is broken: broken YAML at line {n + 1}: mapping values"
    with pytest.raises(CorruptFileError, match="^" + where):
        push_curated(pairs(2, "b"), repo, "random")
    assert snapshot(repo) == before
    with pytest.raises(CorruptFileError, match="^" + where):
        load_curated(repo, "dissimilar")


def test_private_does_not_change_an_existing_public_repo_and_says_so(hub, caplog):
    repo = new_repo()
    push_curated(pairs(2, "a"), repo, "dissimilar")
    with caplog.at_level(logging.WARNING, logger="real_hub.hub.curated"):
        push_curated(pairs(2, "b"), repo, "random", private=True)
    assert HfApi().dataset_info(repo).private is False
    assert f"{repo} already exists and is public" in caplog.text


def test_the_token_never_appears_in_the_card_the_logs_or_errors(hub, caplog):
    for name in (None, "real_hub", "huggingface_hub", "datasets", "httpx2", "httpx"):
        caplog.set_level(logging.DEBUG, logger=name)  # those libraries set WARNING on their own loggers
    repo = new_repo()
    push_curated(pairs(2, "a"), repo, "dissimilar", provenance=PROV, token=HUB_TOKEN)
    assert HUB_TOKEN not in str(remote_card(repo))

    wrong = "hf_wrong_secret_token_42"
    with pytest.raises(HubError, match=f"dataset repo {repo}.*refused the token") as info:
        push_curated(pairs(2, "b"), repo, "random", token=wrong)
    chain = "".join(traceback.format_exception(info.value))
    assert wrong not in chain and HUB_TOKEN not in chain
    sources = {r.name.split(".")[0] for r in caplog.records}
    assert {"real_hub", "huggingface_hub"} <= sources  # the push logged at DEBUG and INFO ...
    assert HUB_TOKEN not in caplog.text and wrong not in caplog.text  # ... and no line holds a token
    assert [c["config_name"] for c in remote_card(repo).data.configs] == ["dissimilar"]
    assert all(not f.startswith("random/") for f in snapshot(repo)[1])


def test_no_token_and_a_foreign_namespace_are_hub_errors(hub, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(HubError, match="no token \\(401 Unauthorized\\).*HF_TOKEN"):
        push_curated(pairs(2, "a"), new_repo(), "dissimilar")
    repo = new_repo()  # an explicit token serves every request, reads of the private card included
    push_curated(pairs(2, "a"), repo, "dissimilar", private=True, token=HUB_TOKEN)
    push_curated(pairs(1, "b"), repo, "random", token=HUB_TOKEN)
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    assert [c["config_name"] for c in remote_card(repo).data.configs] == ["dissimilar", "random"]
    with pytest.raises(HubError, match="dataset repo someone-else/x .*no write access.*403"):
        push_curated(pairs(2, "a"), "someone-else/x", "dissimilar")


def test_an_unreachable_hub_is_a_hub_error(hub, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(HubError, match=f"127.0.0.1:{port} failed: could not reach the Hub.*HF_ENDPOINT"):
        push_curated(pairs(2, "a"), new_repo(), "dissimilar")


def test_bad_names_are_refused_before_any_request(hub):
    count = len(hub.repos)
    with pytest.raises(ConfigError, match="not a Hub repo id"):
        push_curated(pairs(2, "a"), "no/such/repo", "dissimilar")
    with pytest.raises(ConfigError, match="config name 'a b'"):
        push_curated(pairs(2, "a"), new_repo(), "a b")
    assert len(hub.repos) == count


# ---------------------------------------------------------------------------------------- the server itself


def test_server_refuses_a_second_create_and_unknown_repos(hub):
    api, repo = HfApi(), new_repo()
    api.create_repo(repo, repo_type="dataset")
    with pytest.raises(HfHubHTTPError) as info:
        api.create_repo(repo, repo_type="dataset")
    assert info.value.response.status_code == 409
    assert api.create_repo(repo, repo_type="dataset", exist_ok=True) == f"{hub.url}/datasets/{repo}"
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info(f"{HUB_USER}/never-created")


def test_datasets_push_to_hub_round_trips_configs(hub):
    repo, a, b = new_repo(), pairs(3, "a"), pairs(2, "b")
    a.push_to_hub(repo, config_name="one")
    b.push_to_hub(repo, config_name="two")
    assert load_dataset(repo, "one")["train"].to_list() == a.to_list()
    assert load_dataset(repo, "two")["train"].to_list() == b.to_list()


def test_a_tiny_model_round_trips_through_the_server(hub, gpt2_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    repo = f"{HUB_USER}/tiny-gpt2-{uuid.uuid4().hex[:8]}"
    gpt2_lm.model.push_to_hub(repo)
    gpt2_lm.tokenizer.push_to_hub(repo)
    model = AutoModelForCausalLM.from_pretrained(repo).eval()
    tokenizer = AutoTokenizer.from_pretrained(repo)
    text = "Human: Tell me a joke. Assistant: Why did the chicken cross the road?"
    ids = gpt2_lm.tokenizer(text, return_tensors="pt").input_ids
    assert tokenizer(text).input_ids == ids[0].tolist()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, gpt2_lm.model(ids).logits)
