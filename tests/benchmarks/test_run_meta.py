"""run.json's provenance is typed (RunMeta fields), and what a run does not have is left out."""

from ix2x.records import SCHEMA_VERSION, RunMeta


def test_provenance_reads_into_fields_and_unknown_keys_stay_in_extra():
    d = {"schema_version": SCHEMA_VERSION, "suite": {"name": "s"}, "packages": {"torch": "2.14.1"},
         "git": {"commit": "abc", "dirty": False}, "device": {"kind": "cpu"}, "argv": ["run"],
         "weights": {"/w.pt": "00"}, "from_the_future": 1}
    meta = RunMeta.from_dict(d)
    assert meta.packages == {"torch": "2.14.1"} and meta.git["commit"] == "abc" and meta.argv == ["run"]
    assert meta.weights == {"/w.pt": "00"} and meta.extra == {"from_the_future": 1}
    out = meta.as_dict()
    assert out["from_the_future"] == 1 and out["device"] == {"kind": "cpu"}
    # never merged, never rescored: those keys are absent, not null
    assert "merged_from" not in out and "rescored_metrics" not in out and "data_changes" not in out
