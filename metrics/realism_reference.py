"""Reference statistics for `realism`: the features of a folder of real images, summarised once and
cached on disk.

A reference set (``realism``'s ``reference`` setting: a folder of PNG, JPEG or DICOM radiographs,
read by :func:`ix2x.images.read_image` as every dataset's images are) is what the edits should look
like when the split's own targets are too few or absent. Its statistics are:

- the float64 running sums of its features and of their outer products (:class:`Moments`): FID's
  mean and covariance, in memory that does not grow with the number of reference images;
- a seeded uniform reservoir of at most ``max_features`` feature vectors (:class:`Reservoir`): KID's
  and the bootstrap's sample.

They are written to ``<cache>/realism_reference/<key>.npz`` (numpy arrays and a JSON string, read
back with ``allow_pickle=False``), where ``key`` is the SHA-256 of what decides the numbers:

- the **extractor**: its spec, class and the SHA-256 of every weight file it loaded;
- the **preprocessing**: the reader and its ``bit_depth`` policy, the cache format's version;
- the **data fingerprint**: every image file's path relative to the folder, size and modification
  time (the cheap fingerprint a resume uses for its data folder; any rewrite of a file changes it).

A second run with the same three finds the file and never runs the network over the reference. An
image whose path resolves outside the folder (a symlink out) is refused; symlinked sub-folders are
not walked.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ix2x.errors import UserError
from ix2x.metrics._feature_stats import Moments, Reservoir

FORMAT = 1  # bump when what is stored, or how an image becomes features, changes
SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm")
_BATCH = 8  # consecutive same-size images per network call (features do not depend on it)


@dataclass
class ReferenceStats:
    """A reference set's FID moments and KID sample (``features``: at most ``max_features`` rows)."""

    key: str
    moments: Moments
    features: np.ndarray
    meta: dict[str, Any]


def reference_files(root: str | Path) -> list[Path]:
    """The images under ``root``, sorted by relative path. Each must resolve inside ``root``."""
    from ix2x.data.paths import check_inside

    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise UserError(f"`reference` must be a folder of PNG, JPEG or DICOM images, got {str(root)!r} "
                        "(not a folder). Pass the folder that holds the reference radiographs.")
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):  # followlinks=False: symlinked folders are not walked
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath, name)
            if p.suffix.lower() in SUFFIXES:
                out.append(check_inside(p, folder, column="reference"))
    if not out:
        raise UserError(f"`reference` must hold at least 2 images ({', '.join(SUFFIXES)}), got none under "
                        f"{folder}.")
    return out


def data_fingerprint(root: Path, files: list[Path]) -> str:
    """SHA-256 of each image's relative path, size and modification time (nanoseconds)."""
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cache_key(spec: str, extractor: Any, root: Path, files: list[Path], *, bit_depth: Any,
              max_features: int, seed: int) -> tuple[str, dict[str, Any]]:
    """The cache file's key and the description it hashes (stored beside the statistics)."""
    described = {
        "format": FORMAT,
        "extractor": {"spec": spec, "name": extractor.name, "class": type(extractor).__name__,
                      "weights": dict(sorted(extractor.weight_files.items())),
                      # CPU and CUDA kernels give features that differ in the last bits
                      "device": str(getattr(extractor, "device", "cpu")).split(":")[0]},
        "preprocessing": {"reader": "ix2x.images.read_image", "bit_depth": bit_depth},
        "data": {"files": len(files), "fingerprint": data_fingerprint(root, files)},
        "sample": {"max_features": max_features, "seed": seed},
    }
    blob = json.dumps(described, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest(), described


def cache_dir(cache: str | Path | None = None) -> Path:
    from ix2x.data.cache import cache_root

    return Path(cache).expanduser() if cache else cache_root() / "realism_reference"


def _batches(files: list[Path], bit_depth: Any) -> Iterator[torch.Tensor]:
    """Consecutive same-size images, at most ``_BATCH`` at a time, read one file at a time."""
    from ix2x.images import read_image

    batch: list[torch.Tensor] = []
    for p in files:
        image = read_image(p, bit_depth=bit_depth)[0]
        if batch and (len(batch) == _BATCH or image.shape != batch[0].shape):
            yield torch.stack(batch)
            batch = []
        batch.append(image)
    if batch:
        yield torch.stack(batch)


def compute(extractor: Any, files: list[Path], *, bit_depth: Any, max_features: int, seed: int,
            progress: bool = True) -> tuple[Moments, np.ndarray]:
    """Run ``extractor`` over ``files`` once: float64 running sums and a reservoir of features."""
    moments: Moments | None = None
    kept = Reservoir(max_features, seed)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(files), desc="realism reference", unit="image", leave=False)
    for images in _batches(files, bit_depth):
        feats = extractor.features(images).double().numpy()
        if moments is None:
            moments = Moments(feats.shape[1])
        moments.add(feats)
        for f in feats:
            kept.offer(kept.seen, f, f)
        if bar is not None:
            bar.update(len(feats))
    if bar is not None:
        bar.close()
    _, kept_features, _ = kept.items()
    return moments, kept_features


def save(path: Path, key: str, moments: Moments, features: np.ndarray, meta: dict[str, Any]) -> None:
    """Write atomically (a reader never sees half a file; two runs writing the same key agree)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, n=np.int64(moments.n), sum=moments.sum, outer=moments.outer,
                 features=features.astype(np.float64), meta=np.array(json.dumps({"key": key, **meta})))
    os.replace(tmp, path)


def load(path: Path) -> ReferenceStats:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        moments = Moments(z["sum"].size)
        moments.n, moments.sum, moments.outer = int(z["n"]), z["sum"].copy(), z["outer"].copy()
        return ReferenceStats(meta["key"], moments, z["features"].copy(), meta)


def reference_statistics(spec: str, extractor: Any, root: str | Path, *, bit_depth: Any = "auto",
                         max_features: int = 10000, seed: int = 0, cache: str | Path | None = None,
                         progress: bool = True) -> ReferenceStats:
    """The reference folder's statistics under ``extractor``: from the cache when its key matches,
    else computed once and cached."""
    folder = Path(root).expanduser()
    files = reference_files(folder)
    key, described = cache_key(spec, extractor, folder, files, bit_depth=bit_depth,
                               max_features=max_features, seed=seed)
    path = cache_dir(cache) / f"{key}.npz"
    if path.is_file():
        return load(path)
    moments, features = compute(extractor, files, bit_depth=bit_depth, max_features=max_features, seed=seed,
                                progress=progress)
    if moments.n < 2:
        raise UserError(f"`reference` must hold at least 2 images, got {moments.n} under {folder}.")
    meta = {**described, "root": str(folder)}
    save(path, key, moments, features, meta)
    return ReferenceStats(key, moments, features, meta)


def load_by_key(key: str, cache: str | Path | None = None) -> ReferenceStats | None:
    """The cached statistics of ``key`` (a 64-hex SHA-256), None when absent."""
    if not (isinstance(key, str) and len(key) == 64 and all(c in "0123456789abcdef" for c in key)):
        raise ValueError(f"realism: a stored reference key must be 64 hex digits, got {key!r}.")
    path = cache_dir(cache) / f"{key}.npz"
    return load(path) if path.is_file() else None
