"""Array-job shards (`--shard I/N`) merged by `ix2x merge` give the one process's summary."""

import csv
import os
import shutil
import subprocess
import sys

import pytest

from ix2x import records
from ix2x.benchmarks import array_shard
from ix2x.cli.main import main
from ix2x.errors import UserError

SUITE = """
name: arr
data: {{source: dir, path: {data}, split: test}}
editors: [{{name: identity}}, {{name: oracle}}]
metrics: [{{name: out_of_mask_change, args: {{lpips_net: null}}}}, {{name: gt_fidelity, args: {{lpips_net: null}}}}]
batch_size: 2
"""


def _summary_without_latency(run_dir):
    with open(run_dir / "summary.csv", newline="") as f:
        return [row for row in csv.DictReader(f) if row["metric"] != "latency"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from samples_for_tests import tiny_samples, write_mimic_dir

    root = tmp_path_factory.mktemp("arr")
    data = write_mimic_dir(root / "data", tiny_samples(n=11))
    suite = root / "arr.yaml"
    suite.write_text(SUITE.format(data=data))
    assert main(["run", "--suite", str(suite), "--quiet", "--out", str(root / "one")]) == 0
    (single,) = list((root / "one" / "arr").iterdir())
    for i in range(3):
        assert main(["run", "--suite", str(suite), "--quiet", "--shard", f"{i}/3", "--out", str(root / "sh")]) == 0
    shards = sorted((root / "sh" / "arr").iterdir())
    return suite, single, shards, root


def test_three_shards_merged_equal_one_process(runs):
    suite, single, shards, root = runs
    assert [s.name for s in shards] == ["shard-0-of-3", "shard-1-of-3", "shard-2-of-3"]
    ids = [r.sample_id for r in records.RunDir.open(single).sample_records() if r.editor == "identity"]
    per_shard = [{r.sample_id for r in records.RunDir.open(s).sample_records()} for s in shards]
    assert all(per_shard) and sorted(x for p in per_shard for x in p) == sorted(ids)  # a split, none empty
    assert main(["merge", *map(str, shards), "--out", str(root / "merged"), "--quiet"]) == 0
    merged = root / "merged"
    assert _summary_without_latency(merged) == _summary_without_latency(single)  # values and intervals
    strip = lambda d: records.without_timings(records.RunDir.open(d).records())  # noqa: E731
    assert strip(merged) == strip(single)
    meta = records.RunDir.open(merged).meta
    assert [m["index"] for m in meta["merged_shards"]] == [0, 1, 2] and "shard" not in meta
    assert meta["data_fingerprint"] == records.RunDir.open(single).meta["data_fingerprint"]
    assert (merged / "report.html").is_file()


def test_merge_refuses_a_missing_shard_and_names_its_samples(runs, tmp_path, capsys):
    _, _, shards, _ = runs
    assert main(["merge", str(shards[0]), str(shards[2]), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    lost = sorted(r.sample_id for r in records.RunDir.open(shards[1]).sample_records() if r.editor == "identity")
    assert "shard(s) 1 of 3 not given" in err and all(sid in err for sid in lost)
    assert not (tmp_path / "m").exists()
    assert main(["merge", str(shards[0]), str(shards[2]), "--out", str(tmp_path / "p"), "--allow-partial",
                 "--quiet"]) == 1  # merged, and the exit status says it is partial
    partial = records.RunDir.open(tmp_path / "p").meta["partial"]
    assert partial["missing_shards"] == [1] and sorted(partial["missing"]) == lost


def test_merge_refuses_shards_that_disagree(runs, tmp_path, capsys):
    _, _, shards, _ = runs
    other = tmp_path / "shard-1-of-3"
    shutil.copytree(shards[1], other)
    meta = records.RunDir.open(other).meta
    meta["suite"]["seed"] = 7
    records.write_json_atomic(other / "run.json", meta)
    assert main(["merge", str(shards[0]), str(other), str(shards[2]), "--out", str(tmp_path / "m")]) == 2
    assert "must agree on suite and settings" in capsys.readouterr().err
    meta = records.RunDir.open(shards[1]).meta
    assert meta["git"]["commit"]  # the code version is recorded, so the check below compares something
    meta["git"] = {**meta["git"], "commit": "0" * 40}
    records.write_json_atomic(other / "run.json", meta)
    assert main(["merge", str(shards[0]), str(other), str(shards[2]), "--out", str(tmp_path / "m")]) == 2
    assert "must agree on code version" in capsys.readouterr().err
    assert main(["merge", str(shards[0]), str(shards[0]), "--out", str(tmp_path / "m")]) == 2
    assert "given twice" in capsys.readouterr().err
    again = tmp_path / "copy-of-shard-0"
    shutil.copytree(shards[0], again)
    assert main(["merge", *map(str, shards), str(again), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    first = records.RunDir.open(shards[0]).sample_records()[0].sample_id
    assert "covered by more than one shard" in err and first in err and not (tmp_path / "m").exists()


def test_a_started_again_shard_resumes_its_directory(runs):
    suite, _, shards, root = runs
    before = (shards[1] / "samples.jsonl").read_bytes()
    assert main(["run", "--suite", str(suite), "--quiet", "--shard", "1/3", "--out", str(root / "sh")]) == 0
    assert sorted((root / "sh" / "arr").iterdir()) == shards  # no new directory
    assert (shards[1] / "samples.jsonl").read_bytes() == before  # nothing redone


def test_split_depends_on_ids_and_count_only():
    """sha256 of the id, independent of order; Slurm's task ids counted from their minimum and step."""
    import hashlib

    ids = [f"s{i}" for i in range(50)]
    for sid in ids:
        assert array_shard.bucket(sid, 4) == int(hashlib.sha256(sid.encode()).hexdigest()[:16], 16) % 4
    assert array_shard.owned_ids(ids, {"index": 1, "count": 4}) == \
        [s for s in ids if s in set(array_shard.owned_ids(list(reversed(ids)), {"index": 1, "count": 4}))]
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1",
           "SLURM_ARRAY_TASK_STEP": "2"}  # --array=1-5:2 -> tasks 1, 3, 5
    assert array_shard.parse("slurm", env) == array_shard.ArrayShard(2, 3)
    assert array_shard.parse("0/1") == array_shard.ArrayShard(0, 1)
    for bad in ("3/3", "x", "1/0", "-1/2"):
        with pytest.raises(UserError, match="--shard"):
            array_shard.parse(bad)
    with pytest.raises(UserError, match="Slurm job array"):
        array_shard.parse("slurm", {})


@pytest.mark.slow
def test_torchrun_agrees_with_merged_shards(runs, tmp_path):
    suite, single, _, _ = runs
    # `python -m torch.distributed.run` is torchrun (present wherever torch is, even without the script)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "ix2x", "run", "--suite", str(suite), "--quiet", "--out", str(tmp_path)],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (sharded,) = list((tmp_path / "arr").iterdir())
    assert _summary_without_latency(sharded) == _summary_without_latency(single)


def test_torchrun_ranks_take_their_node_local_gpu(monkeypatch):
    """Under torchrun with several GPUs per node, `--device cuda` placed every rank on cuda:0; each
    rank now makes its LOCAL_RANK's GPU the current one (what "cuda" then means)."""
    import torch
    import torch.distributed as dist

    from ix2x.benchmarks import shard

    chosen = []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("LOCAL_RANK", "3")
    shard.init(shard.Shard(rank=7, world_size=8))
    assert chosen == [3]


@pytest.mark.slow
def test_phantom_smoke_set_level_metrics_merge_exactly(tmp_path):
    """phantom_smoke (AUROC of the classifier shift, Pearson r of the age predictions, bootstrap
    intervals of every metric): three shards merged give the one process's summary.csv, row for row."""
    assert main(["run", "--suite", "phantom_smoke", "--quiet", "--out", str(tmp_path / "one")]) == 0
    (single,) = list((tmp_path / "one" / "phantom_smoke").iterdir())
    for i in range(3):
        assert main(["run", "--suite", "phantom_smoke", "--quiet", "--shard", f"{i}/3",
                     "--out", str(tmp_path / "sh")]) == 0
    shards = sorted((tmp_path / "sh" / "phantom_smoke").iterdir())
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "merged"), "--quiet"]) == 0
    rows = _summary_without_latency(tmp_path / "merged")
    assert rows == _summary_without_latency(single)
    keys = {(r["metric"], r["key"]) for r in rows if r["value"]}
    assert {("classifier_shift", "auroc_target"), ("demographic_preservation", "age_pearson_r")} <= keys
