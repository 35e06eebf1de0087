"""`ix2x compare --json`: the same rows the table prints, as JSON a script reads (NaN as null)."""

import json
import math

from ix2x.benchmarks import runner
from ix2x.benchmarks.compare import compare_runs
from ix2x.cli.main import main
from ix2x.suite import suite_from_dict


def _run(root, samples, editor):
    suite = suite_from_dict({"name": "c", "editors": [{"name": editor, "label": "ed"}],
                             "metrics": [{"name": "out_of_mask_change"}]})
    return runner.execute(runner.start_run(suite, root), samples, progress=False).run_dir


def test_compare_json_rows_and_gates(tmp_path, samples, capsys):
    import dataclasses

    # B: the oracle scored against an empty region, so every change it makes is out-of-mask change.
    shifted = [dataclasses.replace(s, region=s.region * 0) for s in samples]
    a, b = _run(tmp_path / "a", samples, "identity"), _run(tmp_path / "b", shifted, "oracle")
    assert main(["compare", str(a), str(b), "--json", "--all", "--fail-if", "out_of_mask_change.mae:+5%"]) == 1
    report = json.loads(capsys.readouterr().out)
    reference = compare_runs(str(a), str(b))
    assert len(report["rows"]) == len(reference) > 0
    for got, ref in zip(report["rows"], reference):
        for k, v in ref.items():
            assert (got[k] is None and math.isnan(v)) if isinstance(v, float) and math.isnan(v) else got[k] == v
    assert report["gate_failures"] and report["gate_failures"][0].startswith("ed out_of_mask_change.mae")
