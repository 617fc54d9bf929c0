"""CPU time of ``ds.map(SelectPairs(strategy))``, for A/B checks of two trees on a loaded machine.

Wall clock on a shared machine moves with the load; CPU time of the process moves far less. Run it once per
tree, alternating, and compare medians::

    for i in 1 2 3; do for tree in OLD NEW; do (cd $tree && PYTHONPATH=$tree OMP_NUM_THREADS=1 \
        python benchmarks/cpu_select.py); done; done
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import datasets  # noqa: E402
from bench_select import build_dataset  # noqa: E402

from real_hub import SelectPairs  # noqa: E402

FOLDER = os.environ.get("CPU_SELECT_DATA", "/tmp/cpu_sel_data")


def main() -> None:
    datasets.disable_progress_bars()
    if os.path.exists(f"{FOLDER}/done"):
        ds = datasets.load_from_disk(f"{FOLDER}/ds")
    else:
        ds = build_dataset(5000, 8, 384, 0, FOLDER)
        ds.save_to_disk(f"{FOLDER}/ds")
        Path(f"{FOLDER}/done").touch()
    out = {}
    for strategy in ("dissimilar", "random"):
        sp = SelectPairs(strategy)
        features = sp.output_features(ds.features)
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            ds.map(
                sp,
                batched=True,
                batch_size=1000,
                remove_columns=ds.column_names,
                features=features,
                load_from_cache_file=False,
                keep_in_memory=True,
            )
            best = min(best, time.process_time() - start)
        out[strategy] = best
    print(json.dumps(out))


if __name__ == "__main__":
    main()
