"""The HTML report in a real browser (Playwright's Python API driving the system Chromium; its own
browser download is not available here): no broken image, sorting and filtering, worst-k, zoom at
full resolution, the glossary from every header, run data never executed."""

import json

import pytest
from PIL import Image

from ix2x.reports import write_report


@pytest.fixture(scope="module")
def report(run_dir, tmp_path_factory):
    return write_report([run_dir], tmp_path_factory.mktemp("browse") / "report.html")


@pytest.fixture
def page(browser, report):
    pg = browser.new_page(viewport={"width": 1400, "height": 900})
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(report.as_uri())
    pg.wait_for_load_state("load")
    yield pg
    pg.close()
    assert not errors, errors


def _records(run_dir):
    return [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines() if x.strip()]


def _visible_rows(pg):
    return pg.eval_on_selector_all("#samples tbody tr", "rs => rs.map(r => ({sample: r.dataset.sample, "
                                   "editor: r.dataset.editor, finding: r.dataset.finding}))")


def test_no_broken_image_on_any_page(page):
    seen = 0
    for _ in range(10):
        # Lazy images load when scrolled to; decode() resolves only for an image that loaded.
        ok = page.evaluate("Promise.all(Array.from(document.images).map(i => { i.loading = 'eager'; "
                           "return i.decode().then(() => i.naturalWidth > 0, () => false); }))")
        assert all(ok), f"{ok.count(False)} of {len(ok)} images are broken"
        seen += len(ok)
        info = page.inner_text("#page-info")
        if info.startswith("page 3 of 3"):
            break
        page.click("#next")
    assert info.startswith("page 3 of 3") and seen > 60


def test_sorting_by_a_metric_puts_the_worst_first(page, run_dir):
    values = {(r["sample_id"], r["editor"]): r["metrics"]["darkness_t"]["darkness"]
              for r in _records(run_dir) if r["status"] == "ok"}
    worst = min(values, key=values.get)  # darkness: higher is better
    sort = page.locator("#samples th[data-sort]", has_text="darkness |1-x|").locator("button.sort")
    sort.click()
    first = _visible_rows(page)[0]
    assert (first["sample"], first["editor"]) == worst
    assert "worst first" in page.inner_text("#page-info")
    sort.click()  # again: best first
    first = _visible_rows(page)[0]
    assert (first["sample"], first["editor"]) == max(values, key=values.get)


def test_worst_k_view(page, run_dir):
    values = sorted(r["metrics"]["out_of_mask_change"]["mae"] for r in _records(run_dir) if r["status"] == "ok")
    page.select_option("#worst-metric", label="out-of-mask MAE")
    page.fill("#worst-k", "3")
    page.click("#worst-go")
    shown = page.eval_on_selector_all("#samples tbody td[data-col='out_of_mask_change.mae']",
                                      "ts => ts.map(t => Number(t.dataset.value))")
    assert shown == pytest.approx(values[::-1][:3], rel=1e-5)


def test_filter_by_finding_shows_only_that_finding(page, run_dir):
    page.select_option("#f-finding", "Pneumothorax")
    rows = _visible_rows(page)
    expected = [r for r in _records(run_dir) if "pneumothorax" in r["instruction"].lower()]
    assert rows and all("Pneumothorax" in r["finding"].split("|") for r in rows)
    assert len(rows) == len(expected) == 15
    page.select_option("#f-editor", "flaky")
    page.select_option("#f-status", "failed")
    rows = _visible_rows(page)
    assert [r["sample"] for r in rows] == ["s009"]
    assert "flaky editor refuses s009 <b>bold</b>" in page.inner_text("#samples tbody td.err")


def test_zoom_opens_the_full_resolution_image(page, run_dir):
    page.select_option("#f-editor", "bright")
    img = page.locator("#samples tbody img[alt='edit']").first
    src = img.get_attribute("src")
    img.click()
    assert page.is_visible("#zoom")
    page.wait_for_function("document.getElementById('zoom-img').complete && "
                           "document.getElementById('zoom-img').naturalWidth > 0")
    natural = page.evaluate("[document.getElementById('zoom-img').naturalWidth, "
                            "document.getElementById('zoom-img').naturalHeight]")
    with Image.open(run_dir / "images" / "bright" / "s000.png") as im:
        assert tuple(natural) == im.size and im.mode.startswith("I;16")
    assert page.get_attribute("#zoom-link", "href") == src and src.endswith("images/bright/s000.png")
    page.click("#zoom")
    assert not page.is_visible("#zoom")


def test_glossary_is_reachable_from_every_header(page):
    targets = page.evaluate("""Array.from(document.querySelectorAll('#leaderboard th, #samples th[data-sort]'))
        .map(th => { const a = th.querySelector('a[href^="#"]');
                     const t = a && document.getElementById(a.getAttribute('href').slice(1));
                     return [th.textContent.trim(), !!th.title, !!(t && t.closest('#glossary'))]; })""")
    assert len(targets) > 10
    assert all(has_title and in_glossary for _, has_title, in_glossary in targets), targets
    page.click("#leaderboard th >> text=out-of-mask MAE")
    assert page.evaluate("location.hash") == "#g-out-of-mask-change-mae"
    assert page.is_visible("#g-out-of-mask-change-mae")


def test_run_data_is_never_executed(page):
    page.fill("#f-text", "s003")
    assert "<img src=x" in page.inner_text("#samples tbody")  # the hostile instruction, as text
    assert page.evaluate("window.__xss") is None
