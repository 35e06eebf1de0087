"""A run killed by a signal midway, then resumed, ends with the records of an uninterrupted run."""

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from ix2x.benchmarks import rundir, runner
from ix2x import records
from ix2x.suite import suite_from_dict

SUITE = {"name": "resume", "editors": [{"name": "identity"}, {"name": "oracle"}],
         "metrics": [{"name": "out_of_mask_change"}], "batch_size": 2}


def _comparable(run_dir: Path):
    recs = records.RunDir.open(run_dir).records()
    return records.without_timings(recs)


def _summary_without_latency(run_dir: Path):
    return [r for r in records.RunDir.open(run_dir).summary() if r["metric"] != "latency"]


def test_kill_midway_then_resume_equals_uninterrupted(tmp_path, samples):
    killed = runner.start_run(suite_from_dict(SUITE), tmp_path / "killed")
    # The child runs the suite and SIGKILLs itself right after the 5th record reaches disk.
    child = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parents[1])!r})
        from pathlib import Path
        from ix2x.benchmarks import runner
        from samples_for_tests import tiny_samples
        def die(n):
            if n >= 5:
                os.kill(os.getpid(), signal.SIGKILL)
        runner.execute(Path({str(killed)!r}), tiny_samples(), progress=False, on_batch=die)
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    partial = records.RunDir.open(killed).records()
    assert 5 <= len(partial) < 12 and json.loads((killed / "run.json").read_text())["status"] == "running"

    runner.execute(killed, samples, progress=False)
    clean = runner.start_run(suite_from_dict(SUITE), tmp_path / "clean")
    runner.execute(clean, samples, progress=False)
    assert _comparable(killed) == _comparable(clean)
    assert _summary_without_latency(killed) == _summary_without_latency(clean)


def test_torn_last_line_is_dropped_and_redone(tmp_path, samples):
    run_dir = runner.start_run(suite_from_dict(SUITE), tmp_path)
    runner.execute(run_dir, samples[:3], progress=False)
    path = run_dir / records.SAMPLES_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    # Simulate a kill in the middle of writing the last record.
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    assert len(records.read_records(path)) == len(lines) - 1
    runner.execute(run_dir, samples[:3], progress=False)
    recs = records.RunDir.open(run_dir).records()
    assert len(recs) == 6
    assert len({(r["editor"], r["sample_id"]) for r in recs}) == 6  # nothing duplicated


def test_resume_via_cli_of_a_finished_run_adds_nothing(tmp_path, samples):
    from samples_for_tests import write_mimic_dir

    from ix2x.cli.main import main

    data = write_mimic_dir(tmp_path / "data", samples)
    suite = tmp_path / "s.yaml"
    suite.write_text(json.dumps({**SUITE, "data": {"source": "dir", "path": str(data), "split": "test"}}))
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    (run_dir,) = (tmp_path / "out" / "resume").iterdir()
    before = (run_dir / records.SAMPLES_FILE).read_bytes()
    assert len(records.read_records(run_dir / records.SAMPLES_FILE)) == 2 * len(samples)
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    assert (run_dir / records.SAMPLES_FILE).read_bytes() == before


def test_a_run_recorded_with_an_editor_device_still_resumes(tmp_path, samples):
    """Runs started before editors lost their `device` setting kept it in run.json's editor args."""
    suite = {**SUITE, "editors": [{"name": "identity"}, {"name": "instructx2x", "args": {"steps": 2}}]}
    run_dir = runner.start_run(suite_from_dict(suite), tmp_path)
    meta = json.loads((run_dir / records.RUN_FILE).read_text())
    meta["suite"]["editors"][1]["args"]["device"] = "cpu"
    (run_dir / records.RUN_FILE).write_text(json.dumps(meta))
    loaded = rundir.load_run_suite(run_dir)
    assert [dict(e.args) for e in loaded.editors] == [{}, {"steps": 2}]
    editors, _ = runner.resolve(loaded)  # the old setting is not an error, the others are kept
    assert editors[1].config.steps == 2 and not hasattr(editors[1].config, "device")
