"""The self-contained HTML report: leaderboard, breakdowns, plots, image grids, provenance."""

from __future__ import annotations

import html
import json
import math
import random

from ix2x.records import image_name, sidecar
from ix2x.stats import paired_difference
from reports import images, plots
from reports.data import EditorView, RunView, best_label, breakdown, headline_columns, higher_is_better

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
td.best{background:#d8f0d8;font-weight:bold}
.ci{color:#777;font-size:11px}
.grid img{width:140px;height:auto;display:block}
.grid td{text-align:center;font-size:11px;vertical-align:top}
.note{background:#fff7e0;border-left:4px solid #e0a000;padding:6px 10px}
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:11px}
"""

# Marks broken images in the DOM so that a headless browser (the report test) can count them.
CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var broken = Array.from(document.images).filter(function (i) { return !i.complete || i.naturalWidth === 0; });
  document.body.setAttribute('data-images', document.images.length);
  document.body.setAttribute('data-broken-images', broken.length);
});
</script>"""


def _fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.4g}"


def _cell(e: EditorView, metric: str, key: str, best: str | None) -> str:
    row = e.value(metric, key)
    if row is None:
        return "<td>-</td>"
    cls = ' class="best"' if best == e.label else ""
    ci = f'<br><span class="ci">[{_fmt(row["ci_low"])}, {_fmt(row["ci_high"])}] n={row["n"]}</span>'
    return f"<td{cls}>{_fmt(row['value'])}{ci}</td>"


def leaderboard(editors: list[EditorView], baseline: str | None) -> str:
    cols = headline_columns(editors)
    head = "".join(f"<th>{html.escape(title)} {'↑' if higher_is_better(editors, m, k) else '↓'}"
                   f"</th>" for m, k, title in cols)
    rows = []
    for e in editors:
        cells = "".join(_cell(e, m, k, best_label(editors, m, k)) for m, k, _ in cols)
        failed = e.value("run", "failed")
        n_failed = int(failed["value"]) if failed else 0
        rows.append(f"<tr data-editor=\"{html.escape(e.label)}\"><td>{html.escape(e.label)}</td>{cells}"
                    f"<td>{n_failed}</td></tr>")
    out = [f"<table id='leaderboard'><tr><th>editor</th>{head}<th>failed</th></tr>{''.join(rows)}</table>",
           "<p>Values are means over samples with bootstrap 95 % CIs and n; best per column in green "
           "(↑ higher is better, ↓ lower is better).</p>"]
    if baseline:
        out.append(significance(editors, baseline, cols))
    return "\n".join(out)



def significance(editors: list[EditorView], baseline: str, cols) -> str:
    base = next((e for e in editors if e.label == baseline or e.editor == baseline), None)
    if base is None:
        return f"<p class='note'>Baseline editor {html.escape(baseline)} is not in these runs.</p>"
    rows = []
    for e in editors:
        if e is base:
            continue
        cells = []
        for m, k, _ in cols:
            a, b = base.per_sample(m, k), e.per_sample(m, k)
            ids = sorted(set(a) & set(b))
            if len(ids) < 2:
                cells.append("<td>-</td>")
                continue
            d = paired_difference([b[i] for i in ids], [a[i] for i in ids])
            cells.append(f"<td>{_fmt(d['mean_difference'])}<br><span class='ci'>[{_fmt(d['ci_low'])}, "
                         f"{_fmt(d['ci_high'])}] p={_fmt(d['wilcoxon_p'])}</span></td>")
        rows.append(f"<tr><td>{html.escape(e.label)}</td>{''.join(cells)}</tr>")
    head = "".join(f"<th>{html.escape(t)}</th>" for _, _, t in cols)
    return (f"<h3>Paired differences against {html.escape(base.label)}</h3>"
            f"<table><tr><th>editor</th>{head}</tr>{''.join(rows)}</table>"
            "<p>Editor minus baseline on the same samples: paired bootstrap 95 % CI and Wilcoxon p.</p>")


def breakdowns(editors: list[EditorView]) -> str:
    cols = headline_columns(editors)[:4]
    parts = []
    for by in ("op", "finding"):
        for m, k, title in cols:
            table = {e.label: breakdown(e, m, k, by) for e in editors}
            groups = sorted({g for t in table.values() for g in t})
            if not groups:
                continue
            head = "".join(f"<th>{html.escape(g)}</th>" for g in groups)
            body = "".join(
                f"<tr><td>{html.escape(label)}</td>" + "".join(
                    f"<td>{_fmt(t[g][0])} <span class='ci'>n={t[g][1]}</span></td>" if g in t else "<td>-</td>"
                    for g in groups) + "</tr>" for label, t in table.items())
            parts.append(f"<h4>{html.escape(title)} by {by}</h4><table><tr><th>editor</th>{head}</tr>{body}</table>")
    return "\n".join(parts)


def plot_section(editors: list[EditorView]) -> str:
    figs = []
    eff = next(((m, k) for m, k, _ in headline_columns(editors) if m == "classifier_shift"), None)
    if eff:
        figs.append(("Effectiveness against out-of-mask change",
                     plots.tradeoff(editors, ("out_of_mask_change", "mae"), eff)))
    sweep = _tau_points(editors, eff)
    if sweep:
        figs.append(("tau sweep", plots.curve(sweep, "out_of_mask_change.mae", f"{eff[0]}.{eff[1]}")))
    figs.append(("Latency per edit (median, s)", plots.bars(editors, "latency", "median_s", "seconds per edit")))
    figs.append(("Out-of-mask MAE", plots.bars(editors, "out_of_mask_change", "mae", "out-of-mask MAE")))
    return "\n".join(f"<figure><img alt='{html.escape(t)}' src='{images.png_uri(png)}'><figcaption>"
                     f"{html.escape(t)}</figcaption></figure>" for t, png in figs if png)


def _tau_points(editors: list[EditorView], eff) -> list[tuple[float, float, float]]:
    if eff is None:
        return []
    pts = []
    for e in editors:
        tau = e.run.meta["editors"][e.editor]["config"].get("tau")
        y, x = e.value(*eff), e.value("out_of_mask_change", "mae")
        if tau is not None and y and x:
            pts.append((float(tau), y["value"], x["value"]))
    return pts if len({p[0] for p in pts}) > 2 else []


def grid(runs: list[RunView], editors: list[EditorView], n: int, seed: int) -> str:
    run = runs[0]
    folder = run.path / "images" / "_input"
    kept = {p.name for p in folder.glob("*.png")} if folder.is_dir() else set()
    # Input images are kept under the record format's file name of the sample id.
    ids = sorted({r["sample_id"] for r in run.records if image_name(r["sample_id"]) in kept})
    if not ids:
        return "<p class='note'>No input images were kept for this run (report_images: false).</p>"
    ids = random.Random(seed).sample(ids, min(n, len(ids)))
    instructions = {r["sample_id"]: r.get("instruction", "") for r in run.records}
    rows = []
    for sid in sorted(ids):
        name = image_name(sid)
        x = images.read(folder / name)
        cells = [("input", images.data_uri(images.gray(x)))]
        target = images.read(run.path / "images" / "_target" / name)
        region = images.read(run.path / "images" / "_region" / name)
        if target is not None:
            cells.append(("true target", images.data_uri(images.gray(target))))
        if region is not None:
            cells.append(("true change mask", images.data_uri(images.red_overlay(x, region))))
        for e in editors:
            rec = next((r for r in e.records if r["sample_id"] == sid and r.get("image")), None)
            if rec is None:
                continue
            edit = images.read(e.run.path / rec["image"])
            cells.append((f"{e.label}", images.data_uri(images.gray(edit))))
            cells.append((f"{e.label}: |edit - input|", images.data_uri(images.difference(x, edit))))
            g = images.read(e.run.path / sidecar(rec["image"], "guidance"))
            if g is not None:
                cells.append((f"{e.label}: guidance map", images.data_uri(images.red_overlay(x, g))))
        tds = "".join(f"<td><img alt='{html.escape(c)}' src='{uri}'>{html.escape(c)}</td>" for c, uri in cells)
        rows.append(f"<tr><td colspan='{len(cells)}' style='text-align:left'><b>{html.escape(sid)}</b>: "
                    f"{html.escape(instructions.get(sid, ''))}</td></tr><tr>{tds}</tr>")
    return f"<table class='grid'>{''.join(rows)}</table>"


def provenance(runs: list[RunView]) -> str:
    parts = []
    for run in runs:
        keep = {k: run.meta.get(k) for k in ("suite", "editors", "metrics", "seed", "packages", "git",
                                            "device", "created", "finished", "n_records", "n_failed")}
        parts.append(f"<h4>{html.escape(run.name)}</h4><pre>{html.escape(json.dumps(keep, indent=2, default=str))}</pre>")
    return "\n".join(parts)


def render(runs: list[RunView], editors: list[EditorView], *, with_images: bool, baseline: str | None,
           n_grid: int = 6, seed: int = 0) -> str:
    title = " + ".join(r.name for r in runs)
    allowed = all(r.meta["suite"].get("report_images", True) for r in runs)
    note = ""
    if not with_images or not allowed:
        why = ("the suite sets report_images: false (patient data: MIMIC's data use agreement forbids "
               "sharing images)" if not allowed else "--no-images was given")
        note = f"<p class='note'>This report carries no images: {why}.</p>"
    body = [f"<h1>ix2x report: {html.escape(title)}</h1>", note, "<h2>Leaderboard</h2>",
            leaderboard(editors, baseline), "<h2>Plots</h2>", plot_section(editors),
            "<h2>Breakdowns</h2>", breakdowns(editors)]
    if with_images and allowed:
        body += ["<h2>Samples</h2>", grid(runs, editors, n_grid, seed)]
    body += ["<h2>Provenance</h2>", provenance(runs)]
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>ix2x report</title>"
            f"<style>{CSS}</style>{CHECK_SCRIPT}</head><body>{''.join(body)}</body></html>")
