"""The HTML report: a leaderboard that explains itself, a glossary, figures (also as PNG and SVG
files), breakdowns with CIs, a sample browser over every (sample, editor) and provenance.

Images are files, not inlined: the run's own PNGs (inputs, edits, guidance maps, masks) are
linked where they lie, and the derived ones (differences, overlays) and the figures are written
into ``<report>_files/`` beside the page; the browser loads them lazily, a page at a time."""

from __future__ import annotations

import functools
import hashlib
import html
import json
import math
import os
from pathlib import Path
from typing import Any

from ix2x.errors import UserError
from ix2x.records import Layout, inside, sidecar
from ix2x.reports import board as boards
from ix2x.reports import images, plots
from ix2x.reports.data import (LATENCY, TINY_N, Column, EditorView, RunView, all_columns, breakdown, display_unit,
                          facets, intervals_note, number, per_sample_columns)
from ix2x.reports.significance import paired_rows

PAGE_ROWS = 25
e = html.escape

CSS = """
body{font-family:system-ui,sans-serif;margin:0 2em 2em;color:#222}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:6px 0;z-index:5}
nav a{margin-right:1.2em}
table{border-collapse:collapse;margin:0.6em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f4f4f4;position:sticky;top:0}
th:first-child,td:first-child{text-align:left}
.scroll{overflow-x:auto;max-width:100%}
td.best{background:#d8f0d8;font-weight:bold}
td.tiny{background:#fff3d6}
td.unranked{color:#777}
td.na{color:#999;font-style:italic}
td.failed{color:#b00;font-weight:bold}
.ci,.n,.unit,.reason{display:block;color:#777;font-size:11px;font-weight:normal;font-style:normal}
.reason{max-width:16em;white-space:normal;text-align:left}
tbody.reference td{background:#f7f7fb}
tr.group td{background:#eceff5;font-style:italic;text-align:left}
th a{color:inherit}
.note{background:#fff7e0;border-left:4px solid #e0a000;padding:6px 10px;margin:0.5em 0}
dl#glossary dt{font-weight:bold;margin-top:0.6em}
dl#glossary dt:target,dl#glossary dt:target+dd{background:#fff3b0}
dl#glossary dd{margin-left:1.5em}
figure{display:inline-block;margin:0 1.5em 1.5em 0;vertical-align:top}
figcaption{font-weight:bold;margin-bottom:4px}
figure img.fig{max-width:640px;display:block}
#browser-controls{display:flex;flex-wrap:wrap;gap:0.8em;align-items:center;margin:0.5em 0}
#samples td{font-size:12px}
#samples td.txt{text-align:left;min-width:13em;max-width:22em}
#samples td.txt b{word-break:break-all}
#samples td.err{color:#b00;text-align:left;max-width:30em}
#samples th[data-sort]{cursor:pointer}
#samples th button.sort{font-size:10px;padding:0 4px;margin-top:2px}
#samples th[data-sort]:hover{background:#e4e8f0}
.thumbs{display:flex;flex-wrap:wrap;gap:4px;text-align:center;min-width:408px;max-width:520px}
.thumbs figure{margin:0;display:block}
.thumbs img{width:96px;height:96px;object-fit:contain;background:#000;cursor:zoom-in;display:block}
.thumbs figcaption{font-size:10px;font-weight:normal;max-width:96px}
#zoom{display:none;position:fixed;inset:0;background:rgba(0,0,0,0.85);z-index:10;overflow:auto;
 text-align:center;padding:2em}
#zoom.open{display:block}
#zoom img{image-rendering:pixelated;background:#000;max-width:none}
#zoom a,#zoom span{color:#fff}
.scale{display:inline-block;width:180px;height:12px;vertical-align:middle;
 background:linear-gradient(to right,#0000ff,#ffffff,#ff0000);border:1px solid #999}
.key-guidance{color:#c000c0;font-weight:bold}.key-region{color:#00a0c0;font-weight:bold}
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:11px}
"""


# ---------------------------------------------------------------------------------- leaderboard
GLOSSARY_BASICS = {
    "editor": ("editor", "The editor's label in its suite. Floor (identity: returns the input) and ceiling "
                         "(oracle: returns the true target) bound every metric and are never ranked."),
    "run": ("run", "The run directory the editor's values come from (suite/run id)."),
    "n": ("n", "Samples the editor was run on (records); each value's own n is printed in its cell."),
    "failed": ("failed", "Samples the edit failed on (the error is in the sample browser and samples.jsonl)."),
}


def _basic_th(key: str) -> str:
    title, text = GLOSSARY_BASICS[key]
    return f'<th title="{e(text)}"><a href="#g-{key}">{e(title)}</a></th>'


def _col_th(bc: boards.BoardColumn) -> str:
    c = bc.col
    tip = f"{c.label} ({c.id}): {c.glossary or c.metric_glossary or 'no description recorded'}"
    unit = f'<span class="unit">{e(bc.unit)}</span>' if bc.unit else ""
    return (f'<th data-col="{e(c.id)}" title="{e(tip)}"><a href="#{e(c.anchor)}">{e(c.label)}</a> '
            f"{c.arrow}{unit}</th>")


def _td(c: boards.Cell) -> str:
    classes = [k for k, on in (("best", c.best), ("tiny", c.tiny), ("unranked", c.unranked),
                               ("na", c.value in ("n/a", "-"))) if on]
    cls = f' class="{" ".join(classes)}"' if classes else ""
    if c.value in ("n/a", "-"):
        reason = c.reason or ""
        short = reason if len(reason) <= 90 else reason[:87] + "..."
        return f'<td{cls} title="{e(reason)}">{e(c.value)}<span class="reason">{e(short)}</span></td>'
    notes = []
    if c.tiny:
        notes.append(f"only {c.n} samples (< {TINY_N})")
    if c.unranked:
        notes.append("scored on fewer samples than the ranked editors: not ranked")
    title = f' title="{e("; ".join(notes))}"' if notes else ""
    ci = f'<span class="ci">{e(c.ci)}</span>' if c.ci else ""
    n = f'<span class="n">n={c.n}{" ⚠" if c.tiny else ""}</span>' if c.n is not None else ""
    return f"<td{cls}{title}>{e(c.value)}{ci}{n}</td>"


def leaderboard(b: boards.Board) -> str:
    head = _basic_th("editor") + (_basic_th("run") if b.multi_run else "")
    head += "".join(_col_th(bc) for bc in b.columns) + _basic_th("n") + _basic_th("failed")
    ncols = 3 + len(b.columns) + (1 if b.multi_run else 0)

    def tr(r: boards.BoardRow) -> str:
        lead = f"<td>{e(r.editor.label)}</td>" + (f"<td>{e(r.editor.run.name)}</td>" if b.multi_run else "")
        failed = f'<td class="{"failed" if r.n_failed else ""}">{r.n_failed}</td>'
        return (f'<tr data-editor="{e(r.editor.label)}" data-role="{r.editor.role}">{lead}'
                f"{''.join(_td(c) for c in r.cells)}<td>{r.n_records}</td>{failed}</tr>")

    body = f'<tbody class="ranked">{"".join(tr(r) for r in b.ranked)}</tbody>'
    if b.references:
        body += (f'<tbody class="reference"><tr class="group"><td colspan="{ncols}">Reference editors: '
                 "floor (identity returns the input) and ceiling (oracle returns the true target). They "
                 f"bound the scale and are never ranked.</td></tr>{''.join(tr(r) for r in b.references)}</tbody>")
    notes = "".join(f'<p class="note">{e(n)}</p>' for n in b.notes)
    return (f'{notes}<div class="scroll"><table id="leaderboard"><thead><tr>{head}</tr></thead>{body}'
            "</table></div><p>Means over samples with 95 % intervals (how: see the glossary) and n; green: best among the ranked "
            f"editors scored on the same samples; amber: n &lt; {TINY_N}; grey: scored on fewer samples, not "
            "ranked. ↑ higher is better, ↓ lower is better. Hover a header for its definition, click it for "
            "the glossary.</p>")


def significance(b: boards.Board, editors: list[EditorView], baseline: str) -> str:
    result = paired_rows(editors, [bc.col for bc in b.columns], baseline)
    if result is None:
        return f"<p class='note'>Baseline editor {e(baseline)} is not in these runs.</p>"
    base, rows = result
    trs = []
    for ed, diffs in rows:
        cells = []
        for bc, d in zip(b.columns, diffs):
            if d is None:
                cells.append('<td class="na" title="no per-sample values to pair">-</td>')
                continue
            s, p = bc.scale, bc.col.precision
            cells.append(f"<td>{number(d['mean_difference'] * s, p)}<span class='ci'>[{number(d['ci_low'] * s, p)}, "
                         f"{number(d['ci_high'] * s, p)}]</span><span class='n'>p={number(d['wilcoxon_p'], 2)} "
                         f"n={d['n']}</span></td>")
        trs.append(f"<tr><td>{e(ed.label)}</td>{''.join(cells)}</tr>")
    head = "".join(_col_th(bc) for bc in b.columns)
    return (f"<h3>Paired differences against {e(base.label)}</h3><div class='scroll'><table id='paired'>"
            f"<thead><tr>{_basic_th('editor')}{head}</tr></thead>{''.join(trs)}</table></div>"
            "<p>Editor minus baseline on the samples both scored: paired bootstrap 95 % CI (patients resampled where they repeat), Wilcoxon p, n.</p>")


def glossary(b: boards.Board, extra: list[Column]) -> str:
    parts = [f'<dt id="g-{k}">{e(t)}</dt><dd>{e(text)}</dd>' for k, (t, text) in GLOSSARY_BASICS.items()]
    seen_metric: set[str] = set()
    cols = [bc.col for bc in b.columns] + [c for c in extra if c.id not in {bc.col.id for bc in b.columns}]
    for c in cols:
        direction = {True: "higher is better", False: "lower is better"}.get(c.higher_is_better, "no direction")
        about = ""
        if c.metric not in seen_metric and c.metric_glossary:
            about = f" <i>{e(c.metric)}: {e(c.metric_glossary)}</i>"
            seen_metric.add(c.metric)
        unit = f", in {e(c.unit)}" if c.unit else ""
        parts.append(f'<dt id="{e(c.anchor)}">{e(c.label)} <code>{e(c.id)}</code></dt>'
                     f"<dd>{direction}{unit}. {e(c.glossary or 'No description recorded for this key.')}{about}</dd>")
    return f'<dl id="glossary">{"".join(parts)}</dl>'


# ---------------------------------------------------------------------------------- figures
def figures(b: boards.Board, assets: Path, rel: str) -> str:
    by_id = {bc.col.id: bc for bc in b.columns}
    eff = next((bc for bc in b.columns if bc.col.metric_name == "classifier_shift"), None)
    oom = by_id.get("out_of_mask_change.mae") or next(
        (bc for bc in b.columns if bc.col.metric_name == "out_of_mask_change"), None)
    figs = []
    if eff and oom:
        figs.append(("tradeoff", f"{eff.col.label} against {oom.col.label} (95 % CIs)",
                     plots.tradeoff(b, oom, eff)))
        sweep = _tau_points(b, eff, oom)
        if sweep:
            figs.append(("tau-sweep", f"RSE threshold sweep: {eff.col.label} against {oom.col.label}",
                         plots.curve(sweep, oom, eff)))
    # One bar chart per headline value (the first eight and latency): each is its own file to print.
    for bc in [c for c in b.columns if c.col.id != "latency.median_s"][:8] + [
            c for c in b.columns if c.col.id == "latency.median_s"]:
        figs.append((f"bars-{bc.col.anchor[2:]}", f"{bc.header} per editor (95 % CIs)", plots.bars(b, bc)))
    out = []
    for name, caption, fig in figs:
        if fig is None:
            continue
        files = plots.save(fig, assets, name)
        png, svg = f"{rel}/{files['png'].name}", f"{rel}/{files['svg'].name}"
        out.append(f'<figure><figcaption>{e(caption)}</figcaption><img class="fig" alt="{e(caption)}" '
                   f'src="{e(png)}"><a href="{e(png)}">PNG</a> · <a href="{e(svg)}">SVG</a></figure>')
    return "\n".join(out) or "<p>No values to plot.</p>"


def _tau_points(b: boards.Board, eff: boards.BoardColumn, oom: boards.BoardColumn) -> list[tuple[float, float, float]]:
    pts = []
    for r in b.rows:
        tau = r.editor.config.get("tau")
        y, x = plots._point(r.editor, eff), plots._point(r.editor, oom)
        if isinstance(tau, (int, float)) and y and x:
            pts.append((float(tau), y[0], x[0]))
    return pts if len({p[0] for p in pts}) > 2 else []


# ---------------------------------------------------------------------------------- dose-response
def dose_response(editors: list[EditorView], assets: Path, rel: str) -> str:
    """Per sweep (reports/dose_response.py): its sentence, the per-setting table and the Pareto plot."""
    from ix2x.reports.dose_response import pareto_front, sweep_table, sweeps

    parts = []
    for i, sw in enumerate(sweeps(editors)):
        head, rows, sentence = sweep_table(sw)
        r = sw.result
        mae = r.drift_p90.get("out_of_mask_mae")
        parts.append(f"<h3>Dose-response: {e(sw.editor)} over {e(sw.setting)}</h3><p>{e(sentence)}</p>"
                     "<div class='scroll'><table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head)
                     + "</tr></thead>" + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                                                  for row in rows) + "</table></div>")
        if mae:
            fig = plots.pareto([f"{d:g}" for d in r.doses], mae, r.mean_effect,
                               pareto_front(list(zip(mae, r.mean_effect))), setting=sw.setting,
                               x_label=f"p{90} out-of-mask MAE", y_label="mean effect on target")
            if fig is not None:
                files = plots.save(fig, assets, f"pareto-{i}")
                cap = f"Effect against preservation over {sw.setting}; filled: Pareto-optimal"
                parts.append(f'<figure><figcaption>{e(cap)}</figcaption><img class="fig" alt="{e(cap)}" '
                             f'src="{e(rel)}/{e(files["png"].name)}"></figure>')
    return "".join(parts)


# ---------------------------------------------------------------------------------- breakdowns
def breakdowns(b: boards.Board, editors: list[EditorView]) -> str:
    cols = [bc for bc in b.columns if any(ed.per_sample(bc.col) for ed in editors)][:4]
    parts = []
    for by in ("op", "finding"):
        for bc in cols:
            table = {ed.label: breakdown(ed, bc.col, by, seed=ed.run.meta.get("seed", 0)) for ed in editors}
            groups = sorted({g for t in table.values() for g in t})
            if not groups:
                continue
            p, s = bc.col.precision, bc.scale
            head = "".join(f"<th>{e(g)}</th>" for g in groups)
            rows = []
            for label, t in table.items():
                cells = []
                for g in groups:
                    if g not in t:
                        cells.append("<td class='na'>-</td>")
                        continue
                    mean, lo, hi, n = t[g]
                    text = number(mean * s, p)
                    ci = boards.ci_text(lo * s, hi * s, text, p)
                    ci = f"<span class='ci'>{ci}</span>" if ci else ""
                    tiny = " class='tiny'" if n < TINY_N else ""
                    cells.append(f"<td{tiny}>{text}{ci}<span class='n'>n={n}</span></td>")
                rows.append(f"<tr><td>{e(label)}</td>{''.join(cells)}</tr>")
            parts.append(f"<h4>{e(bc.header)} by {by}</h4><div class='scroll'><table><thead><tr><th>editor</th>"
                         f"{head}</tr></thead>{''.join(rows)}</table></div>")
    return "\n".join(parts) + f"<p>Means with 95 % intervals; amber: n &lt; {TINY_N}.</p>"


# ---------------------------------------------------------------------------------- sample browser
@functools.lru_cache(maxsize=None)
def _rel_dir(folder: Path, base: Path) -> str:
    return Path(os.path.relpath(folder.resolve(), base.resolve())).as_posix()


def _rel(path: Path, base: Path) -> str:
    """``path`` relative to the report's folder (resolving each folder once: 10,000s of files)."""
    return f"{_rel_dir(path.parent, base)}/{path.name}"


def _round(v: Any, scale: float = 1.0) -> float | None:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        return None
    return float("%.6g" % (v * scale))  # 6 significant digits keep the page small


class _Listing:
    """Which files a folder holds, listed once: a report of 30,000 records asks for each edit,
    guidance map and kept input, and one stat per file costs more than the rest of the page."""

    def __init__(self) -> None:
        self._names: dict[Path, frozenset[str]] = {}

    def has(self, path: Path) -> bool:
        folder = path.parent
        if folder not in self._names:
            try:
                self._names[folder] = frozenset(os.listdir(folder))
            except OSError:
                self._names[folder] = frozenset()
        return path.name in self._names[folder]


def browser_data(runs: list[RunView], editors: list[EditorView], out: Path, assets: Path, rel: str,
                 show_images: bool) -> dict[str, Any]:
    """Every (sample, editor) as a row: facets, status, error, per-sample values, image files."""
    cols = per_sample_columns(runs, editors)

    lat_unit, lat_scale = display_unit(LATENCY, [r.get("latency_s") for ed in editors for r in ed.records])
    headline = {c.id for c in all_columns(runs)}
    col_meta = [{"id": c.id, "label": c.label, "hib": c.higher_is_better, "p": c.precision,
                 "anchor": c.anchor, "unit": c.unit, "tip": c.glossary or c.metric_glossary,
                 "h": c.id in headline} for c in cols]
    col_meta.append({"id": "latency", "label": f"latency ({lat_unit})", "hib": False, "p": 3,
                     "anchor": LATENCY.anchor, "unit": lat_unit, "tip": LATENCY.glossary, "h": True})
    region_label = {}
    for run in runs:
        pseudo = (run.meta["suite"].get("data") or {}).get("region") == "pseudo_mask"
        region_label[run.path] = "pseudo-mask" if pseudo else "true change mask"
    base = out.parent
    rows = []
    kept_cache: dict[tuple[Path, str], dict[str, str] | None] = {}
    listing = _Listing()
    for ei, ed in enumerate(editors):
        # Finite per-sample values by sample id, per column (cached on the editor view).
        per_col = [{k: _round(v) for k, v in ed.per_sample(c).items()} for c in cols]
        per_col.append({k: _round(v, lat_scale) for k, v in ed.per_sample(LATENCY).items()})
        for r in ed.records:
            op, findings, sides = facets(r)
            sid = r["sample_id"]
            vals = [pc.get(sid) for pc in per_col]
            imgs: dict[str, str] = {}
            if show_images:
                imgs = _row_images(ed, ei, r, base, assets, rel, kept_cache, region_label[ed.run.path], listing)
            rows.append([r["sample_id"], ei, op, list(findings), list(sides), r["status"], r.get("error") or "",
                         r.get("instruction", ""), vals, imgs])
    return {"cols": col_meta, "editors": [ed.label for ed in editors], "rows": rows,
            "images": show_images, "diff_scale": images.DIFF_SCALE, "page": PAGE_ROWS}


def _inside(root: Path, rel: str) -> bool:
    try:
        inside(root, rel)
        inside(root, sidecar(rel, "guidance"))
    except UserError:
        return False
    return True


def _layout(run: RunView) -> Layout:
    """The run's own file layout (schema 1 named files differently)."""
    return Layout(int(run.meta.get("schema_version", 1)))


def _inputs(run: RunView, sid: str, base: Path, assets: Path, rel: str,
            cache: dict[tuple[Path, str], dict[str, str] | None], listing: _Listing) -> dict[str, str] | None:
    """The kept input, target and region of a sample (runs keep ``report_samples`` of them), with
    the true change drawn on the difference scale; None when the run kept none for it."""
    key = (run.path, sid)
    if key in cache:
        return cache[key]
    kept = {kind: run.path / _layout(run).report_input(kind, sid) for kind in ("input", "target", "region")}
    name = kept["input"].name
    found: dict[str, str] | None = None
    if listing.has(kept["input"]):
        found = {"input": _rel(kept["input"], base)}
        x = images.read(kept["input"])
        target = images.read(kept["target"])
        region = images.read(kept["region"])
        run_idx = hashlib.sha256(str(run.path.resolve()).encode()).hexdigest()[:8]
        if target is not None:
            found["target"] = _rel(kept["target"], base)
            p = assets / "diff" / f"r{run_idx}" / "_target" / name
            images.write_png(images.signed_difference(x, target), p)
            found["truediff"] = f"{rel}/{p.relative_to(assets).as_posix()}"
        if region is not None:
            found["region"] = _rel(kept["region"], base)
            p = assets / "region" / f"r{run_idx}" / name
            images.write_png(images.region_fill(x, region), p)
            found["regionview"] = f"{rel}/{p.relative_to(assets).as_posix()}"
    cache[key] = found
    return found


def _row_images(ed: EditorView, ei: int, r: dict[str, Any], base: Path, assets: Path, rel: str,
                cache: dict, region_label: str, listing: _Listing) -> dict[str, str]:
    run = ed.run
    out: dict[str, str] = {"region_label": region_label}
    kept = _inputs(run, r["sample_id"], base, assets, rel, cache, listing)
    if kept:
        out.update(kept)
    if r["status"] != "ok" or not r.get("image") or not _inside(run.path, r["image"]) \
            or not listing.has(run.path / r["image"]):
        return out if kept else {}  # a record naming a file outside its run is never followed
    edit_path = run.path / r["image"]
    out["edit"] = _rel(edit_path, base)
    g_path = run.path / sidecar(r["image"], "guidance")
    has_guidance = listing.has(g_path)
    if has_guidance:
        out["guidance"] = _rel(g_path, base)
    if kept:
        layout = _layout(run)
        name = layout.image_name(r["sample_id"])
        x = images.read(run.path / layout.report_input("input", r["sample_id"]))
        edit = images.read(edit_path)
        if x is not None and edit is not None and x.shape == edit.shape:
            p = assets / "diff" / f"e{ei}" / name
            images.write_png(images.signed_difference(x, edit), p)
            out["diff"] = f"{rel}/{p.relative_to(assets).as_posix()}"
            g = images.read(g_path) if has_guidance else None
            region = images.read(run.path / layout.report_input("region", r["sample_id"]))
            if g is not None or region is not None:
                p = assets / "overlay" / f"e{ei}" / name
                images.write_png(images.overlay(x, g, region), p)
                out["overlay"] = f"{rel}/{p.relative_to(assets).as_posix()}"
    return out


BROWSER_HTML = """
<div id="browser-controls">
 <label>editor <select id="f-editor"></select></label>
 <label>op <select id="f-op"></select></label>
 <label>finding <select id="f-finding"></select></label>
 <label>side <select id="f-side"></select></label>
 <label>status <select id="f-status"></select></label>
 <label>search <input id="f-text" size="14" placeholder="id or instruction"></label>
 <span>worst <input id="worst-k" type="number" value="10" min="1" style="width:4em"> by
  <select id="worst-metric"></select> <button id="worst-go">show</button></span>
 <label><input type="checkbox" id="all-cols"> every per-sample value</label>
 <button id="reset">reset</button>
</div>
<div><button id="prev">&larr;</button> <span id="page-info"></span> <button id="next">&rarr;</button></div>
<div class="scroll"><table id="samples"><thead></thead><tbody></tbody></table></div>
<div id="zoom" role="dialog"><div><span id="zoom-caption"></span> · <a id="zoom-link" href="#" target="_blank">open the
 original file (16-bit PNG)</a> · <span>click anywhere to close</span></div><div id="zoom-box"></div></div>
"""

BROWSER_JS = r"""
(function () {
const D = JSON.parse(document.getElementById('samples-data').textContent);
const C = D.cols, R = D.rows, NV = C.length;
const st = {sort: null, desc: false, page: 0, limit: null, all: false};
const $ = (id) => document.getElementById(id);
function fmt(v, p) {
  if (v === null || v === undefined) return 'n/a';
  if (v === 0) return '0';
  const r = Number(v.toPrecision(p)), a = Math.abs(r);
  if (a >= 1e-4 && a < 1e6) { const mag = Math.floor(Math.log10(a)); return r.toFixed(Math.max(0, p - 1 - mag)); }
  return r.toExponential(p - 1);
}
function opts(sel, values, all) {
  const s = $(sel); s.innerHTML = '';
  const o = document.createElement('option'); o.value = ''; o.textContent = all; s.appendChild(o);
  values.forEach(v => { const x = document.createElement('option'); x.value = v; x.textContent = v; s.appendChild(x); });
}
const uniq = (f) => Array.from(new Set(R.flatMap(f))).sort();
opts('f-editor', D.editors, 'all editors');
opts('f-op', uniq(r => [r[2]]), 'all ops');
opts('f-finding', uniq(r => r[3]), 'all findings');
opts('f-side', uniq(r => r[4]), 'all sides');
opts('f-status', uniq(r => [r[5]]), 'all');
const wm = $('worst-metric');
C.forEach((c, j) => { if (c.hib !== null) { const o = document.createElement('option'); o.value = j; o.textContent = c.label; wm.appendChild(o); } });
// Header: sample, editor, images, facets, then one sortable column per per-sample value, each
// linked to the glossary. Headline values show by default; the checkbox shows every value.
const visible = () => C.map((c, j) => j).filter(j => st.all || C[j].h);
function worstDesc(j) { return C[j].hib !== true; }  // worst first: lowest when higher is better
function header() {
  const head = document.createElement('tr');
  function th(text, attrs) { const t = document.createElement('th'); t.textContent = text; Object.entries(attrs || {}).forEach(([k, v]) => t.setAttribute(k, v)); head.appendChild(t); return t; }
  th('sample / instruction'); th('editor');
  if (D.images) th('images (click to zoom)');
  th('op'); th('finding'); th('side'); th('status');
  visible().forEach(j => {
    const c = C[j];
    const t = th('', {'data-sort': j, title: (c.tip || c.label) + ' (click: worst first, again: reverse)'});
    const a = document.createElement('a'); a.href = '#' + c.anchor; a.textContent = c.label;
    a.addEventListener('click', ev => ev.stopPropagation());
    t.appendChild(a); t.appendChild(document.createTextNode(c.hib === true ? ' ↑' : c.hib === false ? ' ↓' : ''));
    const b = document.createElement('button'); b.className = 'sort'; b.textContent = 'sort';
    b.title = 'sort: worst first; again: reverse'; t.appendChild(document.createElement('br')); t.appendChild(b);
    t.addEventListener('click', () => {
      if (st.sort === j) st.desc = !st.desc; else { st.sort = j; st.desc = worstDesc(j); }
      st.page = 0; st.limit = null; draw();
    });
  });
  const h = document.querySelector('#samples thead'); h.innerHTML = ''; h.appendChild(head);
}
function view() {
  const fe = $('f-editor').value, fo = $('f-op').value, ff = $('f-finding').value, fs = $('f-side').value,
        fst = $('f-status').value, ft = $('f-text').value.toLowerCase();
  let v = R.filter(r => (!fe || D.editors[r[1]] === fe) && (!fo || r[2] === fo) && (!ff || r[3].includes(ff))
    && (!fs || r[4].includes(fs)) && (!fst || r[5] === fst)
    && (!ft || r[0].toLowerCase().includes(ft) || r[7].toLowerCase().includes(ft)));
  if (st.sort !== null) {
    const j = st.sort, s = st.desc ? -1 : 1;
    v = v.slice().sort((a, b) => {
      const x = a[8][j], y = b[8][j];
      if (x === null && y === null) return 0; if (x === null) return 1; if (y === null) return -1;
      return s * (x - y);
    });
  }
  if (st.limit !== null) v = v.slice(0, st.limit);
  return v;
}
function thumb(src, full, label, derived) {
  const f = document.createElement('figure'), i = document.createElement('img');
  i.loading = 'lazy'; i.src = src; i.alt = label; i.dataset.full = full || src; i.title = label;
  i.addEventListener('click', () => zoom(i.dataset.full, label, derived));
  const c = document.createElement('figcaption'); c.textContent = label; f.appendChild(i); f.appendChild(c); return f;
}
function td(text, cls) { const t = document.createElement('td'); t.textContent = text; if (cls) t.className = cls; return t; }
function draw() {
  const v = view(), pages = Math.max(1, Math.ceil(v.length / D.page));
  st.page = Math.min(st.page, pages - 1);
  const body = document.querySelector('#samples tbody'); body.innerHTML = '';
  v.slice(st.page * D.page, (st.page + 1) * D.page).forEach(r => {
    const tr = document.createElement('tr'); tr.dataset.sample = r[0]; tr.dataset.editor = D.editors[r[1]];
    tr.dataset.finding = r[3].join('|'); tr.dataset.status = r[5];
    const s = td('', 'txt'); const b = document.createElement('b'); b.textContent = r[0]; s.appendChild(b);
    s.appendChild(document.createElement('br')); s.appendChild(document.createTextNode(r[7])); tr.appendChild(s);
    tr.appendChild(td(D.editors[r[1]]));
    if (D.images) {
      const cell = document.createElement('td'), box = document.createElement('div'); box.className = 'thumbs';
      const im = r[9], rl = im.region_label || 'region';
      if (im.input) box.appendChild(thumb(im.input, im.input, 'input'));
      if (im.target) box.appendChild(thumb(im.target, im.target, 'true target'));
      if (im.edit) box.appendChild(thumb(im.edit, im.edit, 'edit'));
      if (im.diff) box.appendChild(thumb(im.diff, im.diff, 'edit − input', true));
      if (im.truediff) box.appendChild(thumb(im.truediff, im.truediff, 'target − input', true));
      if (im.overlay) box.appendChild(thumb(im.overlay, im.overlay, 'guidance + ' + rl, true));
      if (im.guidance) box.appendChild(thumb(im.guidance, im.guidance, 'guidance map'));
      if (im.regionview) box.appendChild(thumb(im.regionview, im.region, rl));
      if (!box.children.length) box.textContent = r[5] === 'ok' ? 'no image kept' : 'no edit';
      else if (!im.input) { const n = document.createElement('span'); n.textContent = 'input not kept (suite report_samples)'; n.style.fontSize = '10px'; box.appendChild(n); }
      cell.appendChild(box); tr.appendChild(cell);
    }
    tr.appendChild(td(r[2])); tr.appendChild(td(r[3].join(', '))); tr.appendChild(td(r[4].join(', ')));
    if (r[5] !== 'ok') tr.appendChild(td(r[5] + ': ' + r[6], 'err')); else tr.appendChild(td('ok'));
    visible().forEach(j => { const x = r[8][j], t = td(fmt(x, C[j].p)); t.dataset.col = C[j].id; if (x !== null) t.dataset.value = x; tr.appendChild(t); });
    body.appendChild(tr);
  });
  $('page-info').textContent = `page ${st.page + 1} of ${pages} · ${v.length} of ${R.length} rows` +
    (st.sort !== null ? ` · sorted by ${C[st.sort].label}, ${st.desc === worstDesc(st.sort) ? 'worst' : 'best'} first` : '');
}
function zoom(src, label, derived) {
  $('zoom-link').textContent = derived ? 'open this view (8-bit PNG drawn by the report)' : 'open the original file (the run\'s PNG, 16-bit for images)';
  // Full resolution; small images (phantoms) are enlarged by a whole factor, pixels kept sharp.
  // The element is made on demand: an <img> without a source would count as a broken image.
  let i = $('zoom-img');
  if (!i) {
    i = document.createElement('img'); i.id = 'zoom-img'; i.alt = 'full resolution';
    i.addEventListener('load', () => { const f = Math.max(1, Math.floor(512 / i.naturalWidth)); i.style.width = (i.naturalWidth * f) + 'px'; });
    $('zoom-box').appendChild(i);
  }
  i.src = src; $('zoom-link').href = src; $('zoom-caption').textContent = label; $('zoom').classList.add('open'); }
$('zoom').addEventListener('click', ev => { if (ev.target.id !== 'zoom-link') $('zoom').classList.remove('open'); });
['f-editor', 'f-op', 'f-finding', 'f-side', 'f-status'].forEach(id => $(id).addEventListener('change', () => { st.page = 0; draw(); }));
$('f-text').addEventListener('input', () => { st.page = 0; draw(); });
$('prev').addEventListener('click', () => { st.page = Math.max(0, st.page - 1); draw(); });
$('next').addEventListener('click', () => { st.page += 1; draw(); });
$('worst-go').addEventListener('click', () => {
  const j = Number(wm.value); st.sort = j; st.desc = worstDesc(j); st.limit = Math.max(1, Number($('worst-k').value) || 10); st.page = 0; draw();
});
$('reset').addEventListener('click', () => {
  document.querySelectorAll('#browser-controls select').forEach(s => { if (s.id !== 'worst-metric') s.value = ''; });
  $('f-text').value = ''; st.sort = null; st.limit = null; st.page = 0; draw();
});
$('all-cols').addEventListener('change', () => { st.all = $('all-cols').checked; header(); draw(); });
window.ix2xBrowser = {view: view, draw: draw, state: st};
header();
draw();
})();
"""


def _json_script(data: Any) -> str:
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    # Instructions and errors are data: "</script>" inside them must not end the script element.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def browser(runs: list[RunView], editors: list[EditorView], out: Path, assets: Path, rel: str,
            show_images: bool) -> str:
    data = browser_data(runs, editors, out, assets, rel, show_images)
    legend = ""
    if show_images:
        legend = (f"<p>Differences on one fixed scale for every sample and editor: <span class='scale'></span> "
                  f"−{images.DIFF_SCALE} (darker) · 0 · +{images.DIFF_SCALE} (brighter), intensities in [0, 1], "
                  "clipped beyond. Overlay: <span class='key-guidance'>magenta</span> guidance map (opacity = G), "
                  "<span class='key-region'>cyan</span> outline of the region mask. Inputs, targets and masks are "
                  "kept for the first samples of a run only (suite <code>report_samples</code>); every edit is "
                  "shown. Click an image to see it at full resolution.</p>")
    else:
        legend = "<p class='note'>Pixels withheld (see above): every value and view but the images.</p>"
    return (f"{legend}{BROWSER_HTML}<script id='samples-data' type='application/json'>{_json_script(data)}</script>"
            f"<script>{BROWSER_JS}</script>")


# ---------------------------------------------------------------------------------- page
def provenance(runs: list[RunView]) -> str:
    parts = []
    for run in runs:
        keep = {k: run.meta.get(k) for k in ("suite", "editors", "seed", "packages", "git",
                                            "device", "created", "finished", "n_records", "n_failed")}
        keep["metrics"] = {k: {kk: vv for kk, vv in (v or {}).items() if kk != "describe"}
                           for k, v in (run.meta.get("metrics") or {}).items()}
        parts.append(f"<h4>{e(run.name)}</h4><pre>{e(json.dumps(keep, indent=2, default=str))}</pre>")
    return "\n".join(parts)


def render(runs: list[RunView], editors: list[EditorView], *, out: Path, with_images: bool,
           baseline: str | None) -> str:
    out = Path(out)
    assets = out.parent / f"{out.stem}_files"
    rel = assets.name
    assets.mkdir(parents=True, exist_ok=True)
    title = " + ".join(r.name for r in runs)
    allowed = all(r.meta["suite"].get("report_images", True) for r in runs)
    show_images = with_images and allowed
    note = ""
    if not show_images:
        why = ("the suite sets report_images: false (patient data: MIMIC's data use agreement forbids "
               "sharing images)" if not allowed else "--no-images was given")
        note = f"<p class='note'>This report carries no images: {why}.</p>"
    b = boards.build(runs, editors)
    extra = per_sample_columns(runs, editors)
    nav = ("<nav><a href='#leaderboard-h'>Leaderboard</a><a href='#glossary-h'>Glossary</a>"
           "<a href='#plots-h'>Figures</a><a href='#breakdowns-h'>Breakdowns</a><a href='#samples-h'>Samples</a>"
           "<a href='#provenance-h'>Provenance</a></nav>")
    body = [nav, f"<h1>ix2x report: {e(title)}</h1>", note,
            "<h2 id='leaderboard-h'>Leaderboard</h2>", leaderboard(b)]
    if baseline:
        body.append(significance(b, editors, baseline))
    body += ["<h2 id='glossary-h'>Glossary</h2>", glossary(b, extra),
             f"<p id='intervals'>Intervals: {e(intervals_note(runs))}</p>",
             "<h2 id='plots-h'>Figures</h2>", figures(b, assets, rel),
             dose_response(editors, assets, rel),
             "<h2 id='breakdowns-h'>Breakdowns</h2>", breakdowns(b, editors),
             "<h2 id='samples-h'>Samples</h2>", browser(runs, editors, out, assets, rel, show_images),
             "<h2 id='provenance-h'>Provenance</h2>", provenance(runs)]
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>ix2x report: {e(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")
