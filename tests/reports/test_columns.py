"""A report column is the metric's own HeadlineKey, as the metric class declares it, read back from
run.json and placed under the metric's label (one type for both, no field copied by hand)."""

import dataclasses
import json
from pathlib import Path

from ix2x.metrics.out_of_mask_change import OutOfMaskChange
from ix2x.records import HeadlineKey
from ix2x.reports.data import LATENCY, Column, RunView, all_columns


def _run(describe):
    meta = {"suite": {"name": "s", "metrics": [{"name": "out_of_mask_change", "label": "oomc"}], "editors": []},
            "metrics": {"oomc": {"name": "out_of_mask_change", "describe": describe}}}
    return RunView(Path("run"), json.loads(json.dumps(meta)), [], [])  # as run.json stores it


def test_columns_are_the_metrics_headline_keys_under_the_runs_label():
    declared, describe = OutOfMaskChange.headline, OutOfMaskChange.describe()
    cols = all_columns([_run(describe)])
    assert cols[-1] is LATENCY and len(cols) == len(declared) + 1
    for col, head in zip(cols, declared):
        assert isinstance(col, Column) and isinstance(col, HeadlineKey)
        assert HeadlineKey(**{f.name: getattr(col, f.name) for f in dataclasses.fields(HeadlineKey)}) == head
        assert (col.metric, col.metric_name, col.metric_glossary) == ("oomc", describe["name"],
                                                                        OutOfMaskChange.glossary)
        assert col.id == f"oomc.{head.key}"


def test_a_plugins_headline_with_fields_left_out_gets_the_defaults():
    cols = all_columns([_run({"name": "out_of_mask_change", "headline": [{"key": "mae"}]})])
    assert cols[0] == Column(key="mae", label="mae", higher_is_better=None, metric="oomc",
                             metric_name="out_of_mask_change")
    assert (cols[0].unit, cols[0].glossary, cols[0].precision) == ("", "", 3)
