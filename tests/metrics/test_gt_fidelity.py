

def test_identity_outside_the_mask_is_perfect_even_next_to_the_change():
    """Regression: SSIM windows straddling the mask border let the inside change leak into ssim_out."""
    import torch

    from ix2x.metrics.gt_fidelity import fidelity_values

    x = torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(0))
    region = torch.zeros(1, 32, 32)
    region[:, 10:20, 10:20] = 1
    target = torch.where(region > 0, 1 - x, x)
    v = fidelity_values(x, target, region, None)
    assert v["mae_out"] == 0.0 and v["ssim_out"] == 1.0
    assert v["ssim_in"] < 0.5


def test_a_batch_scores_each_sample_as_alone():
    import math

    import torch

    from ix2x.classifiers.lpips_net import get_lpips
    from ix2x.metrics.gt_fidelity import fidelity_batch, fidelity_values

    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 64, 64, generator=g)
    regions = torch.zeros(3, 1, 64, 64)
    regions[0, :, 5:30, 5:30] = 1
    regions[1, :, 20:60, 10:40] = 1  # sample 2: empty mask
    targets = torch.where(regions > 0, 1 - x, x)
    edits = (targets + 0.05 * torch.randn(3, 1, 64, 64, generator=g)).clamp(0, 1)
    model = get_lpips("alex", random_backbone=True)
    batch = fidelity_batch(edits, targets, regions, model)
    model = get_lpips("alex", random_backbone=True)
    for i, values in enumerate(batch):
        alone = fidelity_values(edits[i], targets[i], regions[i], model)
        assert values.keys() == alone.keys()
        for k, v in alone.items():  # the same bits: SSIM and the LPIPS networks are batch-invariant
            assert v == values[k] or (isinstance(v, float) and math.isnan(v) and math.isnan(values[k])), k
    assert "empty true mask" in batch[2]["nan_reason"] and math.isnan(batch[2]["mae_in"])
