"""Typed, versioned run records: the stored schema-1 run (made with the code before schema 2) is
read, compared, rescored and resumed; a suite using one metric twice under two labels works."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from ix2x.benchmarks import rundir, runner
from ix2x import records
from ix2x.cli.main import main
from ix2x.suite import ComponentSpec, suite_from_dict

GOLDEN_V1 = Path(__file__).parent / "golden" / "schema1"


def _tree_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def golden(tmp_path, monkeypatch):
    """A copy of the stored schema-1 run, pointing at phantoms generated in this test's cache."""
    monkeypatch.setenv("IX2X_CACHE", str(tmp_path / "cache"))
    dst = tmp_path / "results" / "golden" / "schema1"
    shutil.copytree(GOLDEN_V1, dst)
    return dst


def test_the_schema_1_run_reads_as_current_records(golden):
    run = records.RunDir.open(golden)
    assert run.version == 1 and records.SCHEMA_VERSION == 2
    recs = run.sample_records()
    assert len(recs) == 8 and {r.editor for r in recs} == {"identity", "oracle"}
    assert all(r.ok and r.stage is None and r.data_hash is None for r in recs)
    assert recs[0].metrics["out_of_mask_change"]["psnr"] == 100.0
    rows = {(r.editor, r.metric, r.key): r for r in run.summary_rows()}
    assert rows[("oracle", "out_of_mask_change", "mae")].n == 4
    assert run.meta["status"] == "complete" and run.meta["git"]["commit"].startswith("d036e4b")
    first = recs[0].sample_id
    assert run.report_input("input", first).is_file() and run.report_input("target", first).is_file()


def test_schema_1_failures_migrate_to_the_edit_stage_and_its_file_names_to_its_own_mapping():
    rec = records.SampleRecord.from_dict({"editor": "e", "sample_id": "a b", "status": "failed",
                                          "error": "boom"}, version=1)
    assert rec.stage == "edit"
    assert records.Layout(1).image_name("a b") == records.Layout(1).image_name("a_b") == "a_b.png"
    assert records.Layout(2).image_name("a b") != records.Layout(2).image_name("a_b")


def test_a_schema_1_summary_keyed_by_metric_name_reads_by_label(tmp_path):
    run_dir = tmp_path / "r"
    shutil.copytree(GOLDEN_V1, run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    meta["metrics"] = {"oomc": meta["metrics"]["out_of_mask_change"]}  # labelled in the suite
    (run_dir / "run.json").write_text(json.dumps(meta))
    assert {r.metric for r in records.RunDir.open(run_dir).summary_rows()} == {"run", "oomc", "latency"}


def test_an_unknown_schema_is_one_line(tmp_path):
    run_dir = tmp_path / "r"
    shutil.copytree(GOLDEN_V1, run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    meta["schema_version"] = 99
    (run_dir / "run.json").write_text(json.dumps(meta))
    with pytest.raises(records.RecordError, match="record schema 99; this ix2x reads schemas 1, 2"):
        records.RunDir.open(run_dir)


def test_the_schema_1_run_compared_with_itself_has_no_differences(golden, capsys):
    assert main(["compare", str(golden), str(golden)]) == 0
    assert capsys.readouterr().out.startswith("no differences")


def test_the_schema_1_run_rescores_into_a_new_run_and_stays_byte_identical(golden):
    before = _tree_bytes(golden)
    outcome = runner.rescore(golden, [ComponentSpec("out_of_mask_change", args={"lpips_net": None})],
                             progress=False)
    assert _tree_bytes(golden) == before
    new = records.RunDir.open(outcome.run_dir)
    assert new.version == records.SCHEMA_VERSION and new.meta["parent"] == str(golden.resolve())
    old_recs = {r.key: r for r in records.RunDir.open(golden).sample_records()}
    for r in new.sample_records():
        m, o = r.metrics["out_of_mask_change"], old_recs[r.key].metrics["out_of_mask_change"]
        assert "lpips" not in m and "lpips" in o  # lpips off now, as asked
        assert (m["mae"], m["psnr"], m["changed_fraction"]) == (o["mae"], o["psnr"], o["changed_fraction"])
    first = next(iter(old_recs))[1]
    assert new.report_input("input", first).is_file()


def test_the_schema_1_run_resumes_without_adding_anything(golden):
    before = (golden / records.SAMPLES_FILE).read_bytes()
    outcome = runner.execute(golden, progress=False)
    assert outcome.n_records == 8 and (golden / records.SAMPLES_FILE).read_bytes() == before


def test_one_metric_under_two_labels_gives_two_sets_of_values_and_rows(tmp_path, samples):
    """summary.csv keyed rows by Metric.name: the second label's rows collided with the first's."""
    import dataclasses

    narrowed = []
    for s in samples:
        region = s.region.clone()
        region[..., 5:] = 0
        narrowed.append(dataclasses.replace(s, region=region))
    suite = suite_from_dict({"name": "twice", "editors": [{"name": "oracle"}], "metrics": [
        {"name": "out_of_mask_change", "label": "oomc_fine", "args": {"lpips_net": None}},
        {"name": "out_of_mask_change", "label": "oomc_coarse", "args": {"lpips_net": None, "change_threshold": 0.5}}]})
    outcome = runner.execute(runner.start_run(suite, tmp_path), narrowed, progress=False)
    run = records.RunDir.open(outcome.run_dir)
    rows = {(r.metric, r.key): r.value for r in run.summary_rows() if r.editor == "oracle"}
    assert rows[("oomc_fine", "changed_fraction")] > 0 and rows[("oomc_coarse", "changed_fraction")] == 0
    assert set(run.sample_records()[0].metrics) == {"oomc_fine", "oomc_coarse"}
    assert set(run.meta["metrics"]) == {"oomc_fine", "oomc_coarse"}


def test_one_label_used_twice_is_refused(tmp_path):
    from ix2x.errors import UserError

    from ix2x.errors import ConfigError
    from ix2x.suite import ComponentSpec

    twice = {"name": "twice", "editors": [{"name": "identity"}],
             "metrics": [{"name": "out_of_mask_change"}, {"name": "out_of_mask_change"}]}
    with pytest.raises(ConfigError, match="Metric labels must be unique, got out_of_mask_change"):
        suite_from_dict(twice)  # a suite file: refused when it loads
    suite = dataclasses.replace(suite_from_dict({**twice, "metrics": []}),  # built in Python: refused at the start
                                metrics=(ComponentSpec("out_of_mask_change"),) * 2)
    with pytest.raises(UserError, match="Metric labels must be unique, got out_of_mask_change"):
        runner.start_run(suite, tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_metric_that_describes_itself_is_described_in_run_json(tmp_path, samples, monkeypatch):
    from ix2x import registry

    real = registry.load
    described = type("Described", (real("metric", "out_of_mask_change"),), {
        "describe": lambda self: {"headline": ["mae"], "units": {"mae": "intensity"}}})
    monkeypatch.setattr(registry, "load", lambda kind, name: described if name == "described" else real(kind, name))
    suite = suite_from_dict({"name": "d", "editors": [{"name": "identity"}],
                             "metrics": [{"name": "described", "label": "oomc", "args": {"lpips_net": None}}]})
    meta = records.RunDir.open(runner.start_run(suite, tmp_path)).meta
    assert meta["metrics"]["oomc"]["describe"] == {"headline": ["mae"], "units": {"mae": "intensity"}}


def test_image_names_are_injective_and_safe():
    import random
    import string

    rng = random.Random(0)
    alphabet = string.ascii_letters[:4] + "_~ .-/\\:é" + "\u00e9"  # few letters: many near-collisions
    ids = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(20000)}
    ids |= {"x" * 300, "x" * 299 + "y", ".", "..", "a.guidance", "a.mask"}
    names = {records.image_name(i): i for i in ids}
    assert len(names) == len(ids)  # no two ids share a file
    for name in names:
        assert "/" not in name and "\\" not in name and not name.startswith(".") and len(name) <= 200
    assert not set(names) & {records.sidecar(n, k).name for n in names for k in ("guidance", "mask")}


def test_a_run_from_before_eval_size_resumes_at_native_size(golden):
    # Its records were scored at native size; resuming at the new default (512) would mix two sizes.
    assert "eval_size" not in json.loads((golden / records.RUN_FILE).read_text())["suite"]
    assert rundir.load_run_suite(golden).eval_size is None
