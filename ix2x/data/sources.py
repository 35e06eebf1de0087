"""Open the dataset a suite names: generated phantoms (cached) or a MIMIC-EDIT-INSTRUCTION folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

from ix2x.errors import DataError
from ix2x.suite import DataSpec, PhantomSpec
from ix2x.types import Sample


def cache_root() -> Path:
    """``$IX2X_CACHE``, else ``$XDG_CACHE_HOME/ix2x``, else ``~/.cache/ix2x``."""
    if os.environ.get("IX2X_CACHE"):
        return Path(os.environ["IX2X_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ix2x"


def phantom_dir(spec: PhantomSpec, *, progress: bool = False) -> Path:
    """The phantom dataset for ``spec``, generated once into the cache (atomically: a killed
    generation leaves nothing half-written behind)."""
    from ix2x.data.phantom import generate

    name = f"phantom-n{spec.n}-seed{spec.seed}-size{spec.size}" + ("-jitter" if spec.jitter else "")
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
        data_root(spec)


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


def open_dataset(spec: DataSpec, *, progress: bool = False) -> Sequence[Sample]:
    """A lazy sequence of the split's samples (images load on access)."""
    from ix2x.data.mimic import MimicEditDataset

    return MimicEditDataset(data_root(spec, progress=progress), split=spec.split, limit=spec.limit)
