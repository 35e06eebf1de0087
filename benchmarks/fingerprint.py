"""What the cheap data fingerprint (names, sizes and times of the files under the data folder)
can vouch for. A resume or rescore whose fingerprint matches skips hashing each done sample; that
is only sound when every file the samples are read from lies under that folder. Images in a
MIMIC-CXR tree elsewhere (``images_path``), MIMIC-IV tables (``mimic_iv``), a pseudo-mask folder
(``mask_source``), folders that symlinks point into (``link_roots``) and symlinked folders (not
walked) are outside it: then every done sample is hashed against its records, always.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ix2x.benchmarks.rundir import tree_fingerprint
from ix2x.suite import DataSpec


def data_fingerprint(spec: DataSpec, root: Path) -> dict[str, Any]:
    """:func:`tree_fingerprint` of ``root`` with ``covers_all`` (False when the samples also read
    files it does not cover) and ``not_covered`` (which)."""
    tree = tree_fingerprint(root)
    outside = []
    if spec.images_path:
        outside.append(f"images_path {spec.images_path}")
    if spec.mimic_iv:
        outside.append(f"mimic_iv {spec.mimic_iv}")
    if spec.region == "pseudo_mask" and spec.mask_source != "atlas":  # the atlas ships with ix2x
        outside.append(f"mask_source {spec.mask_source}")
    if spec.link_roots:
        outside.append(f"link_roots {', '.join(spec.link_roots)}")
    if tree.get("symlinked_folders"):
        outside.append(f"{tree['symlinked_folders']} symlinked folder(s) under {root}")
    return {**tree, "covers_all": not outside, "not_covered": outside}
