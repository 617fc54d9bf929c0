"""The real-hub Space: browse, plot and annotate a curated preference set.

Deploys unchanged as a Hugging Face Space (``sdk: gradio``). Settings, all optional, as Space variables:

- ``REAL_HUB_SOURCE``: the curated set shown first (Hub dataset id; default: the embedded demo).
- ``REAL_HUB_LABELS_DIR``: local annotation folder (default: ``labels``).
- ``REAL_HUB_LABELS_REPO`` (+ the secret ``HF_TOKEN``): a dataset repo the annotations are pushed to
  every ``REAL_HUB_LABELS_EVERY`` minutes (default 5) by ``huggingface_hub.CommitScheduler``.

Locally, ``real-hub space [SOURCE]`` runs the same app.
"""

from __future__ import annotations

import os

from real_hub.space.app import CSS, build_app

demo = build_app(os.environ.get("REAL_HUB_SOURCE") or None)

if __name__ == "__main__":
    demo.launch(css=CSS)
