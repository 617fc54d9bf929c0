"""End to end in headless Chromium: load, filter, click a row, next, and label pairs across a reload;
and, on a folder written by ``real-hub demo`` (the real MiniLM, so marked slow): the page opens on
``dissimilar``, the table shows the start of chosen and rejected, the word diffs wrap between words
(checked on the glyphs' positions), and the heatmap is drawn from the saved ``candidate_similarity``.

Needs Debian's ``chromium`` (``apt-get install -y chromium``) and ``pip install playwright`` (never
``playwright install``: the system browser is used). Skipped, with the reason, when either is absent.
The screenshot is written to ``tests/artifacts/space_browser.png`` (the folder ignores itself).
"""

from __future__ import annotations

import html as htmllib
import logging
import re
import shutil
from pathlib import Path

import pytest
from space_helpers import HashEncoder, launched

from real_hub import load_annotations

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
logger = logging.getLogger(__name__)

if not Path(CHROMIUM).exists():
    pytest.skip("Chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)


@pytest.fixture(scope="module")
def labels_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("labels")


@pytest.fixture(scope="module")
def server(labels_dir):
    from real_hub.space.app import build_app

    app = build_app(None, annotations_dir=labels_dir, encoder=HashEncoder(), scheduler=None)
    with launched(app) as url:
        yield url, app


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    with sync_api.sync_playwright() as pw:
        profile = tmp_path_factory.mktemp("chromium-profile")
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1400, "height": 1800},
        )
        pg = context.new_page()
        pg.set_default_timeout(20_000)
        sync_api.expect.set_options(timeout=60_000)  # a busy machine: waits are for updates, not speed
        yield pg
        context.close()


def text_of(pg, selector: str) -> str:
    return pg.locator(selector).inner_text()


def wait_text(pg, selector: str, pattern: str) -> re.Match:
    sync_api.expect(pg.locator(selector)).to_contain_text(re.compile(pattern))
    return re.search(pattern, text_of(pg, selector))


def test_filter_click_and_next_in_the_browser(server, page):
    url, app = server
    page.goto(url)
    total = int(wait_text(page, "#rh-summary", r"(\d+) pair\(s\) match").group(1))
    pairs = app.real_hub_cache.get("demo").configs["dissimilar"]["train"]
    assert total == len(pairs)
    search = page.locator("#rh-search textarea, #rh-search input").first
    search.fill("sleep")
    search.press("Enter")
    hits = [
        i
        for i, r in enumerate(pairs)
        if any("sleep" in str(r[c]).lower() for c in ("prompt", "chosen", "rejected"))
    ]
    wait_text(page, "#rh-summary", rf"(?<!\d){len(hits)} pair\(s\) match")
    assert 0 < len(hits) < total
    rows = page.locator("#rh-table [role=row][data-index]")  # body rows (the header has no data-index)
    sync_api.expect(rows).to_have_count(len(hits))
    page.locator('#rh-table [data-testid="cell-1-5"]').click()
    header = wait_text(page, "#rh-pair-header", r"Pair 2 of (\d+) \(row (\d+)\)")
    assert int(header.group(1)) == len(hits) and int(header.group(2)) == hits[1]
    first_words = pairs[hits[1]]["chosen"].split()[:3]
    sync_api.expect(page.locator("#rh-chosen")).to_contain_text(" ".join(first_words))
    page.locator("#rh-next").click()
    header = wait_text(page, "#rh-pair-header", r"Pair 3 of \d+ \(row (\d+)\)")
    assert int(header.group(1)) == hits[2]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")  # test output, never committed
    shot = ARTIFACTS / "space_browser.png"
    page.screenshot(path=str(shot), full_page=True)
    logger.warning("screenshot: %s", shot)
    assert shot.stat().st_size > 10_000


def _settled(page) -> None:
    """Wait until the annotation panel shows no pending update."""
    for sel in ("#rh-progress", "#rh-ann-a", "#rh-ann-b"):
        sync_api.expect(page.locator(sel)).not_to_contain_text(re.compile(r"processing|\d+\.\d+s"))


def _label(page, button: str) -> tuple[str, str]:
    """Click ``button`` on the pair shown; return the texts shown as A and B."""
    _settled(page)
    a = page.locator("#rh-ann-a .rh-turn").inner_text()
    b = page.locator("#rh-ann-b .rh-turn").inner_text()
    before = page.locator("#rh-progress").inner_text()
    page.locator(f"#rh-label-{button}").click()
    sync_api.expect(page.locator("#rh-progress")).not_to_have_text(before)
    _settled(page)
    return a.strip(), b.strip()


def _start(page, name: str) -> None:
    page.get_by_role("tab", name="Annotate").click()
    box = page.locator("#rh-annotator textarea, #rh-annotator input").first
    box.fill(name)
    page.locator("#rh-start").click()
    sync_api.expect(page.locator("#rh-progress")).to_contain_text("labelled")
    _settled(page)


def test_labels_survive_a_reload_with_the_right_orientation(server, page, labels_dir):
    url, app = server
    page.goto(url)
    wait_text(page, "#rh-summary", r"pair\(s\) match")
    _start(page, "ann")
    wait_text(page, "#rh-progress", r"labelled 0 / to label")
    shown = [(_label(page, b), b) for b in ("a", "b", "a")]
    wait_text(page, "#rh-progress", r"labelled 3 / to label")
    page.reload()
    wait_text(page, "#rh-summary", r"pair\(s\) match")
    _start(page, "ann")
    wait_text(page, "#rh-progress", r"labelled 3 / to label")
    shown.append((_label(page, "b"), "b"))
    wait_text(page, "#rh-progress", r"labelled 4 / to label")

    files = list(labels_dir.glob("*.jsonl"))
    lines = [line for f in files for line in f.read_text().splitlines() if line.strip()]
    assert len(lines) == 4
    pairs = app.real_hub_cache.get("demo").configs["dissimilar"]["train"]
    prefs, report = load_annotations(labels_dir, pairs)
    assert report.labels == 4 and report.rows_out == 4 and report.annotators == ["ann"]
    assert len(set(prefs["pair_id"])) == 4

    def flat(text: str) -> str:
        return " ".join(htmllib.unescape(text).split())

    for row, ((a, b), button) in zip(prefs, shown):
        better, worse = (a, b) if button == "a" else (b, a)
        assert flat(row["chosen"]) == flat(better)
        assert flat(row["rejected"]) == flat(worse)


# ------------------------------------------------------------------------------------------------------
# A curated folder written by `real-hub demo` (the real MiniLM), as a user opens it with `real-hub space`

WORD_LINES = """(selector) => {
  // Every word of the diff: on how many lines its glyphs lie (2+ means the word was cut across lines).
  const root = document.querySelector(selector + ' .textfield');
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const words = [];
  const tops = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const re = /\\S+/g;
    let m;
    while ((m = re.exec(node.textContent))) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const rects = Array.from(range.getClientRects()).filter((r) => r.width > 0);
      const lines = new Set(rects.map((r) => Math.round(r.top / 4)));
      rects.forEach((r) => tops.push(Math.round(r.top / 4)));
      words.push([m[0], lines.size]);
    }
  }
  return {words: words, lines: new Set(tops).size};
}"""


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory) -> Path:
    from real_hub.cli.main import main

    folder = tmp_path_factory.mktemp("demo") / "demo-output"
    assert main(["demo", "--output-dir", str(folder), "--quiet"]) == 0
    return folder


@pytest.fixture(scope="module")
def dissimilar(demo_folder):
    """The folder's dissimilar pairs, read the way a user reads them."""
    from datasets import load_dataset

    return load_dataset(str(demo_folder), "dissimilar", split="train")


@pytest.fixture(scope="module")
def folder_url(demo_folder, tmp_path_factory):
    from real_hub.space.app import build_app

    app = build_app(str(demo_folder), annotations_dir=tmp_path_factory.mktemp("ann"), scheduler=None)
    with launched(app) as url:
        yield url


def _open(pg, url: str, position: int = 0) -> None:
    """Open the app and show the pair at ``position`` of the first config."""
    pg.goto(url)
    sync_api.expect(pg.locator("#rh-pair-header")).to_contain_text("Pair 1 of", timeout=120_000)
    if position:
        box = pg.locator("#rh-position input")
        box.fill(str(position))
        box.press("Enter")
        sync_api.expect(pg.locator("#rh-pair-header")).to_contain_text(f"Pair {position + 1} of")


@pytest.mark.slow
def test_a_demo_folder_opens_on_the_dissimilar_config(folder_url, page, dissimilar):
    _open(page, folder_url)
    assert page.locator("#rh-config input").input_value() == "dissimilar"
    wait_text(page, "#rh-summary", rf"(?<!\d){len(dissimilar)} pair\(s\) match")
    sync_api.expect(page.locator("#rh-pair-header")).to_contain_text("strategy: dissimilar")


@pytest.mark.slow
def test_the_table_shows_the_start_of_chosen_and_rejected(folder_url, page, dissimilar):
    from real_hub.space.render import preview

    _open(page, folder_url)
    table = page.locator("#rh-table").bounding_box()
    for column, name in ((6, "chosen"), (7, "rejected")):
        cell = page.locator(f'#rh-table [data-testid="cell-0-{column}"]')
        sync_api.expect(cell).to_have_text(preview(dissimilar[0][name]))
        box = cell.bounding_box()  # inside the table's visible box, and wide enough to read
        assert table["x"] <= box["x"] and box["x"] + box["width"] <= table["x"] + table["width"] + 1
        assert box["width"] >= 0.15 * table["width"], (name, box, table)


@pytest.mark.slow
def test_the_diff_wraps_between_words(folder_url, page, dissimilar):
    from real_hub.validate import response_text  # a conversational response is its message's content

    longest = max(range(len(dissimilar)), key=lambda i: len(response_text(dissimilar[i]["chosen"])))
    _open(page, folder_url, longest)
    sync_api.expect(page.locator("#rh-chosen")).to_contain_text(
        " ".join(response_text(dissimilar[longest]["chosen"]).split()[:4])
    )
    for selector, name in (("#rh-chosen", "chosen"), ("#rh-rejected", "rejected")):
        found = page.evaluate(WORD_LINES, selector)
        assert [w for w, _ in found["words"]] == response_text(dissimilar[longest][name]).split()
        assert [w for w, lines in found["words"] if lines > 1] == [], f"words cut across lines in {name}"
    assert page.evaluate(WORD_LINES, "#rh-chosen")["lines"] >= 3  # the text did wrap, several times


@pytest.mark.slow
def test_the_heatmap_shows_the_candidates_of_a_saved_set(folder_url, page, dissimilar):
    _open(page, folder_url, 2)
    row = dissimilar[2]
    matrix = row["candidate_similarity"]
    page.get_by_role("tab", name="Plots").click()
    heat = page.locator("#rh-heatmap")
    sync_api.expect(heat.locator("table.rh-heatmap tr")).to_have_count(len(matrix) + 1)
    selected = heat.locator("td.rh-selected")
    sync_api.expect(selected).to_have_count(2)
    want = f"{matrix[row['chosen_index']][row['rejected_index']]:.3f}"
    assert [selected.nth(k).get_attribute("title") for k in range(2)] == [want, want]
    assert f"{row['similarity']:.3f}" == want  # the outlined cell is the pair's own similarity
    headers = heat.locator("th").all_inner_texts()
    assert f"#{row['chosen_index']} (chosen)" in headers and f"#{row['rejected_index']} (rejected)" in headers
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")  # test output, never committed
    page.screenshot(path=str(ARTIFACTS / "space_heatmap.png"), full_page=True)
