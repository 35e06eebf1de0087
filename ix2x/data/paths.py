"""Paths named by data files, kept inside the folders they belong to.

A CSV row names files (``past_dicom_id``, ``mask``...). Whatever the text, the file read must lie
inside the dataset root: ``../``, absolute paths and symlinks that lead out are refused, naming the
row. Symlinks into folders the user declares (``link_roots``: e.g. the MIMIC-CXR-JPG tree that
``ix2x dataset build`` links from) are allowed.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterable, Sequence

from ix2x.errors import DataError


class OutsideRoot(DataError):
    """A data file's name leads outside the dataset root."""


class ImageNotFound(DataError):
    """No file exists where a data file's name points; the message lists the exact paths tried."""


def relative_part(text: str, *, column: str) -> PurePosixPath:
    """``text`` as a relative path with no ``..``; :class:`OutsideRoot` otherwise (no file touched)."""
    raw = text.strip()
    posix = PurePosixPath(raw.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(raw).is_absolute() or PureWindowsPath(raw).drive:
        raise OutsideRoot(f"`{column}` {raw!r} is an absolute path; data files must name files inside "
                          "the dataset root.")
    if ".." in posix.parts:
        raise OutsideRoot(f"`{column}` {raw!r} climbs out with `..`; data files must name files inside "
                          "the dataset root.")
    return posix


def check_inside(path: Path, root: Path, *, column: str, link_roots: Sequence[Path] = ()) -> Path:
    """``path`` if it resolves (symlinks followed) inside ``root`` or a ``link_roots`` folder."""
    real = path.resolve()
    for allowed in (root, *link_roots):
        if real.is_relative_to(Path(allowed).resolve()):
            return path
    raise OutsideRoot(f"`{column}` {path} resolves to {real}, outside the dataset root {root} (a symlink "
                      "out). If you made these links, add the folder they point into to the data "
                      "setting `link_roots`.")


def as_paths(folders: Iterable[str | Path]) -> tuple[Path, ...]:
    return tuple(Path(f).expanduser() for f in folders)
