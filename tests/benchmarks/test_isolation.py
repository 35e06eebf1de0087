"""Editor isolation: an editor that kills its process (segfault, os._exit) or ignores the batch
timeout costs only its own samples; the run goes on, and resume retries a crashed editor once.

The misbehaving editors are a plugin reached only through its entry point (a real dist-info on
sys.path), as a user's would be: the runner's child process must find it the same way."""

import json
import textwrap
import time

import pytest

from ix2x import records
from ix2x.cli.main import main

PLUGIN = textwrap.dedent('''
    import ctypes, os, time
    from ix2x.types import Editor, EditResult

    class Segfaults(Editor):
        def edit(self, requests):
            ctypes.string_at(0)  # reads address 0: SIGSEGV

    class ExitsHard(Editor):
        def edit(self, requests):
            os._exit(7)  # no exception, no cleanup: the process is gone

    class IgnoresTimeout(Editor):
        fill_batches = False

        def edit(self, requests):
            if any(r.sample_id.startswith("s002") for r in requests):
                end = time.monotonic() + 60
                while time.monotonic() < end:
                    try:
                        time.sleep(end - time.monotonic())
                    except BaseException:  # swallows the batch timeout too
                        pass
            return [EditResult(image=r.image.clone()) for r in requests]
''')


@pytest.fixture
def crashing_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "crashing_editors-0.1.dist-info").mkdir(parents=True)
    (site / "crashing_editors.py").write_text(PLUGIN)
    (site / "crashing_editors-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: crashing-editors\nVersion: 0.1\n")
    (site / "crashing_editors-0.1.dist-info" / "entry_points.txt").write_text(
        "[ix2x.editors]\nsegfaults = crashing_editors:Segfaults\nexits_hard = crashing_editors:ExitsHard\n"
        "ignores_timeout = crashing_editors:IgnoresTimeout\n")
    monkeypatch.syspath_prepend(str(site))
    return site


def _run(tmp_path, samples, editors, capsys, *extra):
    from samples_for_tests import write_mimic_dir

    data = write_mimic_dir(tmp_path / "data", samples)
    suite = {"name": "iso", "editors": [{"name": e} for e in editors],
             "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}}],
             "batch_size": 2, "data": {"source": "dir", "path": str(data), "split": "test"}}
    (tmp_path / "suite.yaml").write_text(json.dumps(suite))
    rc = main(["run", "--suite", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "out"), "--quiet", *extra])
    (run_dir,) = (tmp_path / "out" / "iso").iterdir()
    return rc, capsys.readouterr().err, run_dir


def _by_editor(run_dir):
    out = {}
    for r in records.RunDir.open(run_dir).records():
        out.setdefault(r["editor"], []).append(r)
    return out


def _resume(run_dir, capsys, *extra):
    rc = main(["run", "--resume", str(run_dir), "--quiet", *extra])
    return rc, capsys.readouterr().err


def test_an_editor_that_kills_its_process_costs_only_itself(tmp_path, samples, capsys, crashing_plugin):
    rc, err, run_dir = _run(tmp_path, samples, ["identity", "segfaults", "exits_hard", "oracle"], capsys)
    assert rc == 1
    recs = _by_editor(run_dir)
    assert [r["status"] for r in recs["identity"] + recs["oracle"]] == ["ok"] * 12
    for editor, cause in (("segfaults", "killed by signal 11 (SIGSEGV)"), ("exits_hard", "exited with code 7")):
        assert len(recs[editor]) == 6 and {(r["status"], r["stage"]) for r in recs[editor]} == {("failed", "crash")}
        assert all(cause in r["error"] for r in recs[editor]), recs[editor][0]["error"]
        assert f"editor `{editor}` failed on EVERY sample (6)" in err
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and meta["n_failed"] == {"identity": 0, "segfaults": 6, "exits_hard": 6,
                                                                 "oracle": 0}
    assert {r["editor"] for r in records.RunDir.open(run_dir).summary()} >= {"identity", "oracle"}

    # Asked to, resume keeps the crashed editors' failures and does not run them.
    rc, err = _resume(run_dir, capsys, "--skip-crashed")
    assert rc == 1 and "`segfaults` crashed earlier (the editor's process killed by signal 11 (SIGSEGV)" in err
    assert "not retried (--skip-crashed)" in err
    # Otherwise it retries each crashed editor once: it crashes again, is recorded again, the run completes ...
    rc, err = _resume(run_dir, capsys)
    assert rc == 1 and "retrying its 6 sample(s) once" in err
    after = _by_editor(run_dir)
    assert [r["status"] for r in after["identity"] + after["oracle"]] == ["ok"] * 12
    assert all("SIGSEGV" in r["error"] for r in after["segfaults"]) and len(after["segfaults"]) == 6
    assert json.loads((run_dir / "run.json").read_text())["crash_retries"] == {"segfaults": 1, "exits_hard": 1}
    # ... and is not retried a second time.
    rc, err = _resume(run_dir, capsys)
    assert rc == 1 and "crashed again after its retry" in err and "retrying" not in err
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"


def test_an_editor_that_ignores_the_timeout_is_stopped_by_the_clock(tmp_path, samples, capsys, crashing_plugin):
    t0 = time.monotonic()
    rc, err, run_dir = _run(tmp_path, samples, ["ignores_timeout", "identity"], capsys, "--batch-timeout", "1")
    assert time.monotonic() - t0 < 50  # the 60 s sleep was cut
    recs = _by_editor(run_dir)
    by_id = {r["sample_id"][:4]: r for r in recs["ignores_timeout"]}
    assert {k for k, r in by_id.items() if r["status"] == "failed"} == {"s002", "s003"}  # the batch holding s002
    assert by_id["s002"]["stage"] == "timeout" and "its process was killed" in by_id["s002"]["error"]
    assert all(by_id[k]["status"] == "ok" for k in ("s000", "s001", "s004", "s005"))  # a new process went on
    assert rc == 1 and [r["status"] for r in recs["identity"]] == ["ok"] * 6
