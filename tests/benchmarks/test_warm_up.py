"""The warm-up edits the editor's first batch untimed and those edits are the batch's records: no
batch is edited twice (a run of one batch keeps one timed edit)."""

import json

import pytest
import torch

from ix2x import records, registry
from ix2x.cli.main import main
from ix2x.types import Editor, EditResult

REAL_LOAD = registry.load


class Counting(Editor):
    """Adds seeded noise (so edits depend on the request's seed) and counts the requests it edits."""

    requests_seen: list[str] = []

    def edit(self, requests):
        Counting.requests_seen += [r.sample_id for r in requests]
        out = []
        for r in requests:
            g = torch.Generator().manual_seed(r.seed)
            out.append(EditResult(image=(r.image + 0.05 * torch.rand(r.image.shape, generator=g)).clamp(0, 1)))
        return out


@pytest.fixture
def counting(monkeypatch):
    Counting.requests_seen = []
    monkeypatch.setattr(registry, "load", lambda kind, name: Counting if kind == "editor" and name == "counting"
                        else REAL_LOAD(kind, name))
    return Counting


def _run(tmp_path, samples, limit, isolation="none"):
    """``isolation: none`` by default: the counting editor counts in this process."""
    from samples_for_tests import write_mimic_dir

    data = write_mimic_dir(tmp_path / "data", samples)
    suite = tmp_path / "s.yaml"
    suite.write_text(json.dumps({"name": "warm", "editors": [{"name": "counting"}], "isolation": isolation,
                                 "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}}],
                                 "batch_size": 2, "data": {"source": "dir", "path": str(data), "split": "test"}}))
    out = tmp_path / f"out{limit}"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--quiet", "--limit", str(limit)]) == 0
    (run_dir,) = (out / "warm").iterdir()
    return {r["sample_id"]: r for r in records.RunDir.open(run_dir).records()}


def test_the_first_batch_is_edited_once(tmp_path, samples, counting):
    recs = _run(tmp_path, samples, 6)
    ids = sorted(recs)
    assert sorted(counting.requests_seen) == ids  # 3 batches of 2: each sample edited once
    first = set(counting.requests_seen[:2])
    assert all(r["status"] == "ok" for r in recs.values())
    assert {i for i, r in recs.items() if r["latency_s"] is None} == first  # the warm-up is not timed
    assert all(r["latency_s"] > 0 for i, r in recs.items() if i not in first)


def test_the_first_batch_is_the_warm_ups_in_an_editor_process_too(tmp_path, samples, counting):
    in_child = _run(tmp_path / "child", samples, 6, isolation="process")
    assert counting.requests_seen == []  # edited in the child
    ids = sorted(in_child)
    assert {i for i, r in in_child.items() if r["latency_s"] is None} == set(ids[:2])
    assert all(r["latency_s"] > 0 for i, r in in_child.items() if i not in ids[:2])
    in_process = _run(tmp_path / "here", samples, 6)
    assert {sid: r["metrics"] for sid, r in in_child.items()} == {sid: r["metrics"] for sid, r in in_process.items()}


def test_same_edits_as_when_every_batch_is_timed(tmp_path, samples, counting):
    """The warm-up's edits of the first batch are the ones a timed edit gives (same seeds, same
    batch): a one-batch run (warm-up, then the timed edit) scores them the same."""
    reused = _run(tmp_path / "a", samples, 6)
    counting.requests_seen = []
    for start in (0, 2, 4):
        (tmp_path / f"b{start}").mkdir()
        single = _run(tmp_path / f"b{start}", samples[start:start + 2], 2)
        assert len(counting.requests_seen) == 4  # one batch: warm-up plus one timed edit
        assert all(r["latency_s"] > 0 for r in single.values())
        counting.requests_seen = []
        for sid, r in single.items():
            assert r["metrics"] == reused[sid]["metrics"]


@pytest.mark.parametrize("isolation", ["none", "process"])
def test_each_sample_is_hashed_once_per_run(tmp_path, samples, monkeypatch, isolation):
    """Regression: ``hashes.setdefault(i, sample_hash(s))`` hashed every sample again for every editor.
    In editor processes the first editor's child hashes and reports them: the second's job carries them."""
    from ix2x.benchmarks import isolation as iso, rundir, runner
    from ix2x.suite import suite_from_dict

    known = []  # the hashes each editor's child is given
    run_in_child = iso.run_in_child

    def spy(job_bytes, jobs, **kwargs):
        known.append(dict(__import__("pickle").loads(job_bytes)[0].hashes))
        return run_in_child(job_bytes, jobs, **kwargs)

    monkeypatch.setattr(iso, "run_in_child", spy)

    hashed = []
    sample_hash = rundir.sample_hash
    monkeypatch.setattr(rundir, "sample_hash", lambda s: hashed.append(s.sample_id) or sample_hash(s))
    suite = suite_from_dict({"name": "hash", "editors": [{"name": "identity"}, {"name": "oracle"}],
                             "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}}],
                             "batch_size": 4, "isolation": isolation})
    run_dir = runner.start_run(suite, tmp_path)
    hashed.clear()
    outcome = runner.execute(run_dir, samples, progress=False)
    assert outcome.ok and outcome.n_records == 2 * len(samples)
    if isolation == "none":
        assert sorted(hashed) == sorted(s.sample_id for s in samples)
        return
    assert hashed == [] and len(known) == 2 and known[0] == {}  # hashed in the children
    assert sorted(known[1]) == list(range(len(samples)))
    assert known[1] == {i: rundir.sample_hash(s) for i, s in enumerate(samples)}
