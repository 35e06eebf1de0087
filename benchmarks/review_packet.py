"""Blinded reader-study packets: cases drawn from run directories, written as one static HTML page
plus images that open from disk (no server, no network), and a key written beside the packet.

The packet never names an editor or a run: cases are numbered after a seeded shuffle, images are
named by case, and what each case is (run, editor, sample, real or edited) is in ``PACKET.key.json``
next to the packet folder. Same runs and seed, same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ix2x import records
from ix2x.errors import UserError
from ix2x.records import RunDir, SampleRecord

MODES = ("rate", "real-or-edited")
KEY_SUFFIX = ".key.json"
PACKET_FORMAT = "ix2x-review-packet"


@dataclass(frozen=True)
class Case:
    """One case of a packet and what the readers must not see about it (the key)."""

    kind: str  # "edit" or "real" (a real target, real-or-edited mode only)
    run: int  # index into the packet's runs
    editor: str | None  # label in the key (unique across runs); None for a real image
    editor_in_run: str | None  # the editor's label in its own run
    sample_id: str
    instruction: str
    op: str
    finding: str


def key_path(packet: Path) -> Path:
    """``PACKET.key.json`` beside the packet folder (never inside it)."""
    packet = Path(packet)
    return packet.with_name(packet.name + KEY_SUFFIX)


def facets(record: SampleRecord) -> tuple[str, str]:
    """(operation, finding) strata of a record's instruction: ``("add", "Effusion")``; several ops or
    findings are joined with ``+``; an instruction the grammar rejects, or whose levels it cannot
    read, is ``("unparsed", "")``. Read from the parse the run wrote into the record (``ops``)."""
    from ix2x.data.instructions import UNREAD_LEVEL, recorded_ops

    ops = recorded_ops(record.as_dict())
    if not ops or any(o.from_level == UNREAD_LEVEL for o in ops):
        return "unparsed", ""
    return "+".join(sorted({o.op for o in ops})), "+".join(sorted({o.finding for o in ops}))


def _stratified(items: Sequence[Any], strata: Sequence[tuple], n: int, rng: np.random.Generator) -> list[Any]:
    """``n`` of ``items`` (all of them when fewer), taken round-robin over their strata in a seeded
    random order, so every operation and finding is represented as evenly as the pool allows."""
    groups: dict[tuple, list[Any]] = {}
    for item, stratum in zip(items, strata):
        groups.setdefault(stratum, []).append(item)
    keys = sorted(groups)
    queues = [[groups[k][i] for i in rng.permutation(len(groups[k]))] for k in (keys[j] for j in rng.permutation(len(keys)))]
    out: list[Any] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def _split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def editor_labels(runs: Sequence[RunDir]) -> dict[tuple[int, str], str]:
    """(run index, editor label in the run) -> label in the key: the run's label, made unique with
    ``@<run id>`` when two runs use the same one."""
    pairs = [(i, r.editor) for i, run in enumerate(runs) for r in run.sample_records()]
    pairs = list(dict.fromkeys(pairs))
    count: dict[str, int] = {}
    for _, e in pairs:
        count[e] = count.get(e, 0) + 1
    return {(i, e): e if count[e] == 1 else f"{e}@{runs[i].path.name}" for i, e in pairs}


def sample_cases(runs: Sequence[RunDir], n: int, seed: int, mode: str = "rate",
                 editors: Sequence[str] | None = None) -> list[Case]:
    """``n`` cases stratified by editor (an even share each), then operation and finding. In
    ``real-or-edited`` mode half the cases are real targets of the runs' samples. ``editors``
    (labels in the runs) keeps only those editors."""
    rng = np.random.default_rng([seed, 0x5EED])
    labels = editor_labels(runs)
    if editors is not None:
        unknown = sorted(set(editors) - {e for _, e in labels})
        if unknown:
            raise UserError(f"`--editors` must name editors of the runs ({', '.join(sorted({e for _, e in labels}))}), "
                            f"got {', '.join(unknown)}.")
    by_editor: dict[str, list[tuple[int, SampleRecord]]] = {}
    for i, run in enumerate(runs):
        for r in run.sample_records():
            if r.ok and r.image and (editors is None or r.editor in editors):
                by_editor.setdefault(labels[(i, r.editor)], []).append((i, r))
    if not by_editor:
        raise UserError("The runs hold no successful edit with a saved image; export needs runs made with "
                        "save_images: true (the default).")
    n_real = n // 2 if mode == "real-or-edited" else 0
    cases: list[Case] = []
    editors = list(by_editor)
    for editor, quota in zip(editors, _split(n - n_real, len(editors))):
        pool = by_editor[editor]
        strata = [facets(r) for _, r in pool]
        for i, r in _stratified(pool, strata, quota, rng):
            op, finding = facets(r)
            cases.append(Case("edit", i, editor, r.editor, r.sample_id, r.instruction, op, finding))
    if n_real:
        seen: dict[str, tuple[int, SampleRecord]] = {}
        for pool in by_editor.values():
            for i, r in pool:
                seen.setdefault(r.sample_id, (i, r))
        pool = [seen[s] for s in sorted(seen)]
        for i, r in _stratified(pool, [facets(r) for _, r in pool], n_real, rng):
            op, finding = facets(r)
            cases.append(Case("real", i, None, None, r.sample_id, r.instruction, op, finding))
    return [cases[j] for j in rng.permutation(len(cases))]


# --------------------------------------------------------------------------------------- images

def _png(a: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of ``a`` in [0, 1]; no metadata, so the bytes depend on the pixels only."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class _Inputs:
    """The inputs and real targets of one run's samples: the copies kept in the run directory when
    there are, else the run's data, checked against the hash its records carry."""

    def __init__(self, run: RunDir, dataset: Sequence[Any] | None) -> None:
        self.run, self._dataset, self._index = run, dataset, None

    def _sample(self, rec: SampleRecord) -> Any:
        from ix2x.benchmarks import rundir

        if self._dataset is None:
            from ix2x.data.sources import open_dataset

            suite = rundir.load_run_suite(self.run.path)
            self._dataset = open_dataset(suite.data)
        if self._index is None:
            ids = getattr(self._dataset, "sample_ids", None) or [s.sample_id for s in self._dataset]
            self._index = {sid: i for i, sid in enumerate(ids)}
        if rec.sample_id not in self._index:
            raise UserError(f"Sample {rec.sample_id!r} of {self.run.path} is not in the run's data any more; "
                            "export needs the data the run was made from.")
        sample = self._dataset[self._index[rec.sample_id]]
        if rec.data_hash and rec.data_hash != rundir.sample_hash(sample):
            raise UserError(f"The data of sample {rec.sample_id!r} changed since {self.run.path} was made; its "
                            "edits belong to other inputs. Restore the data the run was made from.")
        return sample

    def image(self, rec: SampleRecord, kind: str) -> np.ndarray:
        """``kind`` ("input" or "target") of ``rec``'s sample, (H, W) float in [0, 1]."""
        from ix2x.images import load_image

        kept = self.run.report_input(kind, rec.sample_id)
        if kept.is_file():
            return load_image(kept)[0].numpy()
        value = getattr(self._sample(rec), "image" if kind == "input" else "target")
        if value is None:
            raise UserError(f"Sample {rec.sample_id!r} of {self.run.path} has no {kind} image; real-or-edited "
                            "mode needs data with follow-up studies (targets).")
        return value[0].float().numpy()


# --------------------------------------------------------------------------------------- export

def patient_data_runs(runs: Sequence[RunDir]) -> list[RunDir]:
    """Runs whose suite forbids sharing images (``report_images: false``: real patient data)."""
    return [r for r in runs if r.run.suite.get("report_images", True) is False]


def _check_patient_data(runs: Sequence[RunDir], allowed: Sequence[str]) -> None:
    allowed_set = set(allowed)
    for run in patient_data_runs(runs):
        if not allowed_set & {run.path.name, str(run.path), str(run.path.resolve())}:
            raise UserError(
                f"{run.path} holds real patient images (its suite sets report_images: false; MIMIC-CXR's data "
                "use agreement forbids sharing them), so export copies none of them by default. If every reader "
                f"is covered by the agreement, pass `--allow-patient-images {run.path.name}`.")


def export_packet(run_dirs: Sequence[str | Path], out: str | Path, *, n: int = 60, raters: int = 3,
                  seed: int = 0, mode: str = "rate", editors: Sequence[str] | None = None,
                  allow_patient_images: Sequence[str] = (),
                  datasets: Mapping[int, Sequence[Any]] | None = None, progress: bool = True) -> dict[str, Any]:
    """Write the packet folder ``out`` and its key beside it; returns the key.

    ``datasets`` (run index -> samples) replaces a run's data (tests pass in-memory samples)."""
    from tqdm.auto import tqdm

    from ix2x.images import load_image

    if mode not in MODES:
        raise UserError(f"`--mode` must be one of {', '.join(MODES)}, got {mode!r}.")
    if n < 1 or raters < 1:
        raise UserError(f"`--n` and `--raters` must be at least 1, got {n} and {raters}.")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"`--out` {out} exists and is not empty; give a new folder (a packet is written once).")
    runs = [RunDir.open(p) for p in run_dirs]
    _check_patient_data(runs, allow_patient_images)
    cases = sample_cases(runs, n, seed, mode, editors)
    inputs = [_Inputs(run, (datasets or {}).get(i)) for i, run in enumerate(runs)]
    recs = {(i, r.editor, r.sample_id): r for i, run in enumerate(runs) for r in run.sample_records()}
    by_sample = {(i, sid): r for (i, _, sid), r in reversed(list(recs.items()))}
    rng = np.random.default_rng([seed, 0x0DE5])
    ids = [f"c{j + 1:0{len(str(len(cases)))}d}" for j in range(len(cases))]
    images: dict[str, bytes] = {}
    shown: list[dict[str, Any]] = []
    for cid, case in tqdm(list(zip(ids, cases)), disable=not progress, unit="case", desc="packet"):
        any_rec = by_sample[(case.run, case.sample_id)]
        if case.kind == "real":
            images[f"images/{cid}.png"] = _png(inputs[case.run].image(any_rec, "target"))
            shown.append({"id": cid, "image": f"images/{cid}.png"})
            continue
        rec = recs[(case.run, case.editor_in_run, case.sample_id)]
        path = records.inside(runs[case.run].path, rec.image)
        if not path.is_file():
            raise UserError(f"The edit {path} of {rec.editor}/{rec.sample_id} is missing from its run directory; "
                            "export shows the saved edits, so restore the run's images/ folder.")
        edit = load_image(path)[0].numpy()
        if mode == "rate":
            images[f"images/{cid}_input.png"] = _png(inputs[case.run].image(rec, "input"))
            images[f"images/{cid}_edit.png"] = _png(edit)
            shown.append({"id": cid, "instruction": case.instruction, "input": f"images/{cid}_input.png",
                          "edit": f"images/{cid}_edit.png"})
        else:
            images[f"images/{cid}.png"] = _png(edit)
            shown.append({"id": cid, "image": f"images/{cid}.png"})
    orders = {str(k + 1): [ids[j] for j in rng.permutation(len(ids))] for k in range(raters)}
    data = {"format": PACKET_FORMAT, "version": 1, "mode": mode, "cases": shown, "orders": orders}
    digest = packet_hash(data, images)
    data["hash"] = digest
    _write(out, data, images)
    key = {"format": PACKET_FORMAT + "-key", "version": 1, "packet_hash": digest, "mode": mode, "seed": seed,
           "n_requested": n, "raters": raters,
           "runs": [{"path": str(r.path.resolve()), "run_id": r.path.name} for r in runs],
           "cases": {cid: asdict(c) for cid, c in zip(ids, cases)}}
    records.write_json_atomic(key_path(out), key)
    return key


def packet_hash(data: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    """sha256 of the packet's cases, orders and every image's bytes: ratings name the packet by it."""
    h = hashlib.sha256(json.dumps(data, sort_keys=True).encode())
    for name in sorted(images):
        h.update(name.encode() + b"\0" + hashlib.sha256(images[name]).digest())
    return "sha256:" + h.hexdigest()


def _write(out: Path, data: Mapping[str, Any], images: Mapping[str, bytes]) -> None:
    template = files("ix2x.benchmarks").joinpath("templates/review_packet.html").read_text(encoding="utf-8")
    # inside <script>, "</" could end the element early: escape it (JSON reads "<\/" as "</")
    payload = json.dumps(data, sort_keys=True, ensure_ascii=False).replace("</", "<\\/")
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    try:
        (tmp / "index.html").write_text(template.replace("__PACKET_JSON__", payload), encoding="utf-8")
        for name, blob in images.items():
            (tmp / name).write_bytes(blob)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
