"""The runner end to end on in-memory samples: records, summary, failures, editor args."""

import json
import math

import pytest

from ix2x.benchmarks import runner
from ix2x import records
from ix2x.errors import ConfigError
from ix2x.suite import suite_from_dict


def _suite(**over):
    raw = {"name": "t", "editors": [{"name": "identity"}, {"name": "oracle"}],
           "metrics": [{"name": "out_of_mask_change"}], "batch_size": 4}
    raw.update(over)
    return suite_from_dict(raw)


def _run(tmp_path, samples, **over):
    run_dir = runner.start_run(_suite(**over), tmp_path)
    return runner.execute(run_dir, samples, progress=False)


def test_identity_and_oracle_records(tmp_path, samples):
    outcome = _run(tmp_path, samples)
    assert outcome.ok and outcome.n_records == 2 * len(samples)
    recs = records.RunDir.open(outcome.run_dir).records()
    assert [r["editor"] for r in recs] == ["identity"] * 6 + ["oracle"] * 6
    for r in recs:
        m = r["metrics"]["out_of_mask_change"]
        # Both editors change nothing outside the true region: the oracle is exact.
        assert m["mae"] == 0.0 and m["changed_fraction"] == 0.0 and m["psnr"] == 100.0
        if r["editor"] == "oracle":
            assert m["locality"] == 1.0
        else:
            assert m["locality"] is None and "no change" in m["nan_reason"]


def test_summary_rows_have_n_and_ci(tmp_path, samples):
    outcome = _run(tmp_path, samples)
    rows = records.RunDir.open(outcome.run_dir).summary()
    by = {(r["editor"], r["metric"], r["key"]): r for r in rows}
    mae = by[("oracle", "out_of_mask_change", "mae")]
    # Six zeros: no resample moves the mean, so no interval rather than a [0, 0] that claims certainty.
    assert (mae["n"], mae["value"]) == (6, 0.0) and math.isnan(mae["ci_low"]) and math.isnan(mae["ci_high"])
    assert "all 6 values are equal" in mae["nan_reason"] and mae["ci_method"] == ""
    loc = by[("identity", "out_of_mask_change", "locality")]
    assert loc["n"] == 0 and loc["n_nan"] == 6 and math.isnan(loc["value"])
    assert by[("identity", "run", "failed")]["value"] == 0.0
    assert by[("identity", "latency", "median_s")]["n"] == 2  # batch 2 of 4; the first is the warm-up's
    assert by[("identity", "latency", "model_calls")]["value"] == 0.0
    ips = by[("identity", "latency", "images_per_s")]
    assert ips["higher_is_better"] and ips["value"] > 0 and ips["ci_low"] <= ips["value"] <= ips["ci_high"]
    meta = json.loads((outcome.run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and meta["schema_version"] == records.SCHEMA_VERSION
    assert meta["packages"]["torch"] == "2.14.1"
    assert meta["suite"]["ci"] == "percentile" and "percentile bootstrap" in meta["intervals"]
    assert "Clopper-Pearson" in meta["intervals"]


def test_edited_images_saved_and_reloadable(tmp_path, samples):
    from ix2x.images import load_image

    outcome = _run(tmp_path, samples)
    rec = [r for r in records.RunDir.open(outcome.run_dir).records() if r["editor"] == "oracle"][0]
    img = load_image(outcome.run_dir / rec["image"])
    assert (img - samples[0].target).abs().max() <= 0.5 / 65535 + 1e-7


def test_oracle_without_aligned_target_fails_per_sample_and_run_goes_on(tmp_path, samples):
    import dataclasses

    broken = [dataclasses.replace(s, target_aligned=(i != 2)) for i, s in enumerate(samples)]
    outcome = _run(tmp_path, broken)
    assert outcome.n_failed == {"identity": 0, "oracle": 1} and not outcome.ok
    bad = [r for r in records.RunDir.open(outcome.run_dir).records() if r["status"] == "failed"]
    assert [r["sample_id"] for r in bad] == ["s002"]
    assert "pixel-aligned target" in bad[0]["error"]


def test_unknown_editor_setting_is_rejected_before_running(tmp_path):
    with pytest.raises(ConfigError, match=r"Unknown setting\(s\) steps for editor `identity`"):
        runner.start_run(_suite(editors=[{"name": "identity", "args": {"steps": 3}}]), tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_device_in_editor_settings_points_to_the_suite_device(tmp_path):
    """Editors had a `device` setting that the suite's `device` silently overrode in runs."""
    with pytest.raises(ConfigError, match=r"Unknown setting\(s\) device .*the suite's `device`"):
        runner.start_run(_suite(editors=[{"name": "instructx2x", "args": {"device": "cuda"}}]), tmp_path)


def test_wrong_setting_type_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="must be a number, got 'abc'"):
        runner.start_run(_suite(editors=[{"name": "identity"}],
                                metrics=[{"name": "out_of_mask_change",
                                          "args": {"change_threshold": "abc"}}]), tmp_path)


def test_results_do_not_depend_on_batch_size(tmp_path, samples):
    a = records.RunDir.open(_run(tmp_path / "a", samples, batch_size=1).run_dir).records()
    b = records.RunDir.open(_run(tmp_path / "b", samples, batch_size=5).run_dir).records()
    assert records.without_timings(a) == records.without_timings(b)


def _recording_editor(fill=True, max_batch=None):
    """An identity editor class that records the sample ids of every call; with ``max_batch`` it
    fails on larger batches, as a device out of memory would."""
    from ix2x.types import Editor, EditResult

    class Recording(Editor):
        fill_batches = fill
        calls: list = []

        def edit(self, requests):
            Recording.calls.append([r.sample_id for r in requests])
            if max_batch is not None and len(requests) > max_batch:
                raise MemoryError("out of memory")
            return [EditResult(image=r.image.clone()) for r in requests]

    return Recording


def _run_recording(tmp_path, samples, monkeypatch, editor_cls):
    load = runner.registry.load
    monkeypatch.setattr(runner.registry, "load",
                        lambda kind, name: editor_cls if name == "recording" else load(kind, name))
    outcome = _run(tmp_path, samples, editors=[{"name": "recording"}])
    return outcome, records.RunDir.open(outcome.run_dir).records()


def test_short_batches_are_filled_with_copies_whose_results_are_dropped(tmp_path, samples, monkeypatch):
    editor = _recording_editor()
    outcome, recs = _run_recording(tmp_path, samples, monkeypatch, editor)
    ids = [s.sample_id for s in samples]  # 6 samples, batch 4
    # The warm-up's edits are the first batch's; then the second, filled to a full batch.
    assert editor.calls == [ids[:4], ids[4:] + [ids[5]] * 2]
    assert outcome.ok and [r["sample_id"] for r in recs] == ids


def test_an_editor_can_opt_out_of_filled_batches(tmp_path, samples, monkeypatch):
    editor = _recording_editor(fill=False)
    _run_recording(tmp_path, samples, monkeypatch, editor)
    assert editor.calls[-1] == [samples[4].sample_id, samples[5].sample_id]


def test_a_batch_too_large_for_the_device_is_retried_one_by_one_unfilled(tmp_path, samples, monkeypatch):
    editor = _recording_editor(max_batch=1)
    outcome, recs = _run_recording(tmp_path, samples, monkeypatch, editor)
    assert outcome.ok and all(r["status"] == "ok" for r in recs) and len(recs) == len(samples)
    assert [len(c) for c in editor.calls[-3:]] == [4, 1, 1]  # the filled last batch, then each sample alone
