"""Editors, a plugin-style metric and samples for the report tests, registered through entry points
exactly as third-party plugins are (the registry is pointed at this module)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path

import torch

from ix2x.types import Editor, EditResult, HeadlineKey, Metric, Sample

HOSTILE = "Add the finding of edema. <img src=x onerror=\"window.__xss=1\"> | <script>window.__xss=2</script>"
INSTRUCTIONS = ["Add the finding of pleural effusion.", "Remove the finding of left pneumothorax.",
                "Add the finding of right atelectasis.", "Change the level of edema from mild to severe."]


class Brighten(Editor):
    """Adds ``amount`` everywhere; its guidance map is the left half of the image."""

    @dataclass(frozen=True)
    class Config:
        amount: float = 0.1

    def edit(self, requests):
        out = []
        for r in requests:
            g = torch.zeros_like(r.image)
            g[..., : r.image.shape[-1] // 2] = 1.0
            out.append(EditResult(image=(r.image + self.config.amount).clamp(0, 1), guidance_map=g,
                                  info={"model_calls": 1}))
        return out


class Flaky(Editor):
    """Returns the input (the best possible out-of-mask change) but fails on every third sample:
    its mean is over fewer samples, so it must not be ranked against the others."""

    fill_batches = False

    def edit(self, requests):
        out = []
        for r in requests:
            if int(r.sample_id[1:]) % 3 == 0:
                raise ValueError(f"flaky editor refuses {r.sample_id} <b>bold</b>")
            out.append(EditResult(image=r.image.clone()))
        return out


class Darkness(Metric):
    """A plugin metric that describes itself: 1 - mean intensity of the edit."""

    higher_is_better = {"darkness": True}
    glossary = "Plugin metric from a throwaway package: how dark the edit is."
    headline = (HeadlineKey("darkness", "darkness |1-x|", True, "", "1 - mean(x'): plugin glossary text."),)

    def compute(self, samples, results):
        return [{"darkness": float(1 - r.image.double().mean())} for r in results]


class Plain(Metric):
    """A plugin metric that names no headline keys: its keys must still reach every leaderboard."""

    higher_is_better = {"brightness": True, "spread": False}

    def compute(self, samples, results):
        return [{"brightness": float(r.image.double().mean()), "spread": float(r.image.double().std())}
                for r in results]


ENTRY_POINTS = {
    "ix2x.editors": [EntryPoint("brighten_t", "report_fixtures:Brighten", "ix2x.editors"),
                     EntryPoint("flaky_t", "report_fixtures:Flaky", "ix2x.editors")],
    "ix2x.metrics": [EntryPoint("darkness_t", "report_fixtures:Darkness", "ix2x.metrics"),
                     EntryPoint("plain_t", "report_fixtures:Plain", "ix2x.metrics")],
}


def patch_registry(monkeypatch) -> None:
    from ix2x import registry

    original = registry.entry_points
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: list(original(group=group)) + ENTRY_POINTS.get(group, []))


def samples(n: int = 12, size: int = 32, seed: int = 0, hostile: int | None = 3) -> list[Sample]:
    """Random backgrounds whose target differs inside a square region; instructions vary in op,
    finding and side; sample ``hostile`` carries HTML in its instruction."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        image = torch.round(torch.rand(1, size, size, generator=g) * 127) / 255
        region = torch.zeros(1, size, size)
        r0 = i % (size // 2)
        region[:, r0:r0 + 8, 4:16] = 1
        target = torch.where(region > 0, image + 102 / 255, image)
        text = HOSTILE if i == hostile else INSTRUCTIONS[i % len(INSTRUCTIONS)]
        out.append(Sample(sample_id=f"s{i:03d}", image=image, instruction=text, target=target,
                          target_aligned=True, region=region, patient_id=f"p{i:03d}"))
    return out


SUITE = {
    "name": "reptest",
    "editors": [{"name": "identity"}, {"name": "oracle"},
                {"name": "brighten_t", "label": "bright", "args": {"amount": 0.2}},
                {"name": "brighten_t", "label": "dim", "args": {"amount": 0.05}},
                {"name": "flaky_t", "label": "flaky"}],
    "metrics": [{"name": "out_of_mask_change"}, {"name": "guidance_localization"}, {"name": "darkness_t"}],
    "batch_size": 4,
}


def make_run(root: Path, suite: dict | None = None, dataset: list[Sample] | None = None) -> Path:
    from ix2x.benchmarks import runner
    from ix2x.suite import suite_from_dict

    d = runner.start_run(suite_from_dict(suite or SUITE), root)
    runner.execute(d, dataset if dataset is not None else samples(), progress=False)
    return d


def relabel(run_dir: Path, old: str, new: str) -> None:
    """Rename an editor label throughout a run directory (labels with markup reach reports from
    older runs or hand-edited ones, whatever the suite loader accepts today)."""
    meta = json.loads((run_dir / "run.json").read_text())
    for e in meta["suite"]["editors"]:
        if (e.get("label") or e["name"]) == old:
            e["label"] = new
    meta["editors"][new] = meta["editors"].pop(old)
    (run_dir / "run.json").write_text(json.dumps(meta))
    lines = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines() if x.strip()]
    for r in lines:
        if r["editor"] == old:
            r["editor"] = new
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    import csv

    with open(run_dir / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if r["editor"] == old:
            r["editor"] = new
    with open(run_dir / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
