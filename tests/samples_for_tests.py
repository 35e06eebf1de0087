"""Tiny in-memory samples with exact ground truth, importable from tests and their subprocesses."""

from __future__ import annotations

import torch

from ix2x.types import Sample


def tiny_samples(n: int = 6, size: int = 16, seed: int = 0) -> list[Sample]:
    """Random 8-bit-valued backgrounds (as read from real PNGs); the target differs from the input
    exactly inside a square region."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        image = torch.round(torch.rand(1, size, size, generator=g) * 127) / 255
        region = torch.zeros(1, size, size)
        r0 = i % (size // 2)
        region[:, r0:r0 + 4, 2:8] = 1
        target = torch.where(region > 0, image + 102 / 255, image)
        out.append(Sample(sample_id=f"s{i:03d}", image=image, instruction="Add the finding of pleural effusion.",
                          target=target, target_aligned=True, region=region, patient_id=f"p{i:03d}"))
    return out


def write_mimic_dir(root, samples, split: str = "test"):
    """Write samples in the MIMIC-EDIT-INSTRUCTION layout (8-bit PNGs, region masks, aligned)."""
    import csv
    from pathlib import Path

    from ix2x.images import save_image

    root = Path(root)
    rows = []
    for s in samples:
        past, current = f"{s.sample_id}p", f"{s.sample_id}c"
        save_image(root / "past" / f"{past}.png", s.image, bits=8)
        save_image(root / "current" / f"{current}.png", s.target, bits=8)
        save_image(root / "masks" / f"{s.sample_id}.png", s.region, bits=8)
        rows.append({"split": split, "past_dicom_id": past, "current_dicom_id": current,
                     "instruction": s.instruction, "subject_id": s.patient_id, "aligned": 1,
                     "mask": f"{s.sample_id}.png"})
    with open(root / "instructions.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


class CountingDataset:
    """A lazy dataset over ``samples`` that appends ``<pid> <index>`` to ``log`` for each sample it
    hands out (each decode), in this process or an editor's child; picklable."""

    def __init__(self, samples, log) -> None:
        self.samples = list(samples)
        self.log = str(log)
        self.sample_ids = [s.sample_id for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index):
        import os

        with open(self.log, "a") as f:
            f.write(f"{os.getpid()} {index}\n")
        return self.samples[index]

    def decodes(self) -> list[int]:
        from pathlib import Path

        return sorted(int(line.split()[1]) for line in Path(self.log).read_text().splitlines())
