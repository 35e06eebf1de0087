"""Every metric of this package through the real runner: records written as strict JSON, read back,
aggregated into summary.csv, identity and oracle ordered as they must be."""

import math

from ix2x.benchmarks import runner
from ix2x import records
from ix2x.suite import suite_from_dict

METRICS = [
    {"name": "out_of_mask_change", "args": {"lpips_random_backbone": True, "pie_bench": True}},
    {"name": "classifier_shift", "args": {"classifier": "lookup"}},
    {"name": "demographic_preservation", "args": {"classifier": "lookup"}},
    {"name": "lpips", "args": {"random_backbone": True}},
    {"name": "cmig", "args": {"pathology_classifier": "lookup", "attribute_classifier": "lookup"}},
    {"name": "gt_fidelity", "args": {"lpips_random_backbone": True}},
    {"name": "guidance_localization"},
]


def test_all_metrics_through_the_runner(tmp_path, phantoms, lookup):
    # In process: the `lookup` classifier is registered in this process only, not in an editor's child.
    raw = {"name": "metrics_t", "seed": 0, "editors": [{"name": "identity"}, {"name": "oracle"}],
           "metrics": METRICS, "batch_size": 4, "isolation": "none"}
    run_dir = runner.start_run(suite_from_dict(raw), tmp_path)
    outcome = runner.execute(run_dir, phantoms, progress=False)
    assert outcome.ok, outcome
    recs = records.read_records(run_dir / records.SAMPLES_FILE)
    assert not [r["metrics"][k] for r in recs for k in r["metrics"] if "error" in r["metrics"][k]]
    rows = {(r["editor"], r["metric"], r["key"]): r for r in records.RunDir.open(run_dir).summary()}
    get = lambda e, m, k: rows[(e, m, k)]["value"]  # noqa: E731
    assert get("identity", "classifier_shift", "effect") == 0
    assert get("oracle", "classifier_shift", "effect") > 0.5
    assert get("oracle", "gt_fidelity", "mae") == 0 and get("identity", "gt_fidelity", "mae_in") > 0
    assert get("oracle", "out_of_mask_change", "mae") == 0 == get("identity", "out_of_mask_change", "mae")
    assert get("oracle", "cmig", "cmig") > get("identity", "cmig", "cmig") or \
        math.isnan(get("identity", "cmig", "cmig"))
    assert get("identity", "demographic_preservation", "sex_agree") == 1.0
    assert ("oracle", "guidance_localization", "iou") in rows
    assert rows[("oracle", "classifier_shift", "auroc_all")]["n"] == len(phantoms)


def test_records_do_not_depend_on_the_batch_size(tmp_path, phantoms):
    """Real networks (the shipped phantom classifier, LPIPS) through the runner: batch 1 and batch 3
    write the same records, byte for byte, timings aside."""
    metrics = [m for m in METRICS if "args" not in m or "lookup" not in str(m["args"])]
    metrics += [{"name": "classifier_shift"}, {"name": "demographic_preservation"}]
    runs = []
    for batch in (1, 3):
        raw = {"name": "batch_size_t", "seed": 0, "editors": [{"name": "identity"}, {"name": "oracle"}],
               "metrics": metrics, "batch_size": batch}
        run_dir = runner.start_run(suite_from_dict(raw), tmp_path / str(batch))
        assert runner.execute(run_dir, phantoms, progress=False).ok
        runs.append(records.dumps(records.without_timings(records.read_records(run_dir / records.SAMPLES_FILE))))
    assert runs[0] == runs[1]
