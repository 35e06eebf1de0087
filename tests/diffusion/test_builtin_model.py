"""`builtin:NAME` names a model shipped inside the package."""

import pytest

from ix2x.errors import MissingWeightsError, UserError


def test_builtin_scheme_resolves_inside_the_package_from_any_directory(tmp_path, monkeypatch):
    from pathlib import Path

    import ix2x
    from ix2x.diffusion import loading

    monkeypatch.chdir(tmp_path)
    root = Path(ix2x.__file__).parent / "models"
    with pytest.raises(MissingWeightsError, match="No built-in model 'nope'"):
        loading.resolve_model("builtin:nope")
    with pytest.raises(UserError, match="builtin:NAME"):
        loading.resolve_model("builtin:../x")
    shipped = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    for folder in shipped:
        assert loading.resolve_model(f"builtin:{folder.name}") == folder


def test_tiny_tokenizer_keeps_every_instruction_word_whole():
    """Regression: merges added word by word let an earlier merge ("e"+"f" from "effusion") split
    later words, so "left" became l / ef / t."""
    from ix2x.diffusion.tiny import make_tokenizer

    tokens = make_tokenizer().tokenize("Add the finding of left pleural effusion.")
    assert tokens == ["add</w>", "the</w>", "finding</w>", "of</w>", "left</w>", "pleural</w>",
                      "effusion</w>", ".</w>"]
