"""``ix2x review import``: ratings checked against the packet, unblinded into a run directory, and
the report's numbers against references computed here (numpy means, the `krippendorff` package,
scipy's Spearman)."""

import csv
import json
import math

import numpy as np
import pytest

from ix2x.benchmarks.review_packet import export_packet, key_path
from ix2x.benchmarks.review_ratings import SCALES, import_ratings
from ix2x.errors import UserError
from ratings_for_tests import simulated, write


@pytest.fixture(scope="module")
def imported(packet, tmp_path_factory):
    key = json.loads(key_path(packet).read_text())
    tmp = tmp_path_factory.mktemp("ratings")
    files = [write(tmp / f"r{i}.json", simulated(key, f"R{i}", i, skip=3 if i == 2 else 0)) for i in range(3)]
    outcome = import_ratings(packet, files, tmp / "run")
    return key, [json.loads(f.read_text()) for f in files], outcome


def _matrix(key, ratings, scale):
    cases = sorted(key["cases"])
    m = np.full((len(ratings), len(cases)), np.nan)
    for i, r in enumerate(ratings):
        for a in r["answers"]:
            if a.get(scale) is not None:
                m[i, cases.index(a["case"])] = SCALES[scale][a[scale]]
    return cases, m


def test_per_editor_scores_are_the_means_of_the_ratings(imported):
    key, ratings, outcome = imported
    with open(outcome.run_dir / "summary.csv", newline="") as f:
        rows = {(r["editor"], r["key"]): r for r in csv.DictReader(f)}
    for scale in SCALES:
        cases, m = _matrix(key, ratings, scale)
        for editor in ("identity", "oracle"):
            cols = [j for j, c in enumerate(cases) if key["cases"][c]["editor"] == editor]
            values = m[:, cols][np.isfinite(m[:, cols])]
            row = rows[(editor, scale)]
            assert float(row["value"]) == pytest.approx(values.mean(), abs=1e-12)
            assert int(row["n"]) == values.size
            assert float(row["ci_low"]) <= values.mean() <= float(row["ci_high"])
    assert float(rows[("oracle", "realism")]["ci_low"]) > float(rows[("identity", "realism")]["ci_high"])


def test_agreement_matches_the_krippendorff_package(imported):
    krippendorff = pytest.importorskip("krippendorff")
    key, ratings, outcome = imported
    for scale in SCALES:
        _, m = _matrix(key, ratings, scale)
        got = outcome.report["agreement"][scale]["krippendorff_alpha"]
        assert got["value"] == pytest.approx(krippendorff.alpha(reliability_data=m, level_of_measurement="ordinal"),
                                             abs=1e-12)
        assert got["ci_low"] <= got["value"] <= got["ci_high"]
    kappa = outcome.report["agreement"]["instruction_followed"]["fleiss_kappa"]
    assert kappa["n_cases"] == len(key["cases"]) - 3  # Fleiss' kappa: only the cases every reader rated


def test_metric_correlations_are_spearman_of_case_means(imported, phantom_run):
    from scipy.stats import spearmanr

    key, ratings, outcome = imported
    recs = {(r["editor"], r["sample_id"]): r for r in map(json.loads, (phantom_run / "samples.jsonl").read_text().splitlines())}
    cases, m = _matrix(key, ratings, "instruction_followed")
    means = np.nanmean(m, axis=0)
    mae = [recs[(key["cases"][c]["editor"], key["cases"][c]["sample_id"])]["metrics"]["gt_fidelity"]["mae"] for c in cases]
    row = next(r for r in outcome.report["correlations"]
               if r["reader_score"] == "instruction_followed" and r["metric"] == "gt_fidelity.mae")
    assert row["spearman"] == pytest.approx(spearmanr(mae, means).statistic, abs=1e-12)
    assert row["spearman"] < -0.5 and row["ci_low"] <= row["spearman"] <= row["ci_high"]
    assert "gt_fidelity.mae" in outcome.markdown and "Krippendorff's alpha (ordinal)" in outcome.markdown


def test_the_run_directory_names_its_parent_and_its_records_carry_the_ratings(imported, phantom_run):
    from ix2x.records import RunDir

    key, ratings, outcome = imported
    run = RunDir.open(outcome.run_dir)
    assert run.run.parent == str(phantom_run.resolve()) and run.run.extra["parents"] == [str(phantom_run.resolve())]
    assert run.run.extra["review"]["n_incomplete_files"] == 1 == outcome.report["n_incomplete_files"]
    recs = run.sample_records()
    assert len(recs) == len(key["cases"])
    for r in recs:
        case = r.info["review_case"]
        assert key["cases"][case]["sample_id"] == r.sample_id and key["cases"][case]["editor"] == r.editor
        given = [a["realism"] for f in ratings for a in f["answers"] if a["case"] == case and "realism" in a]
        assert [x["realism"] for x in r.info["reader_ratings"] if x["realism"] is not None] == given
        assert {x["instruction_followed"] for x in r.info["reader_ratings"]} <= {"yes", "partly", "no", None}
        assert r.metrics["reader"]["realism"] == pytest.approx(np.mean(given))
        assert "gt_fidelity" in r.metrics and (outcome.run_dir / r.image).is_file()


def test_the_report_puts_reader_and_automatic_scores_side_by_side_on_the_rated_cases(imported, phantom_run):
    from ix2x.reports import write_report

    key, _, outcome = imported
    with open(outcome.run_dir / "summary.csv", newline="") as f:
        rows = {(r["editor"], r["metric"], r["key"]): r for r in csv.DictReader(f)}
    recs = [json.loads(x) for x in (phantom_run / "samples.jsonl").read_text().splitlines()]
    rated = {(v["editor"], v["sample_id"]) for v in key["cases"].values()}
    mae = [r["metrics"]["gt_fidelity"]["mae"] for r in recs if r["editor"] == "identity"
           and (r["editor"], r["sample_id"]) in rated]
    assert float(rows[("identity", "gt_fidelity", "mae")]["value"]) == pytest.approx(np.mean(mae), abs=1e-12)
    text = write_report([outcome.run_dir], outcome.run_dir.parent / "report.md").read_text()
    assert "reader realism ↑" in text and "reader unintended change ↓" in text


def test_ratings_of_another_packet_or_a_reader_twice_are_refused(imported, packet, tmp_path):
    key = json.loads(key_path(packet).read_text())
    other = write(tmp_path / "other.json", {**simulated(key, "X", 0), "packet_hash": "sha256:" + "0" * 64})
    with pytest.raises(UserError, match="rates another packet"):
        import_ratings(packet, [other], tmp_path / "a")
    a, b = write(tmp_path / "a.json", simulated(key, "Dr A", 0)), write(tmp_path / "b.json", simulated(key, "dr a", 1))
    with pytest.raises(UserError, match="appears twice"):
        import_ratings(packet, [a, b], tmp_path / "b")
    bad = simulated(key, "Y", 0)
    bad["answers"][0]["realism"] = 7
    with pytest.raises(UserError, match="`realism` must be one of 1, 2, 3, 4, 5"):
        import_ratings(packet, [write(tmp_path / "bad.json", bad)], tmp_path / "c")
    assert not any((tmp_path / d).exists() for d in "abc")


def test_cli_import_prints_the_report_and_refuses_another_packet_in_one_line(packet, tmp_path, capsys):
    from ix2x.cli.main import main

    key = json.loads(key_path(packet).read_text())
    good = write(tmp_path / "g.json", simulated(key, "G", 0))
    assert main(["review", "import", str(packet), str(good), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "# Reader study (rate)" in out and f"run directory: {tmp_path / 'run'}" in out
    other = write(tmp_path / "o.json", {**simulated(key, "O", 0), "packet_hash": "sha256:x"})
    assert main(["review", "import", str(packet), str(other), "--out", str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ix2x review: error:") and "rates another packet" in err and len(err.splitlines()) == 1


def test_real_or_edited_accuracy(phantom_run, tmp_path):
    export_packet([phantom_run], tmp_path / "t", n=12, raters=2, mode="real-or-edited", seed=1, progress=False)
    key = json.loads(key_path(tmp_path / "t").read_text())
    files = [simulated(key, f"R{i}", 10 + i) for i in range(2)]
    outcome = import_ratings(tmp_path / "t", [write(tmp_path / f"r{i}.json", f) for i, f in enumerate(files)],
                             tmp_path / "run")
    correct = [(a["judgement"] == "real") == (key["cases"][a["case"]]["kind"] == "real")
               for f in files for a in f["answers"]]
    acc = outcome.report["accuracy"]
    assert acc["value"] == pytest.approx(np.mean(correct)) and acc["n_ratings"] == 24 and acc["n_cases"] == 12
    assert acc["ci_low"] <= acc["value"] <= acc["ci_high"] and not math.isnan(acc["ci_low"])
    assert "Real-or-edited accuracy" in outcome.markdown
    assert set(outcome.report["scores"]["judged_real"]) == {"identity", "oracle", "real image"}


def test_automatic_rows_say_how_their_interval_was_computed(imported):
    """Regression: the parents' metrics re-aggregated over the rated edits lost ``ci_method`` and
    ``nan_reason`` on their way into summary.csv (two row types, copied field by field)."""
    from ix2x.benchmarks.review_ratings import READER_METRIC
    from ix2x.stats import CI_METHODS

    _, _, outcome = imported
    with open(outcome.run_dir / "summary.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["metric"] != READER_METRIC]
    assert rows
    for r in rows:
        if r["ci_low"]:
            assert r["ci_method"] in (*CI_METHODS, "clopper_pearson"), r
        else:
            assert r["nan_reason"], r
