"""Damaged or hostile weights files (a safetensors header claiming 1 TB, a .bin whose pickle runs
code) are refused with one line naming the file, by `ix2x edit` and by `ix2x validate` (main printed
a 46-50 line traceback from edit and validate passed them)."""

import os
import pickle
import shutil

import pytest
import torch

from ix2x.cli.main import main
from ix2x.images import save_image


class Payload:
    def __reduce__(self):
        return (os.system, ("echo this would run",))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from ix2x.diffusion.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def _huge_header(folder):
    path = folder / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(path.read_bytes())
    data[:8] = (10**12).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    return path


def _code_in_bin(folder):
    (folder / "text_encoder" / "model.safetensors").unlink()
    path = folder / "text_encoder" / "pytorch_model.bin"
    path.write_bytes(pickle.dumps({"weight": Payload()}))
    return path


@pytest.mark.parametrize("damage", [_huge_header, _code_in_bin])
def test_damaged_weights_are_one_line_in_edit_and_validate(tiny, tmp_path, capsys, damage):
    folder = tmp_path / "model"
    shutil.copytree(tiny, folder)
    bad = damage(folder)
    image = tmp_path / "x.png"
    save_image(image, torch.rand(1, 64, 64), bits=8)

    rc = main(["edit", str(image), "Add the finding of pleural effusion.", "--model", str(folder),
               "--out", str(tmp_path / "o.png"), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and str(bad) in err and "Traceback" not in err

    rc = main(["validate", "--editors", "instructx2x", "--editor-arg", f"instructx2x.model={folder}",
               "--metrics", "out_of_mask_change"])
    out = capsys.readouterr()
    assert rc != 0 and str(bad) in out.out + out.err


def test_a_tokenizer_larger_than_the_text_encoder_is_refused(tiny, tmp_path, capsys):
    import json

    folder = tmp_path / "model"
    shutil.copytree(tiny, folder)
    config = folder / "text_encoder" / "config.json"
    raw = json.loads(config.read_text())
    raw["vocab_size"] = 100  # fewer embeddings than the tokenizer has tokens
    config.write_text(json.dumps(raw))
    image = tmp_path / "x.png"
    save_image(image, torch.rand(1, 64, 64), bits=8)
    rc = main(["edit", str(image), "Add the finding of pleural effusion.", "--model", str(folder),
               "--out", str(tmp_path / "o.png"), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "the text encoder embeds 100" in err
    from ix2x.diffusion.checks import folder_problems

    assert any("the text encoder embeds 100" in line for line in folder_problems(folder, fix="fix"))
