"""The original InstructX2X inference's finding lookup, for exact reproduction (``original: true``).

The original lower-cases the instruction, collects every one of the 31 MIMIC-Diff-VQA category names that
occurs in it as a substring, Title-cases each to a file name ``pseudo_mask_{Name}.npy`` and takes the
union of those files. If no category occurs, or any named one has no file (e.g. "pleural effusion" ->
``pseudo_mask_Pleural Effusion.npy``, which the release does not ship), the whole prior is reset to the
whole image. Sides are ignored. Our default lookup (:func:`ix2x.data.masks.pseudo_mask`) parses the
grammar, maps synonyms to canonical names and records every fallback instead.

With the atlas as the source, the Title-cased names are mapped to canonical findings
(:data:`~ix2x.data.instructions.DIFF_VQA_CATEGORIES`) and a finding the atlas lacks resets the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ix2x.errors import DataError

ORIGINAL_MASKS_HOW_TO_GET = (
    "The original's eight pseudo-masks are `inference/masks/pseudo_mask_*.npy` in the InstructX2X repository "
    "(clone it on a machine with internet and copy that folder here), then pass the folder as `mask_source`.")


def original_pseudo_mask(instruction: str, size: int, source: str) -> tuple[torch.Tensor, dict[str, Any]]:
    """(mask (1, size, size) in {0, 1}, info) as the original computes it from ``instruction``."""
    from ix2x.data.instructions import DIFF_VQA_CATEGORIES

    text = instruction.lower()
    names = [c.title() for c in DIFF_VQA_CATEGORIES if c in text]
    info: dict[str, Any] = {"lookup": "original_substring", "mask_source": source, "findings": names,
                            "whole_image": False, "warnings": []}
    priors, missing = [], []
    for name in names:
        prior = _atlas(name, size) if source == "atlas" else _file(Path(source), name, size)
        if prior is None:
            missing.append(name)
        else:
            priors.append(prior)
    if missing or not names:
        info["whole_image"] = True
        info["without_prior"] = missing
        info["warnings"].append(f"original lookup: {'no mask for ' + ', '.join(missing) if missing else 'no category named'}; "
                                "the prior is the whole image (the original's reset)")
        mask = torch.ones(1, size, size)
    else:
        mask = torch.stack(priors).amax(dim=0)
    info["coverage"] = float(mask.mean())
    return mask, info


def _atlas(name: str, size: int) -> torch.Tensor | None:
    from ix2x.data.atlas import ATLAS_FINDINGS, atlas_mask
    from ix2x.data.instructions import DIFF_VQA_CATEGORIES

    canonical = DIFF_VQA_CATEGORIES.get(name.lower())
    if canonical not in ATLAS_FINDINGS:
        return None
    return torch.from_numpy(np.asarray(atlas_mask(canonical, None, size), dtype=np.float32))[None]


def _file(folder: Path, name: str, size: int) -> torch.Tensor | None:
    if not folder.is_dir():
        raise DataError(f"`mask_source` folder {folder} does not exist. {ORIGINAL_MASKS_HOW_TO_GET}")
    path = folder / f"pseudo_mask_{name}.npy"
    if not path.is_file():
        return None
    m = torch.from_numpy(np.load(path, allow_pickle=False).astype(np.float32))[None, None]
    return F.interpolate(m, size=(size, size), mode="nearest")[0].clamp(0, 1)
