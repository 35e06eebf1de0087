"""The original InstructX2X inference's finding lookup and scheduler, for exact reproduction (``original: true``).

Source: ``inference/rse_x2x.py`` of the InstructX2X release (github.com/hgminn/InstructX2X, commit
b31bc7f3809ace589ae0c8d41667279241253054), ``InstructPix2Pix.integrate_masks`` and ``__init__``.

The original lower-cases the instruction and collects every entry of its own 31-entry
``VALID_CATEGORIES`` list (:data:`VALID_CATEGORIES`, copied verbatim) whose lower-cased form occurs in it
as a substring, Title-cases each to a file name ``pseudo_mask_{Name}.npy`` and takes the union of those
files. If no category occurs, or any named one has no file, the whole prior is reset to the whole image.
Sides are ignored. Our default lookup (:func:`ix2x.data.masks.pseudo_mask`) parses the grammar, maps
synonyms to canonical names and records every fallback instead.

With the atlas as the source, each Title-cased name is mapped to our canonical finding through the
synonym table (:data:`~ix2x.data.instructions.SYNONYMS`, e.g. "Effusion" -> Effusion) and a name the atlas
lacks resets the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ix2x import resize
from ix2x.errors import DataError

ORIGINAL_MASKS_HOW_TO_GET = (
    "The original's eight pseudo-masks are `inference/masks/pseudo_mask_*.npy` in the InstructX2X repository "
    "(clone it on a machine with internet and copy that folder here), then pass the folder as `mask_source`.")

# ``VALID_CATEGORIES`` of ``integrate_masks`` in the original, verbatim and in its order, quirks included:
# 'Effusion' (capitalised; matched lower-cased, so "pleural effusion" finds pseudo_mask_Effusion.npy),
# the two 'tortuosity ...' entries end in a space (they match only when a space follows "aorta"), and it
# differs from MIMIC-Diff-VQA's list (gastric distention, pneumomediastinum, infection, hypoxemia; no
# infiltration, mass, nodule, lung lesion).
VALID_CATEGORIES: tuple[str, ...] = (
    'fracture', 'thymoma', 'tortuosity of the descending aorta ', 'blunting of the costophrenic angle',
    'atelectasis', 'hilar congestion', 'hernia', 'cardiomegaly', 'consolidation', 'Effusion',
    'tortuosity of the thoracic aorta ', 'vascular congestion', 'pleural thickening', 'granuloma',
    'lung opacity', 'contusion', 'hypertensive heart disease', 'heart failure', 'gastric distention',
    'pneumomediastinum', 'calcification', 'infection', 'air collection', 'pneumonia',
    'enlargement of the cardiac silhouette', 'edema', 'emphysema', 'scoliosis', 'hypoxemia',
    'hematoma', 'pneumothorax',
)

# The original builds its sampler as ``DDIMScheduler.from_pretrained("CompVis/stable-diffusion-v1-4",
# subfolder="scheduler")`` whatever the model folder holds. This is that file's content (Stable Diffusion
# v1.4's scheduler_config.json); ``scheduler: ddim_sd14`` samples with it.
SD14_SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.7.0.dev0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}


def original_findings(instruction: str) -> list[str]:
    """The Title-cased names the original looks up for ``instruction`` (``pseudo_mask_{name}.npy``)."""
    text = instruction.lower()
    return [c.title() for c in VALID_CATEGORIES if c.lower() in text]


def original_pseudo_mask(instruction: str, size: int, source: str) -> tuple[torch.Tensor, dict[str, Any]]:
    """(mask (1, size, size) in {0, 1}, info) as the original computes it from ``instruction``."""
    names = original_findings(instruction)
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
    from ix2x.data.instructions import SYNONYMS

    canonical = SYNONYMS.get(name.lower().strip())
    if canonical not in ATLAS_FINDINGS:
        return None
    return torch.from_numpy(np.asarray(atlas_mask(canonical, None, size), dtype=np.float32))[None]


def _file(folder: Path, name: str, size: int) -> torch.Tensor | None:
    if not folder.is_dir():
        raise DataError(f"`mask_source` folder {folder} does not exist. {ORIGINAL_MASKS_HOW_TO_GET}")
    path = folder / f"pseudo_mask_{name}.npy"
    if not path.is_file():
        return None
    # The original's files are 512 x 512 and it runs at 512 px only; at other sizes we resize (nearest).
    m = torch.from_numpy(np.load(path, allow_pickle=False).astype(np.float32))[None, None]
    return resize.nearest(m, (size, size))[0].clamp(0, 1)
