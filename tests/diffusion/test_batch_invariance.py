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


def test_runner_edits_are_the_same_bytes_in_any_order(tiny_model, fake_masks, tmp_path):
    """The runner fills a short last batch with copies, so the diffusion editor always sees one batch
    shape: reversing the data (s0 moves from a batch of 4 to the short last one) changes no bit of any
    edit (the
    out-of-mask MSE over the whole image, in float64, sees the last bit; the PNGs would hide it)."""
    from ix2x.benchmarks import runner
    from ix2x import records
    from ix2x.suite import suite_from_dict
    from ix2x.types import Sample

    samples = [Sample(f"s{i}", radiograph(i), INSTRUCTIONS[i % 4], region=torch.zeros(1, 64, 64))
               for i in range(5)]
    raw = {"name": "order_t", "seed": 0, "batch_size": 4,
           "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None, "ssim": False}}],
           "editors": [{"name": "instructx2x", "args": {"model": str(tiny_model), "steps": 3, "resolution": 64}}]}
    values = []
    for name, data in (("forward", samples), ("reversed", samples[::-1])):
        run_dir = runner.start_run(suite_from_dict(raw), tmp_path / name)
        assert runner.execute(run_dir, data, progress=False).ok
        recs = records.RunDir.open(run_dir).records()
        values.append({r["sample_id"]: (r["metrics"]["out_of_mask_change"]["mse"],
                                        (run_dir / r["image"]).read_bytes()) for r in recs})
    assert values[0] == values[1] and len(values[0]) == 5
