"""Models shared by the editors of one run that load the same weights folder.

``instructx2x`` and its ablations (``ix2x_no_rse``, ``ix2x_mask_only``, ``ix2x_relevance_only``) and
``instructpix2pix`` often load one folder; each loading it costs the load (seconds to a minute for a
512 px model) and, on a GPU, the memory of a second copy while the first is freed. Inside
:func:`sharing` (the runner's scope around its editors) an editor asks :func:`get` for its model and
the first to ask loads it; the runner then calls :func:`keep` before each editor with the folders
the editors still to come need, so that a model no later editor needs is freed as before.
Outside :func:`sharing` nothing is kept: :func:`get` just loads.

A model is shared only under the same key (folder, device, dtype, and whatever else changes the
loaded objects, such as channels-last or compile): the editors' own settings (steps, tau, RSE) are
not part of the model and stay per editor. Sharing never changes an edit's bytes: the modules are
in eval mode, without gradients, and editors only read them.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Any, Callable, Hashable, Iterable, Iterator

_held: dict[tuple[str, Hashable], Any] = {}
_depth = 0  # sharing() scopes open in this process


@contextmanager
def sharing() -> Iterator[None]:
    """Models loaded through :func:`get` inside are kept for the scope's later editors; all are
    released when the outermost scope ends."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            keep(())


def active() -> bool:
    return _depth > 0


def get(folder: str, key: Hashable, load: Callable[[], Any]) -> Any:
    """The model loaded from ``folder`` under ``key`` (device, dtype...): the one already held, else
    ``load()`` (held for later editors while :func:`sharing` is active)."""
    if not active():
        return load()
    full = (str(folder), key)
    if full not in _held:
        _held[full] = load()
    return _held[full]


def keep(folders: Iterable[str]) -> None:
    """Release every held model whose folder is not in ``folders`` (the folders editors still to
    come will load), and give its memory back."""
    wanted = {str(f) for f in folders}
    gone = [k for k in _held if k[0] not in wanted]
    for k in gone:
        del _held[k]
    if gone:
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def held() -> list[str]:
    """The folders of the models held now (tests, diagnostics)."""
    return sorted({k[0] for k in _held})
