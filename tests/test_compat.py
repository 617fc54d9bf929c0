"""Each read of another library's internals (real_hub/compat.py) still finds what it reads.

When one fails, the installed version of that library moved the internal: the message names it.
"""

from __future__ import annotations

import re

import datasets
import pytest
from datasets import Dataset

from real_hub import compat

MOVED = f"datasets {datasets.__version__} moved an internal real_hub/compat.py reads"


def test_the_running_map_call_and_its_dataset_are_found(tmp_path):
    Dataset.from_dict({"x": [1, 2, 3]}).save_to_disk(tmp_path / "ds")
    ds = datasets.load_from_disk(tmp_path / "ds")
    seen = []

    def probe(batch):
        seen.append((compat.running_map_call(), compat.running_map_dataset()))
        return batch

    ds.map(probe, batched=True, batch_size=2, load_from_cache_file=False)
    (call, dataset), (call2, _) = seen
    assert call is not None and call == call2, f"{MOVED}: the _map_single frame"
    assert dataset is not None and compat.dataset_fingerprint(dataset) == ds._fingerprint, (
        f"{MOVED}: Dataset.map's self, or Dataset._fingerprint"
    )


def test_outside_a_map_nothing_is_found():
    assert compat.running_map_call() is None and compat.running_map_dataset() is None
    assert compat.dataset_fingerprint(object()) is None


def test_trl_still_computes_reference_logps_through_the_routed_call():
    import inspect

    import trl
    from trl import DPOTrainer

    moved = f"trl {trl.__version__} moved DPOTrainer.{compat.TRL_PRECOMPUTE}, which real_hub/compat.py routes"
    hook = getattr(DPOTrainer, compat.TRL_PRECOMPUTE, None)
    assert hook is not None, moved
    assert list(inspect.signature(hook).parameters) == compat.TRL_PRECOMPUTE_PARAMETERS, moved
    assert f"self.{compat.TRL_PRECOMPUTE}(" in inspect.getsource(DPOTrainer.__init__), moved

    class Probe(DPOTrainer):
        def mine(self, dataset, name, batch_size):
            return dataset

    assert getattr(compat.route_trl_precompute(Probe, "mine"), compat.TRL_PRECOMPUTE) is Probe.mine


def test_routing_into_a_trainer_without_the_hook_names_the_trl_version(monkeypatch):
    import trl
    from trl import DPOTrainer

    monkeypatch.delattr(DPOTrainer, compat.TRL_PRECOMPUTE)
    with pytest.raises(RuntimeError, match=rf"trl {re.escape(trl.__version__)} has no DPOTrainer"):
        compat.route_trl_precompute(type("Probe", (DPOTrainer,), {"mine": lambda *a: None}), "mine")
