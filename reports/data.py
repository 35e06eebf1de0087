"""What a report needs from run directories: nothing but the run records.

The leaderboard's columns come from the metrics themselves: run.json records each metric's
``describe()`` (headline keys, direction, unit, glossary text, precision), so a plugin metric
reaches the leaderboard and the glossary with no change here. Runs recorded before metrics
described themselves fall back to :data:`LEGACY_HEADLINE` (built-in metrics only, no glossary).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ix2x.records import HeadlineKey, RunDir

# The leaderboard of runs recorded before run.json carried ``describe`` (metric, key, label, higher
# is better).
LEGACY_HEADLINE: tuple[tuple[str, str, str, bool], ...] = (
    ("classifier_shift", "effect", "effectiveness", True),
    ("classifier_shift", "flip_rate", "flip rate", True),
    ("classifier_shift", "auroc_target", "AUROC target", True),
    ("classifier_shift", "collateral", "collateral change", False),
    ("demographic_preservation", "sex_agree", "sex kept", True),
    ("demographic_preservation", "group_agree", "group kept", True),
    ("demographic_preservation", "age_abs_diff", "age change", False),
    ("demographic_preservation", "age_pearson_r", "age r", True),
    ("out_of_mask_change", "mae", "out-of-mask MAE", False),
    ("out_of_mask_change", "changed_fraction", "out-of-mask changed", False),
    ("lpips", "lpips_input", "LPIPS x vs x'", False),
    ("gt_fidelity", "mae_in", "fidelity MAE in mask", False),
    ("guidance_localization", "auroc", "guidance AUROC", True),
    ("cmig", "cmig", "CMIG", True),
)

# Rows the runner itself writes (no Metric class describes them).
LATENCY_GLOSSARY = ("Harness-measured time per edit: median over samples, after one untimed warm-up "
                    "batch, with device synchronisation. On a shared CPU read it as indicative.")
# Editors that bound every metric from below and above: shown apart and never ranked.
REFERENCE_ROLES = {"identity": "floor", "oracle": "ceiling"}
# Cells whose n is below this are flagged: a mean of a handful of samples says little.
TINY_N = 10


@dataclass(frozen=True, kw_only=True)
class Column(HeadlineKey):
    """One value the report shows: a metric's :class:`~ix2x.records.HeadlineKey` (as run.json
    recorded it) placed under the metric's label in the run, ``metric`` (the key of its values in
    each record); ``metric_name`` is its registry name, ``metric_glossary`` what it measures."""

    metric: str
    metric_name: str = ""
    metric_glossary: str = ""

    @property
    def id(self) -> str:
        return f"{self.metric}.{self.key}"

    @property
    def anchor(self) -> str:
        return "g-" + "".join(c if c.isalnum() else "-" for c in self.id)

    @property
    def arrow(self) -> str:
        return {True: "↑", False: "↓"}.get(self.higher_is_better, "")


LATENCY = Column(key="median_s", label="latency per edit", higher_is_better=False, unit="s",
                 glossary=LATENCY_GLOSSARY, metric="latency", metric_name="latency",
                 metric_glossary="Harness measurements, not a metric: timed by the runner around each batch.")


@dataclass
class EditorView:
    label: str  # unique across the report
    editor: str  # the key in its run
    run: "RunView"
    summary: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The editor's registry name."""
        return (self.run.meta.get("editors", {}).get(self.editor) or {}).get("name", self.editor)

    @property
    def role(self) -> str:
        """'floor' (identity), 'ceiling' (oracle) or 'editor'."""
        return REFERENCE_ROLES.get(self.name, "editor")

    @property
    def config(self) -> dict[str, Any]:
        return (self.run.meta.get("editors", {}).get(self.editor) or {}).get("config", {}) or {}

    def value(self, metric: str | Column, key: str | None = None) -> dict[str, Any] | None:
        if isinstance(metric, Column):
            col = metric
            return self.summary.get((col.metric, col.key)) or self.summary.get((col.metric_name, col.key))
        return self.summary.get((metric, key))

    def per_sample(self, metric: str | Column, key: str | None = None) -> dict[str, float]:
        """Finite per-sample values of ``metric.key`` by sample id (failed samples have none)."""
        if isinstance(metric, Column):
            metric, key = metric.metric, metric.key
        cache = self.__dict__.setdefault("_per_sample", {})
        if (metric, key) not in cache:
            out = {}
            for r in self.records:
                # Latency rows summarise each record's own timing.
                v = (r.get("latency_s") if metric == "latency" else
                     (r.get("metrics") or {}).get(metric, {}).get(key))
                if r["status"] == "ok" and _is_number(v) and math.isfinite(v):
                    out[r["sample_id"]] = float(v)
            cache[(metric, key)] = out
        return cache[(metric, key)]

    def patients(self) -> dict[str, str]:
        """Patient id by sample id, for samples that record one."""
        return {r["sample_id"]: str(r["patient_id"]) for r in self.records if r.get("patient_id")}

    @property
    def ok_ids(self) -> frozenset[str]:
        return frozenset(r["sample_id"] for r in self.records if r["status"] == "ok")

    def scored_ids(self, col: Column) -> frozenset[str]:
        """The samples a value was computed on: per-sample values where the metric has them,
        else (set-level statistics such as an AUROC) every sample the editor edited."""
        values = self.per_sample(col)
        return frozenset(values) if values else self.ok_ids

    def nan_reason(self, col: Column) -> str | None:
        """Why ``col`` is missing: the most common ``nan_reason`` or metric error of its records."""
        reasons: Counter[str] = Counter()
        for r in self.records:
            if r["status"] != "ok":
                continue
            v = (r.get("metrics") or {}).get(col.metric)
            if v is None:
                reasons[f"metric {col.metric} was not computed for this sample"] += 1
            elif "error" in v:
                reasons[f"metric error: {v['error']}"] += 1
            elif v.get(col.key) is None and v.get("nan_reason"):
                reasons[str(v["nan_reason"])] += 1
        if not self.ok_ids:
            return "the editor failed on every sample"
        if not reasons:
            return None
        reason, count = reasons.most_common(1)[0]
        return reason if count == sum(reasons.values()) else f"{reason} ({count} samples; other reasons too)"


@dataclass
class RunView:
    path: Path
    meta: dict[str, Any]
    summary: list[dict[str, Any]]
    records: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return f"{self.meta['suite']['name']}/{self.path.name}"

    @property
    def sample_ids(self) -> frozenset[str]:
        return frozenset(r["sample_id"] for r in self.records)


def load(paths: list[str | Path]) -> tuple[list[RunView], list[EditorView]]:
    runs = []
    for p in paths:
        run = RunDir.open(p)
        runs.append(RunView(run.path, run.meta, run.summary(), run.records()))
    editors: list[EditorView] = []
    all_keys = [e for run in runs for e in _editor_order(run)]
    for run in runs:
        by_editor: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in run.records:
            by_editor[r["editor"]].append(r)
        for key in _editor_order(run):
            label = key if all_keys.count(key) == 1 else f"{key} ({run.path.name})"
            view = EditorView(label, key, run)
            view.summary = {(r["metric"], r["key"]): r for r in run.summary if r["editor"] == key}
            view.records = by_editor.get(key, [])
            editors.append(view)
    return runs, editors


def _editor_order(run: RunView) -> list[str]:
    """Editors in the suite's order (run.json's ``editors`` mapping is stored with sorted keys)."""
    return [e.get("label") or e["name"] for e in run.meta["suite"]["editors"]]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ------------------------------------------------------------------------------------ columns
def describe_of(label: str, entry: dict[str, Any]) -> dict[str, Any] | None:
    """The metric's self-description as run.json recorded it (None for runs recorded before:
    the report then uses :data:`LEGACY_HEADLINE`; it reads run records only)."""
    return entry.get("describe") or None


def _metric_labels(run: RunView) -> list[tuple[str, dict[str, Any]]]:
    metrics = run.meta.get("metrics", {}) or {}
    order = [m.get("label") or m["name"] for m in run.meta["suite"].get("metrics", [])]
    order += [k for k in metrics if k not in order]
    return [(k, metrics.get(k, {"name": k})) for k in order]


def all_columns(runs: list[RunView]) -> list[Column]:
    """Every headline column the runs' metrics declare, in suite order, then latency."""
    cols: list[Column] = []
    seen: set[str] = set()
    for run in runs:
        for label, entry in _metric_labels(run):
            desc = describe_of(label, entry)
            name = entry.get("name", label)
            if desc is not None:
                # A metric that names no headline keys (a plugin without ``headline``) shows every
                # key it reports, so it reaches the leaderboard, not only summary.csv.
                heads = desc.get("headline") or [{"key": k, "label": f"{label}.{k}", "higher_is_better": hib}
                                                 for k, hib in (desc.get("higher_is_better") or {}).items()]
                new = [Column(**vars(HeadlineKey.from_dict(h)), metric=label, metric_name=desc.get("name", name),
                              metric_glossary=desc.get("glossary", "")) for h in heads]
            else:
                new = [Column(key=k, label=t, higher_is_better=hib, metric=label, metric_name=name)
                       for m, k, t, hib in LEGACY_HEADLINE if m == name]
            for c in new:
                if c.id not in seen:
                    seen.add(c.id)
                    cols.append(c)
    return cols + [LATENCY]


def headline_columns(runs: list[RunView], editors: list[EditorView]) -> list[Column]:
    """The columns at least one editor has a summary row for."""
    return [c for c in all_columns(runs) if any(e.value(c) is not None for e in editors)]


def per_sample_columns(runs: list[RunView], editors: list[EditorView]) -> list[Column]:
    """Every per-sample value key of every metric (the headline ones first, described), for the
    sample browser: what can be sorted and filtered on."""
    described = {c.id: c for c in all_columns(runs)}
    out: list[Column] = [c for c in described.values() if c is not LATENCY and _has_per_sample(editors, c)]
    seen = {c.id for c in out}
    for run in runs:
        for label, entry in _metric_labels(run):
            desc = describe_of(label, entry) or {}
            hib = dict(desc.get("higher_is_better") or {})
            if not hib:  # legacy runs: the keys the summary aggregated
                hib = {r["key"]: r["higher_is_better"] for r in run.summary
                       if r["metric"] in (label, entry.get("name")) and "|" not in r["key"]}
            for key, direction in hib.items():
                c = Column(key=key, label=f"{label}.{key}", higher_is_better=direction, metric=label,
                           metric_name=entry.get("name", label), metric_glossary=desc.get("glossary", ""))
                if c.id not in seen and _has_per_sample(editors, c):
                    seen.add(c.id)
                    out.append(c)
    return out


def _has_per_sample(editors: list[EditorView], col: Column) -> bool:
    return any(e.per_sample(col) for e in editors)


# ------------------------------------------------------------------------------------ ranking
@dataclass(frozen=True)
class Ranking:
    best: str | None  # label of the best ranked editor, None on a tie or when nothing compares
    unranked: frozenset[str]  # editors left out because they were scored on other samples
    note: str = ""


def rank(editors: list[EditorView], col: Column) -> Ranking:
    """The best editor on ``col``: never a floor or ceiling editor, and only among editors scored
    on the same samples (an editor that failed on some samples is left out, and the note says so)."""
    if col.higher_is_better is None:
        return Ranking(None, frozenset())
    scored = []
    for e in editors:
        row = e.value(col)
        if e.role == "editor" and row is not None and math.isfinite(row["value"]):
            scored.append((e, row))
    if not scored:
        return Ranking(None, frozenset())
    sets = {e.label: e.scored_ids(col) for e, _ in scored}
    full = frozenset().union(*sets.values())
    comparable = [(e, row) for e, row in scored if sets[e.label] == full]
    unranked = frozenset(e.label for e, _ in scored if sets[e.label] != full)
    note = ""
    if unranked:
        note = (f"{col.label}: {', '.join(sorted(unranked))} scored on fewer samples "
                f"(n {', '.join(str(len(sets[u])) for u in sorted(unranked))} of {len(full)}), not ranked")
    if len(comparable) < 2:
        return Ranking(None, unranked, note)
    values = [row["value"] for _, row in comparable]
    top = max(values) if col.higher_is_better else min(values)
    winners = [e.label for e, row in comparable if row["value"] == top]
    return Ranking(winners[0] if len(winners) == 1 else None, unranked, note)


# ------------------------------------------------------------------------------------ formatting
def number(v: float | None, precision: int = 3) -> str:
    """``precision`` significant digits, in positional notation where it stays readable."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v == 0:
        return "0"
    exact = v
    v = float(f"{v:.{precision}g}")  # round first: 0.99999 prints as 1.00, not 1.000
    mag = math.floor(math.log10(abs(v)))
    if precision - 1 <= mag < 6:  # whole numbers print whole: 1235, not 1230
        return f"{exact:.0f}"
    if -4 <= mag < 6:
        decimals = max(0, precision - 1 - mag)
        text = f"{v:.{decimals}f}"
        return "0" if float(text) == 0 else text
    return f"{v:.{max(precision - 1, 0)}e}"


def display_unit(col: Column, values: list[float]) -> tuple[str, float]:
    """The unit to print ``col`` in and the factor to apply: seconds below 1 print as ms."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
    if col.unit == "s" and finite and max(finite) < 1:
        return "ms", 1e3
    return col.unit, 1.0


# ------------------------------------------------------------------------------------ facets
def facets(record: Mapping[str, Any] | str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(op, findings, sides) of a record's instruction: ("add", ("Effusion",), ("left",)); ("unparsed",
    (), ()) if the grammar rejects it. Read from the parse the run wrote into the record (``ops``; the
    instruction is parsed now for runs from before the field, or when given as a string). An
    instruction whose levels are unreadable is grouped by its findings, which are clear."""
    from ix2x.data.instructions import recorded_ops

    ops = recorded_ops({"instruction": record} if isinstance(record, str) else record)
    if not ops:
        return "unparsed", (), ()
    kinds = sorted({o.op for o in ops})
    sides = sorted({o.side or "unspecified" for o in ops})
    return "+".join(kinds), tuple(sorted({o.finding for o in ops})), tuple(sides)


def breakdown(editor: EditorView, col: Column, by: str, *, seed: int = 0) -> dict[str, tuple[float, float, float, int]]:
    """Mean, 95 % CI and n of a per-sample value grouped by operation or by finding (patients
    resampled whole where they repeat, as in the summary)."""
    from ix2x.stats import mean_ci, repeated_clusters

    groups: dict[str, list[tuple[float, str | None]]] = defaultdict(list)
    values = editor.per_sample(col)
    patients = editor.patients()
    for r in editor.records:
        v = values.get(r["sample_id"])
        if v is None:
            continue
        op, findings, _ = facets(r)
        for g in ([op] if by == "op" else findings):
            groups[g].append((v, patients.get(r["sample_id"])))
    out = {}
    for g, vp in sorted(groups.items()):
        mean, low, high, n, _ = mean_ci([v for v, _ in vp], seed=seed,
                                        clusters=repeated_clusters([p for _, p in vp]))
        out[g] = (mean, low, high, n)
    return out


def intervals_note(runs: list[RunView]) -> str:
    """How the intervals of the report's runs were computed, as their run.json records it."""
    notes = []
    for r in runs:
        text = r.meta.get("intervals") or (f"95 % intervals by the percentile bootstrap, {N_RESAMPLES_OLD} resamples "
                                           "(recorded before run.json named its interval method).")
        if text not in notes:
            notes.append(text)
    return " ".join(notes) + (" Paired differences resample patients whole where they repeat."
                              if notes else "")


N_RESAMPLES_OLD = 2000  # what every run before the interval record used


def sample_sets_note(runs: list[RunView]) -> str:
    """A sentence when the runs of a combined report were scored on different samples."""
    if len(runs) < 2:
        return ""
    sets = [r.sample_ids for r in runs]
    if all(s == sets[0] for s in sets):
        return ""
    common = frozenset.intersection(*sets)
    sizes = ", ".join(f"{r.name}: {len(s)}" for r, s in zip(runs, sets))
    return (f"The runs were scored on different sample sets ({sizes}; {len(common)} in common): "
            "values of editors from different runs are not paired and their comparison is indicative.")
