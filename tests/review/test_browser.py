"""The packet page in a real browser (Playwright driving Debian's Chromium): opened from disk with
no network, rated with clicks and the keyboard, closed and reopened with the progress kept, saved
to one JSON file that `ix2x review import` reads."""

import json
import shutil
from pathlib import Path

import pytest

from ix2x.benchmarks.review_packet import export_packet, key_path
from ix2x.benchmarks.review_ratings import import_ratings
from ratings_for_tests import simulated, write


@pytest.fixture
def open_packet(browser):
    """Open a packet's page in a fresh profile; every request that is not a file of the packet fails
    the test (the page must work offline)."""
    contexts, outside, errors = [], [], []

    def opener(packet: Path):
        ctx = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
        contexts.append(ctx)

        def route(r):
            if r.request.url.startswith(packet.as_uri()):
                r.continue_()
            else:
                outside.append(r.request.url)
                r.abort()

        ctx.route("**/*", route)
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((packet / "index.html").as_uri())
        return page

    yield opener
    for ctx in contexts:
        ctx.close()
    assert not outside, f"the page asked for {outside}"
    assert not errors, errors


def _checked(page, name):
    return page.eval_on_selector(f"input[name={name}]:checked", "e => e.value") \
        if page.query_selector(f"input[name={name}]:checked") else None


def test_rate_with_clicks_and_keys_reload_save_and_import(packet, open_packet, tmp_path):
    key = json.loads(key_path(packet).read_text())
    page = open_packet(packet)
    order = page.evaluate("PACKET.orders['2']")
    cases = page.evaluate("Object.fromEntries(PACKET.cases.map(c => [c.id, c]))")
    page.fill("#rater-id", "T1")
    page.select_option("#rater-slot", "2")
    page.click("#begin")
    assert page.inner_text("#progress") == f"case 1 of {len(order)}"
    assert page.inner_text("#instruction") == "Instruction: " + cases[order[0]]["instruction"]
    assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth === 64)")

    # case 1 with the mouse, a click on the edit where the unintended change is
    page.check("#q-realism input[value='4']")
    page.check("#q-instruction_followed input[value='partly']")
    page.check("#q-unintended_change input[value='minor']")
    box = page.locator("#edit-image").bounding_box()
    page.click("#edit-image", position={"x": box["width"] * 0.25, "y": box["height"] * 0.75})
    assert page.locator("#where-marker").count() == 1
    page.fill("#comment", "rib shadow 5")  # typing in the comment is not a shortcut
    assert _checked(page, "realism") == "4"
    page.click("#next")
    # case 2 and 3 with the keyboard
    for k in ["5", "y", "a", "ArrowRight", "2", "n", "d"]:
        page.keyboard.press(k)
    assert page.inner_text("#progress") == f"case 3 of {len(order)}"
    assert (_checked(page, "realism"), _checked(page, "instruction_followed"), _checked(page, "unintended_change")) \
        == ("2", "no", "major")
    # zoom and window/level
    page.keyboard.press("+")
    assert page.inner_text("#zoom-value") == "125 %"
    assert page.evaluate("document.getElementById('edit-image').getBoundingClientRect().width") == pytest.approx(80)
    page.evaluate("const w = document.getElementById('window'); w.value = 0.5; w.dispatchEvent(new Event('input'))")
    assert float(page.get_attribute("#wl-r", "slope")) == pytest.approx(2.0)
    assert float(page.get_attribute("#wl-r", "intercept")) == pytest.approx(-0.5)
    page.screenshot(path=str(tmp_path / "case.png"))

    page.reload()  # the page closed and opened again: the reader continues where they were
    assert page.inner_text("#progress") == f"case 3 of {len(order)}"
    assert page.inner_text("#answered") == f"3 of {len(order)} answered"
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert (_checked(page, "realism"), _checked(page, "instruction_followed")) == ("4", "partly")
    assert page.input_value("#comment") == "rib shadow 5" and page.locator("#where-marker").count() == 1

    with page.expect_download() as info:
        page.click("#save")
    saved = json.loads(Path(info.value.path()).read_text())
    assert info.value.suggested_filename == "ratings-T1.json"
    assert saved["packet_hash"] == key["packet_hash"] and saved["rater_id"] == "T1" and saved["rater_slot"] == 2
    assert [a["case"] for a in saved["answers"]] == order and saved["n_complete"] == 3
    first, second = saved["answers"][0], saved["answers"][1]
    assert (first["realism"], first["instruction_followed"], first["unintended_change"]) == (4, "partly", "minor")
    assert first["where"] == pytest.approx({"x": 0.25, "y": 0.75}, abs=0.02) and first["comment"] == "rib shadow 5"
    assert (second["realism"], second["instruction_followed"], second["unintended_change"]) == (5, "yes", "none")
    assert first["time_s"] > 0 and saved["answers"][3]["realism"] is None

    # a second reader at the same computer starts fresh; the first continues where they were
    page.click("#switch")
    page.fill("#rater-id", "T3")
    page.click("#begin")
    assert page.inner_text("#progress") == f"case 1 of {len(order)}" and page.inner_text("#answered").startswith("0 of")
    page.reload()
    assert page.inner_text("#reader").startswith("reader T3")
    page.click("#switch")
    page.fill("#rater-id", "T1")
    page.click("#begin")
    assert page.inner_text("#progress") == f"case 1 of {len(order)}" and page.inner_text("#answered").startswith("3 of")

    files = [write(tmp_path / "t1.json", saved)] + [write(tmp_path / f"r{i}.json", simulated(key, f"R{i}", i))
                                                   for i in (1, 2)]
    outcome = import_ratings(packet, files, tmp_path / "run")
    assert outcome.report["n_incomplete_files"] == 1 and outcome.report["raters"] == ["T1", "R1", "R2"]
    recs = {json.loads(x)["info"]["review_case"]: json.loads(x)
            for x in (outcome.run_dir / "samples.jsonl").read_text().splitlines()}
    mine = recs[order[0]]["info"]["reader_ratings"][0]
    assert mine["rater_id"] == "T1" and mine["instruction_followed"] == "partly" and mine["comment"] == "rib shadow 5"
    assert recs[order[0]]["editor"] == key["cases"][order[0]]["editor"]
    for section in ("| editor |", "Krippendorff's alpha (ordinal)", "Fleiss' kappa", "Spearman"):
        assert section in outcome.markdown


def test_real_or_edited_page_asks_which_with_keys(phantom_run, open_packet, tmp_path):
    export_packet([phantom_run], tmp_path / "t", n=4, raters=1, mode="real-or-edited", seed=2, progress=False)
    page = open_packet(tmp_path / "t")
    page.fill("#rater-id", "T2")
    page.click("#begin")
    assert page.locator(".stage img").count() == 1 and page.locator("#edit-image").count() == 0
    for k in ["r", "ArrowRight", "e", "ArrowRight", "e"]:
        page.keyboard.press(k)
    with page.expect_download() as info:
        page.click("#save")
    saved = json.loads(Path(info.value.path()).read_text())
    assert [a["judgement"] for a in saved["answers"]] == ["real", "edited", "edited", None]
    assert saved["mode"] == "real-or-edited" and saved["n_complete"] == 3


def test_an_instruction_with_markup_is_shown_as_text(phantom_run, open_packet, tmp_path):
    """Instructions are data: a run whose instruction holds markup (`</script>` included) shows it
    as text and runs none of it."""
    hostile = 'Add the finding of edema. </script><img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
    run = tmp_path / "runs" / phantom_run.name
    shutil.copytree(phantom_run, run)
    lines = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    for r in lines:
        r["instruction"] = hostile
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    export_packet([run], tmp_path / "h", n=2, raters=1, seed=0, progress=False)
    page = open_packet(tmp_path / "h")
    page.fill("#rater-id", "T4")
    page.click("#begin")
    assert page.inner_text("#instruction") == "Instruction: " + hostile
    assert page.evaluate("window.__xss") is None
