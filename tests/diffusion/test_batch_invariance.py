"""An edit depends on its own seed only: batch 1 and batch 8 (any order) give the same per-sample output."""

import pytest
import torch
from diffusion_helpers import radiograph

from ix2x import registry
from ix2x.configs import build
from ix2x.types import EditRequest

INSTRUCTIONS = ["Add the finding of pleural effusion.", "Remove the finding of edema.",
                "Change the level of cardiomegaly from mild to moderate.", "Add the finding of atelectasis."]


@pytest.mark.parametrize("name, scheduler", [("instructx2x", "ddim"), ("instructpix2pix", "euler_ancestral")])
def test_batch_of_8_equals_8_batches_of_1(tiny_model, fake_masks, name, scheduler):
    cls = registry.load("editor", name)
    editor = cls(build(cls.Config, {"model": str(tiny_model), "steps": 3, "resolution": 64,
                                    "scheduler": scheduler}, where="test"))
    requests = [EditRequest(f"s{i}", radiograph(i, size=64 if i % 2 else 48), INSTRUCTIONS[i % 4], 100 + i)
                for i in range(8)]
    batched = editor.edit(requests)
    shuffled = editor.edit(requests[::-1])[::-1]
    # Batched convolutions and GEMMs sum in another order: differences are float rounding (measured
    # up to 1.2e-5, below one 16-bit grey level, 1.5e-5), not a dependence on the batch.
    tol = dict(atol=5e-5, rtol=0)
    for request, together, reordered in zip(requests, batched, shuffled):
        alone = editor.edit([request])[0]
        assert alone.image.shape == request.image.shape
        torch.testing.assert_close(together.image, alone.image, **tol)
        torch.testing.assert_close(reordered.image, alone.image, **tol)
        if name == "instructx2x":
            torch.testing.assert_close(together.guidance_map, alone.guidance_map, **tol)
    # Different seeds really differ (the invariance is not from ignoring the noise).
    assert (batched[0].image - editor.edit([EditRequest("s0", requests[0].image, INSTRUCTIONS[0], 999)])[0].image
            ).abs().max() > 1e-4
