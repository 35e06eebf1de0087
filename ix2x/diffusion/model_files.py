"""The files of a diffusers InstructPix2Pix folder, judged without loading a weight: which a load
reads, the damaged or unsafe ones among them, the tokenizer's size against the text encoder's. Used by
:mod:`ix2x.diffusion.checks` (before a run) and :mod:`ix2x.diffusion.loading` (before a load); it imports
neither, so neither import closes a cycle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# One of each tuple must exist (weights: safetensors preferred, .bin accepted), as in
# ix2x.diffusion.loading.REQUIRED_FILES; grouped here by the component they belong to.
COMPONENTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "model_index": (("model_index.json",),),
    "unet": (("unet/config.json",),
             ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin")),
    "vae": (("vae/config.json",),
            ("vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.bin")),
    "text_encoder": (("text_encoder/config.json",),
                     ("text_encoder/model.safetensors", "text_encoder/pytorch_model.bin")),
    "tokenizer": (("tokenizer/tokenizer.json", "tokenizer/vocab.json"),),
    "scheduler": (("scheduler/scheduler_config.json",),),
}


def weight_problems(folder: Path) -> list[str]:
    """Damaged or unsafe weights files among those a load would read (safetensors first, as
    ix2x.diffusion.loading does): ix2x.weight_files."""
    from ix2x import weight_files

    out = []
    for component, groups in COMPONENTS.items():
        for group in groups:
            used = next((folder / n for n in group if (folder / n).is_file()), None)
            if used is not None and used.suffix in (".safetensors", ".bin"):
                found = weight_files.problem(used)
                if found:
                    out.append(found)
    return out


def tokenizer_mismatch(folder: Path, n_tokens: int | None) -> str | None:
    """A tokenizer with more tokens than the text encoder has embeddings: ids past the table fail or
    read another row (a 3-million-token tokenizer beside a 649-entry encoder cost 20 s and 2.3 GB per
    edit before failing)."""
    vocab = (_read_json(folder / "text_encoder" / "config.json") or {}).get("vocab_size")
    if n_tokens is not None and isinstance(vocab, int) and n_tokens > vocab:
        return (f"tokenizer has {n_tokens:,} tokens but the text encoder embeds {vocab:,}; tokenizer/ must be the "
                "model's own")
    return None


def tokenizer_size(folder: Path) -> int | None:
    """Number of tokens of a tokenizer folder (what ``len(CLIPTokenizer)`` answers), read without transformers."""
    if (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        try:
            return Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size(with_added_tokens=True)
        except Exception:
            return 0
    vocab = _read_json(folder / "vocab.json")
    return len(vocab) if isinstance(vocab, dict) else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
