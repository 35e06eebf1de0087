"""The run's metric objects, shared by the runner and the editors' processes (benchmarks.isolation):
placed on the device, given the run's scoring state, handed the editor of the moment."""

from __future__ import annotations

from typing import Any, Sequence

from ix2x.errors import UserError
from ix2x.suite import Suite


def placed(metric: Any, device: str) -> Any:
    # `to()` returns the metric by contract, but a plugin returning None must not lose it.
    moved = metric.to(device)
    return metric if moved is None else moved


def with_scoring(metric_objs: list[Any], suite: Suite) -> Any:
    """Give the metrics one per-run scoring state (models built once, prediction and feature
    caches, the evaluation size: ix2x.classifiers.scoring) through the hook `Metric` declares,
    ``use_scoring``, and return it. An object that does not derive from `Metric` and has no such
    hook gets none: nothing is set on a plugin that did not ask for it."""
    from ix2x.classifiers.scoring import Scoring

    state = Scoring(suite.device, eval_size=suite.eval_size, batch_size=suite.batch_size)
    for metric in metric_objs:
        use = getattr(metric, "use_scoring", None)
        if callable(use):
            use(state)
    return state


def bind(metric_objs: Sequence[Any], editor: Any, suite: Suite) -> None:
    """Hand ``editor`` (None: take it back) to the metrics that edit again."""
    for metric in metric_objs:
        if not getattr(metric, "uses_editor", False):
            continue
        if not callable(getattr(metric, "bind_editor", None)):
            raise UserError(f"Metric {type(metric).__name__} sets `uses_editor` but cannot be given an editor: "
                            "derive it from `ix2x.types.EditsAgain` (the capability that binds one).")
        if editor is None:
            metric.unbind_editor()
        else:
            metric.bind_editor(editor, suite.seed, suite.batch_size)
