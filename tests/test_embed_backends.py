"""EmbedResponses' optional backends: static (model2vec, distilled once and cached) and exported graphs
(ONNX Runtime, OpenVINO), on a tiny random sentence-transformers BERT."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
from datasets import Dataset, List, Value
from datasets.fingerprint import Hasher
from tiny_models import save_tiny_sentence_transformer

from real_hub import EmbedResponses, encoders
from real_hub.errors import ConfigError, MissingExtraError
from real_hub.models import clear_model_cache

pytest.importorskip("model2vec")

PAIRS = {
    "prompt": ["p0", "p1", "p2"],
    "chosen": [
        "Hello there, how are you today?",
        "The capital of France is Paris.",
        "Mix flour, water, salt and yeast, then let it rise for an hour or two before baking.",
    ],
    "rejected": ["No.", "I cannot help with that request, because it could hurt someone.", "Water boils."],
}
CANDIDATES = {
    "prompt": ["p0", "p1"],
    "responses": [["The cat sat on the mat.", "Thank you!", "hello"], ["one two three", "a b", "c", "dog"]],
}


@pytest.fixture(scope="session")
def tiny_st(tmp_path_factory) -> str:
    """A random 2-layer BERT sentence-transformers model folder (mean pooling, normalised)."""
    return str(save_tiny_sentence_transformer(tmp_path_factory.mktemp("tiny-st")))


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("real-hub-cache")


@pytest.fixture
def cache(monkeypatch, shared_cache):
    """Distilled models and exports go to one folder for the session (a test may point elsewhere)."""
    monkeypatch.setenv("REAL_HUB_CACHE", str(shared_cache))
    return shared_cache


@pytest.fixture
def count_distills(monkeypatch):
    calls: list[str] = []
    real = encoders.distill_static

    def counting(source, target, **kwargs):
        calls.append(source)
        return real(source, target, **kwargs)

    monkeypatch.setattr(encoders, "distill_static", counting)
    return calls


def reference(tiny_st: str, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(tiny_st, device="cpu").encode(texts, convert_to_numpy=True)


def test_static_backend_through_map_is_normalised_with_declared_size(tiny_st, cache):
    from model2vec import StaticModel

    ds = Dataset.from_dict(PAIRS)
    emb = EmbedResponses(tiny_st, backend="static", static_dims=16)
    features = emb.output_features(ds.features)
    assert features["chosen_embedding"] == List(Value("float32"), length=16)
    out = ds.map(emb, batched=True, features=features)
    assert out.features["rejected_embedding"] == List(Value("float32"), length=16)
    vectors = np.asarray(list(out["chosen_embedding"]) + list(out["rejected_embedding"]), dtype=np.float64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    # Independently: the cached model2vec folder, loaded and run by model2vec itself, then normalised.
    (folder,) = (cache / "static").iterdir()
    direct = StaticModel.from_pretrained(str(folder), force_download=False).encode(
        PAIRS["chosen"] + PAIRS["rejected"]
    )
    direct = direct / np.linalg.norm(direct, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, direct, atol=1e-6)


def test_static_candidates_get_one_vector_per_response(tiny_st, cache):
    ds = Dataset.from_dict(CANDIDATES)
    emb = EmbedResponses(tiny_st, backend="static", static_dims=16)
    out = ds.map(emb, batched=True, features=emb.output_features(ds.features))
    assert out.features["responses_embedding"] == List(List(Value("float32"), length=16))
    assert [len(r) for r in out["responses_embedding"]] == [3, 4]
    flat = np.concatenate([np.asarray(r) for r in out["responses_embedding"]])
    np.testing.assert_allclose(np.linalg.norm(flat, axis=1), 1.0, atol=1e-6)


def test_distillation_happens_once_then_loads_from_disk(tiny_st, tmp_path, monkeypatch, count_distills):
    monkeypatch.setenv("REAL_HUB_CACHE", str(tmp_path))
    clear_model_cache()
    texts = ["Hello there", "The cat sat on the mat."]
    first = EmbedResponses(tiny_st, backend="static", static_dims=8).encoder().encode(texts)
    assert count_distills == [tiny_st]
    clear_model_cache()  # a new process: nothing in memory, the folder on disk
    again = EmbedResponses(tiny_st, backend="static", static_dims=8).encoder().encode(texts)
    assert count_distills == [tiny_st]
    np.testing.assert_array_equal(first, again)
    assert len(list((tmp_path / "static").iterdir())) == 1
    # Other settings are another cache entry, distilled once more.
    clear_model_cache()
    assert EmbedResponses(tiny_st, backend="static", static_dims=4).dim == 4
    assert len(count_distills) == 2
    assert len(list((tmp_path / "static").iterdir())) == 2


def test_a_model2vec_folder_loads_as_it_is(tiny_st, cache, tmp_path, count_distills):
    from model2vec.distill import distill

    folder = tmp_path / "m2v"
    distill(tiny_st, pca_dims=8, device="cpu").save_pretrained(str(folder))
    clear_model_cache()
    emb = EmbedResponses(str(folder), backend="static")
    assert emb.dim == 8
    assert count_distills == []


@pytest.mark.parametrize("st_backend", ["onnx", "openvino"])
def test_exported_backends_match_torch_through_map(tiny_st, cache, st_backend):
    pytest.importorskip("onnxruntime" if st_backend == "onnx" else "openvino")
    ds = Dataset.from_dict(PAIRS)
    emb = EmbedResponses(tiny_st, st_backend=st_backend, batch_size=2)  # batches of different lengths
    features = emb.output_features(ds.features)
    assert features["chosen_embedding"] == List(Value("float32"), length=32)
    out = ds.map(emb, batched=True, features=features)
    vectors = np.asarray(list(out["chosen_embedding"]) + list(out["rejected_embedding"]))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, reference(tiny_st, PAIRS["chosen"] + PAIRS["rejected"]), atol=1e-4)
    assert len(list((cache / "onnx").iterdir())) == 1  # one export serves both runtimes


def test_equal_processors_hash_equal_and_options_change_the_fingerprint(tiny_st):
    a = EmbedResponses(tiny_st, backend="static", static_dims=16)
    b = EmbedResponses(tiny_st, backend="static", static_dims=16)
    assert Hasher.hash(a) == Hasher.hash(b)
    others = [
        EmbedResponses(tiny_st, backend="static", static_dims=32),
        EmbedResponses(tiny_st, backend="static", static_dims=None),
        EmbedResponses(tiny_st, backend="sentence-transformers"),
        EmbedResponses(tiny_st, st_backend="onnx"),
        EmbedResponses(tiny_st, st_backend="openvino"),
    ]
    hashes = {Hasher.hash(e) for e in [a, *others]}
    assert len(hashes) == 1 + len(others)
    assert Hasher.hash(EmbedResponses(tiny_st, st_backend="onnx")) == Hasher.hash(others[3])


def test_pickled_state_is_the_configuration_even_after_loading(tiny_st, cache):
    emb = EmbedResponses(tiny_st, backend="static", static_dims=16)
    before = pickle.dumps(emb)
    emb.encoder()  # loads the static model
    after = pickle.dumps(emb)
    assert before == after and len(after) < 2000
    clone = pickle.loads(after)
    assert clone.config() == emb.config() and clone.static_dims == 16 and clone.backend == "static"


@pytest.mark.parametrize(
    ("module", "kwargs", "extra"),
    [
        ("model2vec", {"backend": "static"}, "static"),
        ("skeletoken", {"backend": "static"}, "static"),
        ("onnxruntime", {"st_backend": "onnx"}, "onnx"),
        ("openvino", {"st_backend": "openvino"}, "openvino"),
    ],
)
def test_a_missing_extra_names_what_to_install(tiny_st, tmp_path, monkeypatch, module, kwargs, extra):
    monkeypatch.setenv("REAL_HUB_CACHE", str(tmp_path))  # empty: the static model must be distilled
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    clear_model_cache()
    with pytest.raises(MissingExtraError, match=rf"pip install 'real-hub\[{extra}\]'") as info:
        EmbedResponses(tiny_st, **kwargs).encoder()
    assert info.value.extra == extra
    assert isinstance(info.value, ImportError)


def test_bad_backend_options_are_config_errors(tiny_st):
    with pytest.raises(ConfigError, match="st_backend must be one of"):
        EmbedResponses(tiny_st, st_backend="tensorrt")
    with pytest.raises(ConfigError, match="does not apply to backend='causal-lm'"):
        EmbedResponses(tiny_st, backend="causal-lm", st_backend="onnx")
    with pytest.raises(ConfigError, match="static_dims"):
        EmbedResponses(tiny_st, backend="static", static_dims=0)
