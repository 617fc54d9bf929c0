"""The Space's budget-curve view: the table and plot that ``real-hub budget-curve`` wrote into a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..real.budget_curve_report import CURVE_FILES

NO_CURVE = (
    "_No budget curve in {where}: `real-hub budget-curve DATA --output-dir FOLDER` writes "
    "`budget_curve.md` and `budget_curve.png` there._"
)


def budget_curve_view(folder: str | Path | None) -> tuple[str, Any]:
    """The Markdown tables and the plot (a PIL image) of the budget curve in ``folder``, or a note.

    The Markdown's own title and image link are left out: the page shows the image beside it.
    """
    where = str(folder or "").strip()
    path = Path(where).expanduser() if where else None
    if path is None or not path.is_dir():
        return NO_CURVE.format(where=f"`{where}` (not a local folder)" if where else "this source"), None
    markdown, plot = path / CURVE_FILES["markdown"], path / CURVE_FILES["plot"]
    if not markdown.is_file():
        return NO_CURVE.format(where=f"`{where}`"), None
    lines = [
        line
        for line in markdown.read_text(encoding="utf-8").splitlines()
        if line != "# Budget curve" and not line.startswith("![budget curve]")
    ]
    image = None
    if plot.is_file():
        from PIL import Image

        with Image.open(plot) as img:
            image = img.copy()
    return "\n".join(lines).strip() + "\n", image
