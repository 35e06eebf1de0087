"""Damaged or hostile weights files found before a model loads, one line each naming the file.

A safetensors file is checked from its header alone (a header longer than the file, one that is
not JSON, a tensor ending past the end: a truncated download or a crafted file); a ``.bin``
goes through torch's restricted unpickler (``weights_only=True``, memory-mapped when it is a zip
archive, so no tensor data is read), which refuses anything but tensors and plain containers.
Loaders then fail with these lines instead of a library's traceback, and ``ix2x validate`` lists
them.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

MAX_HEADER = 100 * 2**20  # safetensors' own limit on the JSON header


def problem(path: Path) -> str | None:
    """What is wrong with the weights file ``path``, or None when it can be loaded."""
    path = Path(path)
    size = path.stat().st_size
    if path.suffix == ".safetensors":
        return _safetensors_problem(path, size)
    if path.suffix in (".bin", ".pt", ".pth", ".ckpt"):
        import torch

        try:
            torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            return (f"{path} cannot be read as plain tensors ({type(e).__name__}: {first}); it is damaged or "
                    "holds code, which ix2x never runs. Replace it with the released file")
    return None


def _safetensors_problem(path: Path, size: int) -> str | None:
    damaged = f"{path} is damaged or not a safetensors file"
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{damaged}: it has {size} bytes. Replace it with the released file"
        n = int.from_bytes(head, "little")
        if n > size - 8 or n > MAX_HEADER:
            return f"{damaged}: its header claims {n:,} bytes, the file has {size:,}. Replace it with the released file"
        try:
            header = json.loads(f.read(n))
        except ValueError:
            return f"{damaged}: its header is not JSON. Replace it with the released file"
    body = size - 8 - n
    if not isinstance(header, dict):
        return f"{damaged}: its header is not a mapping. Replace it with the released file"
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            end = int(info["data_offsets"][1])
        except (TypeError, KeyError, IndexError, ValueError):
            return f"{damaged}: tensor {name!r} has no data offsets. Replace it with the released file"
        if end > body:
            return (f"{damaged}: tensor {name!r} ends at byte {end:,} of a {body:,}-byte body (truncated). "
                    "Replace it with the released file")
    return None
