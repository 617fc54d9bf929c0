"""``real-hub space``: the Space's app (browse, plot and annotate a curated set) on this machine."""

from __future__ import annotations

import argparse
from typing import Any

from ._utils import add_common_options

EXAMPLES = """examples:
  real-hub space                       # the embedded demo, selected in memory
  real-hub space demo-output           # a folder written by `real-hub demo` or save_curated
  real-hub space me/hh-real --port 7861 --annotations-dir labels
annotations go to --annotations-dir (or --labels-dir); set REAL_HUB_LABELS_REPO (and HF_TOKEN) to also
push them to a Hub dataset.
"""


def register(sub: Any) -> None:
    """Add the ``space`` command."""
    p = sub.add_parser(
        "space",
        help="Launch the browsing and annotation app locally.",
        description="Launch the Gradio app of the real-hub Space: browse the pairs of a curated set "
        "(filters, word diffs, plots) and annotate them.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "source", nargs="?", default=None, help="Hub dataset id or local folder (default: the embedded demo)."
    )
    p.add_argument("--host", default="127.0.0.1", help="Address to serve on (default: %(default)s).")
    p.add_argument("--port", type=int, default=None, help="Port (default: gradio's, 7860 or the next free).")
    p.add_argument(
        "--annotations-dir",
        "--labels-dir",
        dest="labels_dir",
        default=None,
        help="Annotation folder (default: $REAL_HUB_LABELS_DIR or ./labels).",
    )
    p.add_argument("--share", action="store_true", help="Also open a public gradio.live link.")
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the app and serve it until interrupted."""
    from ..space.app import launch

    launch(
        args.source,
        annotations_dir=args.labels_dir,
        server_name=args.host,
        server_port=args.port,
        share=args.share,
    )
    return 0
