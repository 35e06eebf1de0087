"""Open the dataset a suite names: generated phantoms (cached) or a MIMIC-EDIT-INSTRUCTION folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

from ix2x.data.cache import cache_root
from ix2x.errors import DataError
from ix2x.suite import DataSpec, PhantomSpec
from ix2x.types import Sample


def phantom_dir(spec: PhantomSpec, *, progress: bool = False) -> Path:
    """The phantom dataset for ``spec``, generated once into the cache (atomically: a killed
    generation leaves nothing half-written behind)."""
    from ix2x.data.phantom import GENERATOR_VERSION, generate

    # The version is in the name so a cache written by an older generator (other columns) is not reused.
    name = f"phantom-v{GENERATOR_VERSION}-n{spec.n}-seed{spec.seed}-size{spec.size}" + ("-jitter" if spec.jitter else "")
    final = cache_root() / "phantom" / name
    if (final / "instructions.csv").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=final.parent))
    try:
        generate(tmp, n=spec.n, seed=spec.seed, size=spec.size, jitter=spec.jitter, progress=progress)
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished first: theirs is identical (same seed, same bytes)
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def check_data(spec: DataSpec) -> None:
    """Cheap checks before a run starts (a dataset folder that does not exist...)."""
    if spec.source == "dir":
        root = data_root(spec)
        image_locator(spec, root)  # a tree layout without files/ is refused here, before any model loads
        if spec.mimic_iv and not Path(spec.mimic_iv).expanduser().is_dir():
            raise DataError(f"MIMIC-IV folder {spec.mimic_iv} (data setting `mimic_iv`) does not exist. "
                            "Point it at MIMIC-IV's hosp/ folder (patients.csv.gz, admissions.csv.gz).")


def data_root(spec: DataSpec, *, progress: bool = False) -> Path:
    if spec.source == "phantom":
        return phantom_dir(spec.phantom, progress=progress)
    if not spec.path:
        raise DataError("The suite's data source is `dir` but no path is set. Pass `--data DIR` "
                        "(a MIMIC-EDIT-INSTRUCTION folder with instructions.csv, past/ and current/).")
    root = Path(spec.path).expanduser()
    if not root.is_dir():
        raise DataError(f"Dataset directory {root} does not exist. Pass `--data DIR` pointing at a "
                        "MIMIC-EDIT-INSTRUCTION folder (instructions.csv, past/, current/).")
    return root


def image_locator(spec: DataSpec, root: Path):
    """Where the ids of ``instructions.csv`` point: ``past/`` and ``current/`` under ``root`` (the
    original layout) or a MIMIC-CXR(-JPG) tree (``images_path``, default ``root``)."""
    from ix2x.data.mimic import FolderImages
    from ix2x.data.paths import as_paths

    if spec.layout == "original":
        return FolderImages(root, as_paths(spec.link_roots))
    from ix2x.data.mimic_cxr import MimicCxrTree

    return MimicCxrTree(Path(spec.images_path).expanduser() if spec.images_path else root, spec.layout)


def demographics(spec: DataSpec):
    """The MIMIC-IV join (:mod:`ix2x.data.mimic_iv`) when ``mimic_iv`` is set, else None."""
    if not spec.mimic_iv:
        return None
    from ix2x.data.mimic_iv import load_demographics

    return load_demographics(spec.mimic_iv)


def open_dataset(spec: DataSpec, *, progress: bool = False) -> Sequence[Sample]:
    """A lazy sequence of the split's samples (images load on access)."""
    from ix2x.data.mimic import MimicEditDataset

    root = data_root(spec, progress=progress)
    dataset = MimicEditDataset(root, split=spec.split, limit=spec.limit, images=image_locator(spec, root),
                               bit_depth=spec.bit_depth, demographics=demographics(spec), max_pixels=spec.max_pixels)
    if spec.region == "pseudo_mask":
        return PseudoMaskRegions(dataset, spec.mask_source)
    return dataset


def validate_data(spec: DataSpec):
    """:func:`ix2x.data.mimic.validate_dataset` with the suite's data settings (layout, bit depth,
    link roots, demographics), exactly as a run would read the data."""
    from ix2x.data.mimic import validate_dataset

    root = data_root(spec)
    images = image_locator(spec, root)
    people = demographics(spec)
    report = validate_dataset(root, images=images, bit_depth=spec.bit_depth, demographics=people,
                              max_pixels=spec.max_pixels)
    if hasattr(images, "describe"):
        report.extra.append(images.describe())
    if people is not None:
        report.extra += people.describe()
    return report


class PseudoMaskRegions(Sequence[Sample]):
    """Samples whose ``region`` is the pseudo-mask of their instruction's findings, at the image's
    size. What the mask fell back to (a finding with no prior...) goes to ``labels["region_info"]``."""

    def __init__(self, base: Sequence[Sample], mask_source: str) -> None:
        self.base = base
        self.mask_source = mask_source
        self.sample_ids = getattr(base, "sample_ids", None)

    def __len__(self) -> int:
        return len(self.base)

    def where(self, index: int) -> str | None:
        where = getattr(self.base, "where", None)
        return where(index) if where is not None else None

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        import dataclasses

        from ix2x import resize
        from ix2x.data.masks import pseudo_mask

        s = self.base[index]
        h, w = s.image.shape[-2:]
        mask, info = pseudo_mask(s.instruction, max(h, w), self.mask_source)
        # The priors are square (the original's are 512x512 over a square PA crop): stretch nearest.
        region = resize.nearest(mask, (h, w))
        return dataclasses.replace(s, region=(region > 0.5).float(),
                                   labels={**s.labels, "region_info": info})
