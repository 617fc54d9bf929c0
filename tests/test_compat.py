"""Each read of another library's internals (real_hub/compat.py) still finds what it reads.

When one fails, the installed version of that library moved the internal: the message names it.
"""

from __future__ import annotations

import datasets
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
