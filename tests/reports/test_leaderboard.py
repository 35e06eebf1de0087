"""The HTML leaderboard explains itself: columns and glossary from the metrics' descriptions (a
plugin's too), floor and ceiling apart and never best, best only among editors scored on the same
samples, reasons for missing values, units and precision, CIs and tiny-n flags in breakdowns."""

import json
import re
import shutil
from html.parser import HTMLParser

import pytest

import report_fixtures
from ix2x.reports import write_report
from ix2x.reports.data import number


class Table(HTMLParser):
    """Rows of the table with ``id``: (tbody class, row attrs, [(cell attrs, text)])."""

    def __init__(self, table_id):
        super().__init__()
        self.id, self.inside, self.depth, self.rows, self.body, self.cell = table_id, False, 0, [], None, None
        self.head = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id") == self.id:
            self.inside = True
        if not self.inside:
            return
        if tag == "tbody":
            self.body = a.get("class")
        elif tag == "tr":
            self.rows.append((self.body, a, []))
        elif tag in ("td", "th"):
            self.cell = (a, [])
        elif tag == "table" and a.get("id") != self.id:
            self.depth += 1

    def handle_endtag(self, tag):
        if not self.inside:
            return
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1][2].append((self.cell[0], " ".join("".join(self.cell[1]).split())))
            self.cell = None
        elif tag == "table":
            self.inside = False

    def handle_data(self, data):
        if self.inside and self.cell is not None:
            self.cell[1].append(data + " ")


def table(text, table_id):
    p = Table(table_id)
    p.feed(text)
    return p.rows


def browser_data(text):
    m = re.search(r"<script id='samples-data' type='application/json'>(.*?)</script>", text, re.S)
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def page(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "report.html"
    return write_report([run_dir], out).read_text()


def _column(rows, title):
    header = rows[0][2]
    return next(i for i, (_, t) in enumerate(header) if t.startswith(title))


def test_reference_editors_apart_and_never_best(page):
    rows = table(page, "leaderboard")
    bodies = {r[1]["data-editor"]: r[0] for r in rows[1:] if "data-editor" in r[1]}
    assert bodies == {"bright": "ranked", "dim": "ranked", "flaky": "ranked", "identity": "reference",
                      "oracle": "reference"}
    mae = _column(rows, "out-of-mask MAE")
    editors = [r for r in rows[1:] if "data-editor" in r[1]]
    best = [r[1]["data-editor"] for r in editors if "best" in r[2][mae][0].get("class", "")]
    # identity, oracle and flaky score 0, but the first two bound the scale and flaky failed on 4 of
    # 12 samples: among editors scored on all 12, dim (0.05) beats bright (0.2)
    assert best == ["dim"]
    flaky = next(r for r in rows if r[1].get("data-editor") == "flaky")[2][mae]
    assert "unranked" in flaky[0]["class"] and "tiny" in flaky[0]["class"] and "n=8" in flaky[1]
    assert "flaky scored on fewer samples (n 8 of 12), not ranked" in page
    assert not any("best" in c[0].get("class", "") for r in rows if r[0] == "reference" for c in r[2])


def test_missing_value_shows_its_reason(page):
    rows = table(page, "leaderboard")
    col = _column(rows, "guidance AUROC")
    identity = next(r for r in rows if r[1].get("data-editor") == "identity")[2][col]
    assert identity[1].startswith("n/a") and "editor gave neither a guidance map nor an edit mask" in identity[1]
    assert identity[0]["title"] == "editor gave neither a guidance map nor an edit mask"


def test_headers_have_hover_text_and_glossary_links(page):
    header = table(page, "leaderboard")[0][2]
    anchors = re.findall(r'<th[^>]*title="[^"]+"[^>]*><a href="#([^"]+)"', page[page.index("id=\"leaderboard\""):])
    ids = set(re.findall(r'<dt id="([^"]+)"', page))
    assert len(anchors) >= len(header) and set(anchors[:len(header)]) <= ids
    # the plugin metric is described by its own class: label, direction and glossary text
    assert "darkness |1-x|" in [t.split(" ↑")[0] for _, t in header]
    assert re.search(r'<dt id="g-darkness-t-darkness">darkness \|1-x\| <code>darkness_t.darkness</code></dt>'
                     r"<dd>higher is better\. 1 - mean\(x&#x27;\): plugin glossary text\.", page)
    assert "Plugin metric from a throwaway package" in page


def test_units_and_precision():
    assert [number(v) for v in (0.0, 2.123e-05 * 1e3, 0.99999, 1234.5678, 0.0108, 12.345e6)] == \
        ["0", "0.0212", "1.00", "1235", "0.0108", "1.23e+07"]
    assert number(float("nan")) == "n/a" and number(4.8, 2) == "4.8"


def test_latency_prints_in_ms(page):
    header = table(page, "leaderboard")[0][2]
    assert any(t.startswith("latency per edit ↓ ms") for _, t in header)


def test_breakdowns_have_cis_and_flag_tiny_n(page):
    part = page[page.index("<h4>out-of-mask MAE by op</h4>"):]
    part = part[:part.index("</table>")]
    assert "<td class='tiny'>0.0500<span class='n'>n=6</span></td>" in part  # constant: no CI, n < 10
    darkness = page[page.index("<h4>darkness |1-x| by op</h4>"):]
    assert re.search(r"<td class='tiny'>0\.\d+<span class='ci'>\[0\.\d+, 0\.\d+\]</span><span class='n'>n=6",
                     darkness)


def test_old_run_without_descriptions_still_renders(run_dir, tmp_path):
    """Runs recorded before run.json carried `describe`: the built-in metrics' columns come from
    the legacy list; a plugin metric has none to come from."""
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    meta = json.loads((old / "run.json").read_text())
    for m in meta["metrics"].values():
        m.pop("describe")
    (old / "run.json").write_text(json.dumps(meta))
    header = [t for _, t in table(write_report([old], tmp_path / "a.html").read_text(), "leaderboard")[0][2]]
    assert [t.split(" ↑")[0].split(" ↓")[0] for t in header[1:-2]] == \
        ["out-of-mask MAE", "out-of-mask changed", "guidance AUROC", "latency per edit"]


def test_combined_runs_show_a_run_column_and_differing_sample_sets(run_dir, tmp_path, plugins):
    suite = dict(report_fixtures.SUITE, editors=report_fixtures.SUITE["editors"][2:4])
    other = report_fixtures.make_run(tmp_path, suite, report_fixtures.samples(n=8, seed=1))
    text = write_report([run_dir, other], tmp_path / "c.html").read_text()
    rows = table(text, "leaderboard")
    assert rows[0][2][1][1].startswith("run")
    labels = [r[1]["data-editor"] for r in rows[1:] if "data-editor" in r[1]]
    assert f"bright ({other.name})" in labels and f"bright ({run_dir.name})" in labels
    assert "The runs were scored on different sample sets" in text and "8 in common" in text


def test_no_images_keeps_every_view_but_the_pixels(run_dir, tmp_path):
    text = write_report([run_dir], tmp_path / "n.html", with_images=False).read_text()
    data = browser_data(text)
    assert not data["images"] and len(data["rows"]) == 5 * 12
    assert all(row[9] == {} for row in data["rows"])
    assert "carries no images" in text and "images/" not in json.dumps(data)
    assert table(text, "leaderboard")  # leaderboard, glossary, breakdowns all still there
    assert "<dl id=\"glossary\">" in text and "by op</h4>" in text


def test_suite_that_forbids_images_wins_over_the_default(tmp_path, plugins):
    suite = dict(report_fixtures.SUITE, report_images=False, editors=report_fixtures.SUITE["editors"][:3])
    d = report_fixtures.make_run(tmp_path, suite, report_fixtures.samples(n=4))
    assert not (d / "images" / "_input").exists()  # nothing kept to leak
    text = write_report([d], d / "r.html").read_text()
    assert "data use agreement" in text and not browser_data(text)["images"]
    assert not re.search(r"images/(identity|oracle|bright)/", text)


def test_reports_have_no_bootstrap_of_their_own():
    """Regression: reports/data.py had a second bootstrap that imported private constants of
    ix2x.stats; intervals now come from ix2x.stats only."""
    import inspect

    from ix2x.reports import data

    assert not hasattr(data, "mean_ci")
    assert "default_rng" not in inspect.getsource(data) and "_ROWS_PER_DRAW" not in inspect.getsource(data)


def test_kept_inputs_of_a_schema1_run_are_found_by_its_own_file_names(tmp_path, plugins):
    # Schema 1 wrote `s 0.x` as `s_0.x.png`, schema 2 escapes it (`s~200~2ex.png`): the report must look
    # kept inputs up through the run's own layout. Emulate a schema-1 run by renaming a new run's kept
    # inputs to the schema-1 names and marking its run.json as schema 1 (as the stored golden run is).
    import dataclasses

    from ix2x.records import Layout

    data = [dataclasses.replace(s, sample_id=f"s {i}.x") for i, s in enumerate(report_fixtures.samples(4))]
    suite = {**report_fixtures.SUITE, "editors": [{"name": "identity"}], "metrics": [{"name": "out_of_mask_change"}]}
    run = report_fixtures.make_run(tmp_path / "runs", suite, data)
    v1, v2 = Layout(1), Layout(2)
    for s in data:
        for kind in ("input", "target", "region"):
            (run / v2.report_input(kind, s.sample_id)).rename(run / v1.report_input(kind, s.sample_id))
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "schema_version": 1}))
    text = write_report([run], tmp_path / "r.html").read_text()
    for s in data:
        assert f"images/_input/{v1.image_name(s.sample_id)}" in text


def test_a_record_naming_an_image_outside_its_run_is_not_followed(run_dir, tmp_path):
    # A hand-edited or hostile samples.jsonl: the report linked and read ../outside/evil.png (review).
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(next((run / "images").rglob("*.png")), outside / "evil.png")
    lines = (run / "samples.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["image"] = "../outside/evil.png"
    (run / "samples.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    text = write_report([run], tmp_path / "r.html").read_text()
    assert "evil.png" not in text
