"""The per-run state a metric receives is part of the `Metric` contract (`Metric.scoring`, given
through `Metric.use_scoring`), not an attribute the runner sets on whatever object it holds; a plugin
written as docs/plugins.md teaches runs unchanged and sees the run's state."""

from types import SimpleNamespace

import pytest

from ix2x import registry
from ix2x.types import Metric


@pytest.fixture
def fresh_registry(monkeypatch):
    monkeypatch.setattr(registry, "_IN_PROCESS", {kind: {} for kind in registry.GROUPS})


class MeanBrightness(Metric):
    """A plugin metric as the docs show one: no __init__, no knowledge of scoring."""

    higher_is_better = {"mean": True}

    def compute(self, samples, results):
        return [{"mean": float(r.image.mean())} for r in results]


class SeesTheRun(MeanBrightness):
    """A plugin that uses the declared state: the run's evaluation size, and one state per run."""

    given = []

    def use_scoring(self, scoring):
        super().use_scoring(scoring)
        SeesTheRun.given.append(scoring)

    def compute(self, samples, results):
        return [dict(v, eval_size=self.scoring.eval_size) for v in super().compute(samples, results)]


def test_metric_declares_its_per_run_state():
    assert Metric.scoring is None and callable(Metric.use_scoring)
    metric = MeanBrightness()
    assert metric.scoring is None  # outside a run
    metric.use_scoring(state := object())
    assert metric.scoring is state and MeanBrightness.scoring is None  # per instance, not per class


def test_nothing_is_set_on_an_object_that_did_not_declare_it():
    from ix2x.benchmarks.metric_objects import with_scoring
    from ix2x.suite import suite_from_dict

    duck = SimpleNamespace(compute=lambda samples, results: [])
    state = with_scoring([duck, declared := MeanBrightness()], suite_from_dict({"name": "s"}))
    assert not hasattr(duck, "scoring") and declared.scoring is state


def test_plugins_written_against_the_docs_run_and_see_the_run_state(tmp_path, fresh_registry):
    from ix2x.benchmarks import load_run, run_suite

    registry.register("metric", "mean_brightness", MeanBrightness)
    registry.register("metric", "sees_the_run", SeesTheRun)
    SeesTheRun.given.clear()
    outcome = run_suite("phantom_smoke", tmp_path, editors=["identity"], limit=3, progress=False,
                        report=False, metrics=["mean_brightness", "sees_the_run"])
    assert outcome.ok
    records = load_run(outcome.run_dir).records
    assert len(records) == 3 and (records["mean_brightness.mean"] > 0).all()
    assert (records["sees_the_run.mean"] == records["mean_brightness.mean"]).all()
    assert (records["sees_the_run.eval_size"] == 512).all()  # the suite's eval_size (Suite default)
    assert len(SeesTheRun.given) == 1  # one state for the run
