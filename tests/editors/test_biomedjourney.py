"""`biomedjourney` runs the InstructPix2Pix loop with a non-CLIP (BERT) text encoder loaded from a folder,
and equals diffusers' StableDiffusionInstructPix2PixPipeline built on that encoder."""

import pytest
import torch
from diffusion_helpers import radiograph

from ix2x import registry
from ix2x.configs import build
from ix2x.types import EditRequest

INSTRUCTION = "Add the finding of left pleural effusion."


@pytest.fixture(scope="module")
def bert_ip2p(tmp_path_factory):
    from ix2x.diffusion.tiny_t2i import make_tiny_bert_pix2pix

    return make_tiny_bert_pix2pix(tmp_path_factory.mktemp("bert_ip2p") / "model")


def test_biomedjourney_equals_diffusers_ip2p_with_bert(bert_ip2p):
    from diffusers import StableDiffusionInstructPix2PixPipeline
    from transformers import BertModel

    cls = registry.load("editor", "biomedjourney")
    editor = cls(build(cls.Config, {"model": str(bert_ip2p), "steps": 5, "resolution": 64, "scheduler": "model"},
                       where="test"))
    image, seed = radiograph(7), 17
    ours = editor.edit([EditRequest("s", image, INSTRUCTION, seed)])[0]
    assert isinstance(editor.model().c.text_encoder, BertModel)
    assert ours.info["prompt"] == "New left pleural effusion."
    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(bert_ip2p, safety_checker=None,
                                                                  requires_safety_checker=False)
    assert isinstance(pipe.text_encoder, BertModel)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe("New left pleural effusion.", image=image.repeat(3, 1, 1)[None], num_inference_steps=5,
               guidance_scale=7.5, image_guidance_scale=1.5, generator=torch.Generator().manual_seed(seed),
               output_type="pt").images
    torch.testing.assert_close(ours.image, ref[0].mean(dim=0, keepdim=True), atol=2e-5, rtol=0)
    # The prompt matters: the instruction as text gives another edit.
    plain = cls(build(cls.Config, {"model": str(bert_ip2p), "steps": 5, "resolution": 64, "scheduler": "model",
                                   "prompt": "instruction"}, where="test"))
    other = plain.edit([EditRequest("s", image, INSTRUCTION, seed)])[0]
    assert other.info["prompt"] == INSTRUCTION and (other.image - ours.image).abs().max() > 1e-4
