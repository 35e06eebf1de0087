"""The instruction's parse is made once (by the dataset reader), written into each record (``ops``)
and read from there by the editors, the metrics and the reports; records of runs from before the
field (the stored schema-1 run) are parsed when read."""

import dataclasses
import json
from pathlib import Path

import torch

from ix2x import records
from ix2x.benchmarks import runner
from ix2x.benchmarks.review_packet import facets as packet_facets
from ix2x.benchmarks.tables import load_run
from ix2x.data.instructions import UNREAD_LEVEL, EditOp, parse, recorded_ops
from ix2x.data.mimic import MimicEditDataset
from ix2x.diffusion.editor import pseudo_mask_for
from ix2x.metrics._shared import edit_ops
from ix2x.reports.data import facets
from ix2x.suite import suite_from_dict
from ix2x.types import Sample

GOLDEN_V1 = Path(__file__).parent / "golden" / "schema1"
INSTRUCTIONS = ("Add the finding of left pleural effusion.",
                "Change the level of pleural effusion from mild to moderate to large.",  # levels unreadable
                "make it look worse")  # not the grammar


def _run(tmp_path, samples):
    suite = suite_from_dict({"name": "t", "editors": [{"name": "identity"}],
                             "metrics": [{"name": "out_of_mask_change"}], "batch_size": 4})
    return runner.execute(runner.start_run(suite, tmp_path), samples, progress=False)


def test_the_run_writes_each_instruction_parse_into_its_record(tmp_path, samples):
    samples = [dataclasses.replace(s, instruction=INSTRUCTIONS[i % 3]) for i, s in enumerate(samples[:3])]
    outcome = _run(tmp_path, samples)
    lines = [json.loads(line) for line in (outcome.run_dir / records.SAMPLES_FILE).read_text().splitlines()]
    by_text = {r["instruction"]: r["ops"] for r in lines}
    assert by_text[INSTRUCTIONS[0]] == [{"op": "add", "finding": "Effusion", "side": "left", "from_level": None,
                                         "to_level": None, "phrase": "pleural effusion"}]
    assert by_text[INSTRUCTIONS[1]] == [{"op": "change", "finding": "Effusion", "side": None,
                                         "from_level": UNREAD_LEVEL, "to_level": UNREAD_LEVEL,
                                         "phrase": "pleural effusion"}]
    assert by_text[INSTRUCTIONS[2]] == []
    run = load_run(outcome.run_dir)
    assert list(run.records.sort_values("instruction")["ops"]) == [by_text[t] for t in sorted(INSTRUCTIONS)]


def test_records_of_runs_before_the_field_are_parsed_when_read():
    raw = [json.loads(line) for line in (GOLDEN_V1 / records.SAMPLES_FILE).read_text().splitlines()]
    assert raw and all("ops" not in r for r in raw)  # the old format, as stored
    recs = records.RunDir.open(GOLDEN_V1).sample_records()
    assert all(r.ops is None for r in recs)
    for rec in recs:
        assert recorded_ops(rec.as_dict()) == parse(rec.instruction)
        written = dataclasses.replace(rec, ops=[o.as_json() for o in parse(rec.instruction)])
        assert facets(rec.as_dict()) == facets(written.as_dict()) != ("unparsed", (), ())
        assert packet_facets(rec) == packet_facets(written) != ("unparsed", "")
    table = load_run(GOLDEN_V1).records
    assert [EditOp.from_json(o[0]) for o in table["ops"]] == [parse(r.instruction)[0] for r in recs]


def test_reports_read_the_recorded_parse_not_the_instruction():
    # A record whose ops say something else than its text: readers follow the ops.
    rec = records.SampleRecord(editor="e", sample_id="s", status="ok", instruction="Add the finding of edema.",
                               ops=[EditOp("remove", "Pneumothorax", side="right").as_json()])
    assert facets(rec.as_dict()) == ("remove", ("Pneumothorax",), ("right",))
    assert packet_facets(rec) == ("remove", "Pneumothorax")
    assert facets({**rec.as_dict(), "ops": []}) == ("unparsed", (), ())
    again = records.SampleRecord.from_dict(json.loads(json.dumps(rec.as_dict())))
    assert again.ops == rec.ops


def test_metrics_and_the_editor_read_the_sample_parse(tmp_path):
    ops = (EditOp("add", "Edema"),)
    sample = Sample("s", torch.zeros(1, 8, 8), "not an instruction the grammar reads", ops=ops)
    assert edit_ops(sample) == list(ops)
    mask, info = pseudo_mask_for(sample.instruction, 64, "atlas", ops=sample.ops)
    assert info["findings"] == ["Edema"] and not info.get("warnings")
    # Without a parse (a request made by hand) the editor parses the text, and says when it cannot.
    _, info = pseudo_mask_for(sample.instruction, 64, "atlas")
    assert info["findings"] == [] and "not understood" in info["warnings"][0]
    # A sample made by hand is parsed when read.
    assert edit_ops(Sample("s", torch.zeros(1, 8, 8), "Remove the finding of edema.")) == [EditOp("remove", "Edema")]


def test_the_dataset_reader_parses_each_instruction_once(tmp_path, samples):
    from samples_for_tests import write_mimic_dir

    samples = [dataclasses.replace(s, instruction=INSTRUCTIONS[i % 3]) for i, s in enumerate(samples[:3])]
    ds = MimicEditDataset(write_mimic_dir(tmp_path / "d", samples), split="test")
    got = {ds[i].instruction: ds[i].ops for i in range(len(ds))}
    assert got[INSTRUCTIONS[0]] == (EditOp("add", "Effusion", side="left"),)
    assert [o.finding for o in got[INSTRUCTIONS[1]]] == ["Effusion"]
    assert got[INSTRUCTIONS[2]] == ()
