"""Editors that load one model folder (InstructX2X and its ablations) load it once per run, in process
and in editor processes, with the same edits as alone; a crash of one of them costs its own samples."""

import json
import sys
import textwrap

import pytest

from ix2x import records

STEPS = {"steps": 2, "resolution": 64}

# Reached through its entry point, as a user's plugin is: the runner's child process imports it.
# It counts loads in a file (the child's own counters do not come back to the test).
PLUGIN = textwrap.dedent('''
    import os
    from dataclasses import dataclass

    from ix2x.diffusion import loading
    from ix2x.diffusion.editor import DiffusionEditor, DiffusionEditorConfig

    _load = loading.load_components

    def _counted(model, **kwargs):
        with open(os.environ["IX2X_TEST_LOADS"], "a") as f:
            f.write(f"{os.getpid()} {model}\\n")
        return _load(model, **kwargs)

    loading.load_components = _counted

    class CountedX2X(DiffusionEditor):
        pass

    @dataclass(frozen=True)
    class NoRseConfig(DiffusionEditorConfig):
        tau: float = 0.0

    class CountedNoRse(DiffusionEditor):
        Config = NoRseConfig

    class CrashesX2X(DiffusionEditor):
        def edit(self, requests):
            os._exit(7)
''')


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from ix2x.diffusion.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny_ip2p") / "model")


@pytest.fixture
def counting_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "counted_editors-0.1.dist-info").mkdir(parents=True)
    (site / "counted_editors.py").write_text(PLUGIN)
    (site / "counted_editors-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: counted-editors\nVersion: 0.1\n")
    (site / "counted_editors-0.1.dist-info" / "entry_points.txt").write_text(
        "[ix2x.editors]\ncounted_x2x = counted_editors:CountedX2X\ncounted_no_rse = counted_editors:CountedNoRse\n"
        "crashes_x2x = counted_editors:CrashesX2X\n")
    monkeypatch.syspath_prepend(str(site))
    # The plugin replaces loading.load_components when this process imports it: put the real one back
    # after the test, or every later test in this process would count loads into a missing file.
    from ix2x.diffusion import loading

    monkeypatch.setattr(loading, "load_components", loading.load_components)
    loads = tmp_path / "loads.txt"
    loads.write_text("")
    monkeypatch.setenv("IX2X_TEST_LOADS", str(loads))
    yield loads
    sys.modules.pop("counted_editors", None)


def _run(tmp_path, samples, editors, isolation, tiny_model_dir):
    from ix2x.benchmarks import runner
    from ix2x.suite import suite_from_dict

    suite = suite_from_dict({
        "name": "shared", "isolation": isolation, "batch_size": 2, "threads": 1,
        "editors": [{"name": e, **({} if e == "identity" else {"args": {"model": str(tiny_model_dir), **STEPS}})}
                    for e in editors],
        "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}}]})
    run_dir = runner.start_run(suite, tmp_path / "out")
    outcome = runner.execute(run_dir, samples, progress=False)
    return outcome, run_dir


def _edits(run_dir):
    """editor -> {sample id: the edit's PNG bytes}."""
    out = {}
    for r in records.RunDir.open(run_dir).records():
        if r.get("image"):
            out.setdefault(r["editor"], {})[r["sample_id"]] = (run_dir / r["image"]).read_bytes()
    return out


def test_editors_sharing_a_folder_load_it_once_in_process(tmp_path, samples, monkeypatch, tiny_model_dir):
    from ix2x import model_pool
    from ix2x.diffusion import loading

    loads = []
    load = loading.load_components
    monkeypatch.setattr(loading, "load_components", lambda model, **kw: loads.append(str(model)) or load(model, **kw))
    samples = samples[:3]
    outcome, run_dir = _run(tmp_path / "all", samples, ["instructx2x", "identity", "ix2x_no_rse", "instructpix2pix"],
                            "none", tiny_model_dir)
    assert outcome.ok and outcome.n_records == 4 * len(samples)
    assert loads == [str(tiny_model_dir)]  # three editors, one load
    assert model_pool.held() == []  # freed when the run no longer needs it

    # Each editor's edits are those it makes with a model of its own.
    shared = _edits(run_dir)
    for editor in ("ix2x_no_rse", "instructpix2pix"):
        alone, alone_dir = _run(tmp_path / editor, samples, [editor], "none", tiny_model_dir)
        assert alone.ok
        assert _edits(alone_dir)[editor] == shared[editor]
    assert len(loads) == 3


def test_editors_sharing_a_folder_share_one_process_and_a_crash_costs_its_own_samples(
        tmp_path, samples, counting_plugin, tiny_model_dir):
    """counted_x2x, crashes_x2x and counted_no_rse load one folder: one child, one load, until
    crashes_x2x kills it; counted_no_rse then goes on in a new child (a second load), and its
    records and counted_x2x's are complete."""
    samples = samples[:3]
    outcome, run_dir = _run(tmp_path, samples, ["counted_x2x", "identity", "crashes_x2x", "counted_no_rse"],
                            "process", tiny_model_dir)
    loads = counting_plugin.read_text().splitlines()
    assert len(loads) == 2 and all(line.endswith(str(tiny_model_dir)) for line in loads)
    assert len({line.split()[0] for line in loads}) == 2  # two processes
    recs = {}
    for r in records.RunDir.open(run_dir).records():
        recs.setdefault(r["editor"], []).append(r)
    for editor in ("counted_x2x", "identity", "counted_no_rse"):
        assert [r["status"] for r in recs[editor]] == ["ok"] * len(samples), editor
    assert [r["stage"] for r in recs["crashes_x2x"]] == ["crash"] * len(samples)
    assert outcome.failed_editors == ["crashes_x2x"]


def test_groups_keep_suite_order_for_editors_that_share_nothing():
    from types import SimpleNamespace

    from ix2x.benchmarks.isolation import groups

    jobs = [SimpleNamespace(key=k, shared_weights=w) for k, w in
            [("a", "/m1"), ("b", None), ("c", "/m2"), ("d", "/m1"), ("e", None), ("f", "/m2")]]
    assert [[j.key for j in g] for g in groups(jobs)] == [["a", "d"], ["b"], ["c", "f"], ["e"]]
