"""Reader-study ratings back into a run directory: check the files against the packet, unblind them
with its key, and report human scores, agreement and which automatic metric tracks the readers.

Scales as numbers (so that means and rank correlations are defined): realism 1-5; instruction
followed yes 1, partly 0.5, no 0; unintended change none 0, minor 0.5, major 1 (lower is better);
in real-or-edited mode, a judgement is correct when it names what the image is.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ix2x import records
from ix2x.agreement import fleiss_kappa_ci, krippendorff_alpha_ci, spearman_ci
from ix2x.errors import UserError
from ix2x.records import RunDir, RunMeta, SummaryRow
from ix2x.stats import mean_ci

RATINGS_FORMAT = "ix2x-review-ratings"
SCALES: dict[str, dict[Any, float]] = {
    "realism": {1: 1.0, 2: 2.0, 3: 3.0, 4: 4.0, 5: 5.0},
    "instruction_followed": {"no": 0.0, "partly": 0.5, "yes": 1.0},
    "unintended_change": {"none": 0.0, "minor": 0.5, "major": 1.0},
}
HIGHER_IS_BETTER = {"realism": True, "instruction_followed": True, "unintended_change": False,
                    "judged_real": True, "correct": True}
JUDGEMENTS = ("real", "edited")
READER_METRIC = "reader"
REPORT_JSON = "reader_study.json"
REPORT_MD = "reader_study.md"


@dataclass(frozen=True)
class Ratings:
    """One reader's file, checked: answers as numbers per case (None where not answered)."""

    path: Path
    rater_id: str
    slot: int | None
    answers: dict[str, dict[str, Any]]  # case -> {scale: number or None, comment, where, time_s}
    complete: bool


@dataclass(frozen=True)
class ImportOutcome:
    run_dir: Path
    report: dict[str, Any]
    markdown: str


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist.") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{what} {path} is not JSON ({str(e).splitlines()[0]}).") from None


def read_ratings(path: Path, key: Mapping[str, Any]) -> Ratings:
    """One ratings file, refused unless it rates this packet (by hash) in its mode with known cases
    and values on the packet's scales."""
    d = _read_json(path, "Ratings file")
    if not isinstance(d, dict) or d.get("format") != RATINGS_FORMAT:
        raise UserError(f"{path} must be a ratings file saved from a packet (format {RATINGS_FORMAT!r}), got "
                        f"format {d.get('format') if isinstance(d, dict) else type(d).__name__!r}.")
    if d.get("packet_hash") != key["packet_hash"]:
        raise UserError(f"{path} rates another packet (hash {d.get('packet_hash')}), not this one "
                        f"({key['packet_hash']}). Import each packet's ratings with its own packet and key.")
    rater = str(d.get("rater_id") or "").strip()
    if not rater:
        raise UserError(f"{path} has no `rater_id`; ask the reader to save again after entering their id.")
    scales = {"judgement": {j: j for j in JUDGEMENTS}} if key["mode"] == "real-or-edited" else SCALES
    answers: dict[str, dict[str, Any]] = {}
    for a in d.get("answers") or []:
        case = a.get("case") if isinstance(a, dict) else None
        if case not in key["cases"]:
            raise UserError(f"{path}: case {case!r} is not in the packet; the file was edited or is of another packet.")
        out: dict[str, Any] = {"comment": str(a.get("comment") or ""), "time_s": a.get("time_s"),
                               "where": a.get("where")}
        for scale, allowed in scales.items():
            v = a.get(scale)
            if v is not None and v not in allowed:
                raise UserError(f"{path}: case {case} `{scale}` must be one of "
                                f"{', '.join(map(str, allowed))} or null, got {v!r}.")
            out[scale] = None if v is None else allowed[v]
            out.setdefault("given", {})[scale] = v  # the reader's own words, for the records
        answers[case] = out
    complete = all(case in answers and all(answers[case][s] is not None for s in scales) for case in key["cases"])
    slot = d.get("rater_slot")
    return Ratings(Path(path), rater, slot if isinstance(slot, int) else None, answers, complete)


def read_all(paths: Sequence[Path], key: Mapping[str, Any]) -> list[Ratings]:
    out: list[Ratings] = []
    seen: dict[str, Path] = {}
    for p in paths:
        r = read_ratings(p, key)
        other = seen.get(r.rater_id.casefold())
        if other is not None:
            raise UserError(f"Rater {r.rater_id!r} appears twice ({other} and {p}); each reader counts once. "
                            "Keep the later file of that reader.")
        seen[r.rater_id.casefold()] = Path(p)
        out.append(r)
    return out


# --------------------------------------------------------------------------------------- analysis

def _matrix(ratings: Sequence[Ratings], cases: Sequence[str], scale: str) -> np.ndarray:
    """raters x cases, NaN where not answered."""
    m = np.full((len(ratings), len(cases)), np.nan)
    for i, r in enumerate(ratings):
        for j, c in enumerate(cases):
            v = r.answers.get(c, {}).get(scale)
            if v is not None:
                m[i, j] = float(v)
    return m


def _interval(values: Sequence[float], clusters: Sequence[str], seed: int) -> dict[str, Any]:
    mean, low, high, n, _ = mean_ci(values, seed=seed, clusters=clusters)
    return {"value": mean, "ci_low": low, "ci_high": high, "n_ratings": n, "n_cases": len(set(
        c for c, v in zip(clusters, values) if math.isfinite(v)))}


def _scores_by_group(m: np.ndarray, cases: Sequence[str], groups: Mapping[str, str], seed: int) -> dict[str, Any]:
    """Mean per group of the (case, rater) ratings in ``m``, clustered by case."""
    out: dict[str, Any] = {}
    for g in dict.fromkeys(groups[c] for c in cases):
        cols = [j for j, c in enumerate(cases) if groups[c] == g]
        values = m[:, cols].T.ravel()  # case-major, so clusters line up
        clusters = [cases[j] for j in cols for _ in range(m.shape[0])]
        out[g] = _interval(values, clusters, seed)
    return out


def _agreement(m: np.ndarray, scale: str, seed: int) -> dict[str, Any]:
    alpha, lo, hi = krippendorff_alpha_ci(m, "ordinal" if scale != "judgement" else "nominal", seed=seed)
    out = {"krippendorff_alpha": {"level": "ordinal" if scale != "judgement" else "nominal", "value": alpha,
                                  "ci_low": lo, "ci_high": hi, "n_cases": int((np.isfinite(m).sum(0) >= 2).sum())}}
    if scale != "realism":
        cats = sorted(SCALES[scale].values()) if scale in SCALES else [0.0, 1.0]
        k, klo, khi, n = fleiss_kappa_ci(m, cats, seed=seed)
        out["fleiss_kappa"] = {"value": k, "ci_low": klo, "ci_high": khi, "n_cases": n}
    return out


def _metric_columns(recs: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``label.key`` -> case -> value, for every numeric automatic metric value of the rated records."""
    cols: dict[str, dict[str, float]] = {}
    for case, rec in recs.items():
        for label, values in rec.metrics.items():
            for k, v in (values or {}).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    cols.setdefault(f"{label}.{k}", {})[case] = float(v)
    return cols


def _correlations(case_means: Mapping[str, dict[str, float]], recs: Mapping[str, Any], seed: int) -> list[dict]:
    out = []
    cols = _metric_columns(recs)
    for scale, means in case_means.items():
        cases = [c for c in recs if c in means]
        for name, column in sorted(cols.items()):
            rho, lo, hi, n = spearman_ci([column.get(c, math.nan) for c in cases], [means[c] for c in cases], seed=seed)
            if n >= 3:
                out.append({"reader_score": scale, "metric": name, "spearman": rho, "ci_low": lo, "ci_high": hi, "n": n})
    return sorted(out, key=lambda r: (r["reader_score"], -abs(r["spearman"]) if math.isfinite(r["spearman"]) else 1))


def analyse(ratings: Sequence[Ratings], key: Mapping[str, Any], recs: Mapping[str, Any], *, seed: int = 0) -> dict:
    """The reader-study report as plain data. ``recs``: case -> the rated edit's parent record."""
    cases = sorted(key["cases"])
    kinds = {c: key["cases"][c]["kind"] for c in cases}
    group = {c: key["cases"][c]["editor"] or "real image" for c in cases}
    report: dict[str, Any] = {"mode": key["mode"], "packet_hash": key["packet_hash"], "n_cases": len(cases),
                              "raters": [r.rater_id for r in ratings],
                              "n_files": len(ratings), "n_incomplete_files": sum(not r.complete for r in ratings)}
    if key["mode"] == "rate":
        scales = list(SCALES)
        ms = {s: _matrix(ratings, cases, s) for s in scales}
        report["scores"] = {s: _scores_by_group(ms[s], cases, group, seed) for s in scales}
        report["agreement"] = {s: _agreement(ms[s], s, seed) for s in scales}
        case_means = {s: _case_means(ms[s], cases) for s in scales}
    else:
        real = np.full((len(ratings), len(cases)), np.nan)  # 1 where a reader said "real"
        correct = np.full_like(real, np.nan)
        for i, r in enumerate(ratings):
            for j, c in enumerate(cases):
                v = r.answers.get(c, {}).get("judgement")
                if v is not None:
                    real[i, j] = float(v == "real")
                    correct[i, j] = float((v == "real") == (kinds[c] == "real"))
        values = correct.T.ravel()
        clusters = [c for c in cases for _ in range(len(ratings))]
        report["accuracy"] = _interval(values, clusters, seed)
        report["scores"] = {"judged_real": _scores_by_group(real, cases, group, seed)}
        report["agreement"] = {"judgement": _agreement(real, "judgement", seed)}
        edits = [c for c in cases if kinds[c] == "edit"]
        case_means = {"judged_real": {c: v for c, v in _case_means(real, cases).items() if c in edits}}
    report["correlations"] = _correlations(case_means, {c: recs[c] for c in cases if c in recs}, seed)
    return report


def _case_means(m: np.ndarray, cases: Sequence[str]) -> dict[str, float]:
    out = {}
    for j, c in enumerate(cases):
        col = m[:, j][np.isfinite(m[:, j])]
        if col.size:
            out[c] = float(col.mean())
    return out


# --------------------------------------------------------------------------------------- markdown

def _f(v: Any, p: int = 3) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{p}f}"


def _ci(d: Mapping[str, Any]) -> str:
    return f"{_f(d['value'])} [{_f(d['ci_low'])}, {_f(d['ci_high'])}]"


def markdown(report: Mapping[str, Any]) -> str:
    lines = [f"# Reader study ({report['mode']})", "",
             f"{report['n_cases']} cases, {report['n_files']} reader file(s) ({', '.join(report['raters'])}), "
             f"{report['n_incomplete_files']} incomplete. Means with 95 % bootstrap intervals clustered by case.", ""]
    if "accuracy" in report:
        a = report["accuracy"]
        lines += [f"Real-or-edited accuracy: {_ci(a)} over {a['n_ratings']} judgements of {a['n_cases']} cases "
                  "(0.5 = readers cannot tell edits from real radiographs).", ""]
    scales = list(report["scores"])
    groups = list(dict.fromkeys(g for s in scales for g in report["scores"][s]))
    lines += ["| editor | " + " | ".join(f"{s} {'(higher better)' if HIGHER_IS_BETTER[s] else '(lower better)'}"
                                        for s in scales) + " | ratings |",
              "|---|" + "---|" * (len(scales) + 1)]
    for g in groups:
        cells = [_ci(report["scores"][s][g]) if g in report["scores"][s] else "-" for s in scales]
        n = max(report["scores"][s][g]["n_ratings"] for s in scales if g in report["scores"][s])
        lines.append(f"| {g} | " + " | ".join(cells) + f" | {n} |")
    lines += ["", "## Agreement between readers", "", "| scale | statistic | value [95 % CI] | cases |", "|---|---|---|---|"]
    for s, stats in report["agreement"].items():
        for name, d in stats.items():
            label = f"Krippendorff's alpha ({d['level']})" if name == "krippendorff_alpha" else "Fleiss' kappa"
            lines.append(f"| {s} | {label} | {_ci(d)} | {d['n_cases']} |")
    lines += ["", "## Which automatic metric tracks the readers", "",
              "Spearman rank correlation between each metric key and the readers' mean score per case.", "",
              "| reader score | metric key | Spearman rho [95 % CI] | cases |", "|---|---|---|---|"]
    undefined: dict[str, list[str]] = {}
    for c in report["correlations"]:
        if c["spearman"] is None or not math.isfinite(c["spearman"]):
            undefined.setdefault(c["reader_score"], []).append(c["metric"])
            continue
        lines.append(f"| {c['reader_score']} | {c['metric']} | {_f(c['spearman'])} [{_f(c['ci_low'])}, "
                     f"{_f(c['ci_high'])}] | {c['n']} |")
    for scale, names in undefined.items():
        lines += ["", f"Not defined for {scale} (the metric or the readers' score is constant over the rated "
                      f"cases): {', '.join(names)}."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------- run dir

def load_key(packet: Path, key: Path | None = None) -> dict[str, Any]:
    from ix2x.benchmarks.review_packet import key_path

    path = Path(key) if key else key_path(packet)
    k = _read_json(path, "Packet key")
    if not isinstance(k, dict) or "packet_hash" not in k or "cases" not in k:
        raise UserError(f"{path} must be the key `ix2x review export` wrote beside the packet.")
    page = Path(packet) / "index.html"
    if page.is_file() and k["packet_hash"] not in page.read_text(encoding="utf-8"):
        raise UserError(f"{path} is the key of another packet than {packet}; pass the packet's own key with --key.")
    return k


def import_ratings(packet: Path, rating_files: Sequence[Path], out: Path, *, key: Path | None = None,
                   seed: int = 0) -> ImportOutcome:
    """Write the run directory ``out`` from the ratings of ``packet``; see the module docstring."""
    k = load_key(packet, key)
    ratings = read_all(rating_files, k)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"`--out` {out} exists and is not empty; give a new run directory.")
    parents = [RunDir.open(r["path"]) for r in k["runs"]]
    by_key = {(i, r.editor, r.sample_id): r for i, p in enumerate(parents) for r in p.sample_records()}
    recs = {c: by_key[(v["run"], v["editor_in_run"], v["sample_id"])] for c, v in k["cases"].items()
            if v["kind"] == "edit"}
    report = analyse(ratings, k, recs, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    _write_run(out, k, ratings, parents, recs, report, seed)
    text = markdown(report)
    records.write_json_atomic(out / REPORT_JSON, report)
    (out / REPORT_MD).write_text(text, encoding="utf-8")
    return ImportOutcome(out, report, text)


def _write_run(out: Path, key: Mapping[str, Any], ratings: Sequence[Ratings], parents: Sequence[RunDir],
               recs: Mapping[str, Any], report: Mapping[str, Any], seed: int) -> None:
    from ix2x.benchmarks import rundir

    scales = ["judgement"] if key["mode"] == "real-or-edited" else list(SCALES)
    new_recs = []
    for case in sorted(recs):
        rec, info = recs[case], key["cases"][case]
        answered = [r.answers[case] for r in ratings if case in r.answers]
        per_rater = [{"rater_id": r.rater_id, **r.answers[case]["given"], "where": r.answers[case]["where"],
                      "comment": r.answers[case]["comment"], "time_s": r.answers[case]["time_s"]}
                     for r in ratings if case in r.answers]
        values: dict[str, Any] = {"n_ratings": sum(any(a[s] is not None for s in scales) for a in answered)}
        for s in scales:
            got = [a[s] for a in answered if a[s] is not None]
            if s == "judgement":
                values["judged_real"] = float(np.mean([g == "real" for g in got])) if got else None
            else:
                values[s] = float(np.mean(got)) if got else None
        renamed = info["editor"] != info["editor_in_run"]
        new_recs.append(replace(rec, editor=info["editor"], metrics={**rec.metrics, READER_METRIC: values},
                                image=None if renamed else rec.image,
                                info={**rec.info, "review_case": case, "reader_ratings": per_rater}))
    for i, parent in enumerate(parents):
        rundir.copy_images(parent, [recs[c] for c in sorted(recs) if key["cases"][c]["run"] == i
                                    and key["cases"][c]["editor"] == key["cases"][c]["editor_in_run"]], out)
    with records.RecordWriter(out / records.SAMPLES_FILE) as w:
        w.write_batch(new_recs)
    first = parents[0].run
    editors = list(dict.fromkeys(r.editor for r in new_recs))
    specs = {}
    for i, p in enumerate(parents):
        for e in p.run.suite.get("editors", []):
            label = e.get("label") or e["name"]
            new = next((v["editor"] for v in key["cases"].values() if v["run"] == i and v["editor_in_run"] == label), None)
            if new in editors:
                specs[new] = {**e, "label": new}
    suite = {**first.suite, "editors": [specs[e] for e in editors if e in specs]}
    metrics = {label: m for p in parents for label, m in p.run.metrics.items()}
    metrics[READER_METRIC] = {"name": READER_METRIC, "config": {"scales": scales}, "describe": _describe(key["mode"])}
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    meta = RunMeta(schema_version=records.SCHEMA_VERSION, suite=suite,
                   editors={e: m for p in parents for e, m in p.run.editors.items()},
                   metrics=metrics, seed=seed, status="complete", created=now, finished=now,
                   parent=str(parents[0].path.resolve()), n_records=len(new_recs),
                   n_per_editor={e: sum(r.editor == e for r in new_recs) for e in editors},
                   extra={"parents": [str(p.path.resolve()) for p in parents],
                          "review": {"packet_hash": key["packet_hash"], "mode": key["mode"],
                                     "raters": [r.rater_id for r in ratings],
                                     "rating_files": [str(r.path) for r in ratings],
                                     "n_incomplete_files": report["n_incomplete_files"]}})
    records.write_json_atomic(out / records.RUN_FILE, meta.as_dict())
    rows = [SummaryRow(READER_METRIC, scale, d["n_ratings"], 0, d["value"], d["ci_low"], d["ci_high"],
                       HIGHER_IS_BETTER[scale], editor=editor)
            for scale, by_group in report["scores"].items() for editor, d in by_group.items() if editor in editors]
    rows += _automatic_rows(new_recs, metrics, editors, seed)
    records.write_summary(out / records.SUMMARY_FILE, rows)


def _automatic_rows(recs: Sequence[Any], metrics: Mapping[str, Any], editors: Sequence[str], seed: int) -> list:
    """The parents' metrics aggregated over the rated edits only, so that the report puts the
    readers' scores and the automatic ones side by side on the same cases."""
    from ix2x.stats import mean_aggregates

    rows = []
    for editor in editors:
        mine = [r for r in recs if r.editor == editor]
        for label, entry in metrics.items():
            hib = ((entry or {}).get("describe") or {}).get("higher_is_better") or {}
            if label == READER_METRIC or not hib:
                continue
            for a in mean_aggregates(label, [r.metrics.get(label, {}) for r in mine], hib, seed=seed):
                rows.append(replace(a, editor=editor))
    return rows


def _describe(mode: str) -> dict[str, Any]:
    """The reader metric's self-description, as metrics record theirs, so reports show its columns."""
    glossary = {
        "realism": "Readers' realism rating, 1 (clearly artificial) to 5 (indistinguishable from a real radiograph).",
        "instruction_followed": "Readers: instruction followed, yes 1, partly 0.5, no 0.",
        "unintended_change": "Readers: unintended change elsewhere, none 0, minor 0.5, major 1.",
        "judged_real": "Share of readers who judged the edit a real radiograph (real-or-edited study).",
    }
    keys = ["judged_real"] if mode == "real-or-edited" else list(SCALES)
    return {"name": READER_METRIC,
            "glossary": "Blinded expert ratings imported with `ix2x review import`; intervals clustered by case.",
            "higher_is_better": {k: HIGHER_IS_BETTER[k] for k in keys},
            "headline": [{"key": k, "label": f"reader {k.replace('_', ' ')}", "higher_is_better": HIGHER_IS_BETTER[k],
                          "unit": "", "precision": 2, "glossary": glossary[k]} for k in keys]}
