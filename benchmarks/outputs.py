"""Scoring edits made elsewhere: a suite whose editors are folders (the ``outputs`` editor), the
folders' fingerprints pinned at the start, and what each folder covers written into ``run.json``.

``ix2x score`` is ``ix2x run`` over such a suite; the run directory is a normal one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from ix2x import records, registry
from ix2x.errors import UserError
from ix2x.suite import ComponentSpec, Suite

EDITOR = "outputs"  # the registry name of the editor that reads edits from files


def parse_edits(values: Sequence[str]) -> list[tuple[str, str]]:
    """``NAME=FOLDER`` pairs of ``--edits`` (the name is the editor's label in the run)."""
    out: list[tuple[str, str]] = []
    for v in values:
        name, eq, folder = v.partition("=")
        if not eq or not name or not folder:
            raise UserError(f"`--edits` must be NAME=FOLDER (or NAME=FILE.csv), got {v!r}. NAME labels the "
                            "edits in the report, e.g. --edits mymethod=outputs/mymethod.")
        records.check_name(f"The name of `--edits {v}`", name)
        out.append((name, folder))
    names = [n for n, _ in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"`--edits` names must be unique, got {', '.join(twice)} more than once.")
    return out


def outputs_suite(suite: Suite, edits: Sequence[tuple[str, str]]) -> Suite:
    """``suite`` with its editors replaced by one ``outputs`` editor per ``(name, folder)``; without
    ``edits`` the suite's editors must already all be ``outputs`` editors."""
    if edits:
        specs = tuple(ComponentSpec(EDITOR, label=name, args={"folder": str(Path(folder).expanduser().resolve())})
                      for name, folder in edits)
        return dataclasses.replace(suite, editors=specs)
    others = [e.key for e in suite.editors if e.name != EDITOR]
    if others or not suite.editors:
        raise UserError(f"`ix2x score` scores folders of edits: pass `--edits NAME=FOLDER` (suite `{suite.name}` "
                        f"has editors {', '.join(others) or 'none'} that are not `{EDITOR}`). "
                        "`ix2x run` makes edits with editors.")
    return suite


def pin_fingerprints(suite: Suite) -> Suite:
    """Record each ``outputs`` folder's fingerprint in its settings (when not set), so that a resume
    refuses a folder whose files changed. Other editors are left as they are."""
    if not any(e.name == EDITOR for e in suite.editors):
        return suite
    index_cls = registry.load("editor", EDITOR).index_cls
    editors = []
    for e in suite.editors:
        if e.name == EDITOR and not e.args.get("fingerprint"):
            pinned = index_cls(e.args.get("folder", "")).fingerprint()
            e = dataclasses.replace(e, args={**e.args, "fingerprint": pinned})
        editors.append(e)
    return dataclasses.replace(suite, editors=tuple(editors))


def record_inventory(run_dir: Path) -> dict[str, Any]:
    """Write, under ``run.json``'s ``outputs``, what each ``outputs`` folder of the run covers: the
    samples of this run (an array shard's share) with no edit, and the files that belong to no
    sample of the data, counted and listed. Returns that entry (empty: the run has no such editor)."""
    from ix2x.benchmarks import array_shard, rundir
    from ix2x.benchmarks.rundir import load_run_suite

    suite = load_run_suite(run_dir)
    if not any(e.name == EDITOR for e in suite.editors):
        return {}
    from ix2x.data.sources import open_dataset

    dataset = open_dataset(suite.data)
    all_ids = list(getattr(dataset, "sample_ids", None) or [s.sample_id for s in dataset])
    own_ids = array_shard.owned_ids(all_ids, rundir.read_meta(run_dir).extra.get("shard"))
    index_cls = registry.load("editor", EDITOR).index_cls
    out: dict[str, Any] = {}
    for e in suite.editors:
        if e.name != EDITOR:
            continue
        index = index_cls(e.args.get("folder", ""))
        inv = index.inventory(all_ids)
        own = set(own_ids)
        inv["missing"] = [s for s in inv["missing"] if s in own]
        inv.update(n_samples=len(own_ids), n_missing=len(inv["missing"]),
                   n_found=len(own_ids) - len(inv["missing"]))
        out[e.key] = inv
    if out:
        meta = rundir.read_meta(run_dir)
        meta.extra["outputs"] = out
        rundir.write_meta(run_dir, meta)
    return out


def describe_inventory(inventory: dict[str, Any], *, show: int = 10) -> list[str]:
    """Lines for the terminal: per folder, the missing samples and the extra files."""
    lines = []
    for name, inv in inventory.items():
        lines.append(f"edits `{name}`: {inv['n_found']} of {inv['n_samples']} sample(s) found in {inv['folder']}")
        for what, label in (("missing", "sample(s) without an edit (failed records)"),
                            ("extra", "file(s) that belong to no sample (not scored)" if inv["mode"] == "folder"
                             else "CSV row(s) of samples not in the data (not scored)")):
            items = inv[what]
            if items:
                more = f" ... and {len(items) - show} more (run.json `outputs`)" if len(items) > show else ""
                lines.append(f"  {len(items)} {label}: {', '.join(items[:show])}{more}")
    return lines


def export_run(run_dir: Path, out: Path, editors: Sequence[str] | None = None) -> dict[str, Any]:
    """Copy each editor's saved edits (with guidance maps and edit masks) of ``run_dir`` into
    ``out/<editor>/<sample_id>.png`` (``.guidance.png``, ``.mask.png``), the layout ``ix2x score``
    reads, byte for byte: scoring the folder reads the very pixels the run's records came from.
    ``out/export.json`` says what was exported and which samples had no edit. Returns that."""
    import shutil

    file_stem = registry.load("editor", EDITOR).file_stem  # the one definition of an edit's file name
    run = records.RunDir.open(run_dir)
    recs = run.sample_records()
    keys = list(dict.fromkeys(r.editor for r in recs))
    chosen = list(editors) if editors else keys
    unknown = [e for e in chosen if e not in keys]
    if unknown:
        raise UserError(f"`--editors` must name editors of {run_dir} ({', '.join(keys)}), got {', '.join(unknown)}.")
    out = Path(out)
    for e in chosen:
        target = out / records.check_name("An editor label", e)
        if target.exists() and any(target.iterdir()):
            raise UserError(f"{target} already holds files; export into an empty `--out` folder, so that no old "
                            "edit is mixed with this run's.")
    manifest: dict[str, Any] = {"run": str(Path(run_dir).resolve()), "editors": {}}
    for e in chosen:
        target = out / e
        target.mkdir(parents=True, exist_ok=True)
        mine = [r for r in recs if r.editor == e]
        no_edit = [r.sample_id for r in mine if not (r.ok and r.image)]
        for r in mine:
            if not (r.ok and r.image):
                continue
            rel = Path(r.image)
            src = records.inside(run.path, rel)
            if not src.is_file():
                no_edit.append(r.sample_id)
                continue
            stem = file_stem(r.sample_id)
            shutil.copyfile(src, target / f"{stem}.png")
            for kind in ("guidance", "mask"):
                side = records.inside(run.path, records.sidecar(rel, kind))
                if side.is_file():
                    shutil.copyfile(side, target / f"{stem}.{kind}.png")
        manifest["editors"][e] = {"folder": str(target), "n_exported": len(mine) - len(no_edit),
                                  "not_exported": no_edit}
    records.write_json_atomic(out / "export.json", manifest)
    return manifest
