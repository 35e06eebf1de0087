

def test_identity_outside_the_mask_is_perfect_even_next_to_the_change():
    """Regression: SSIM windows straddling the mask border let the inside change leak into ssim_out."""
    import torch

    from metrics.gt_fidelity import fidelity_values

    x = torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(0))
    region = torch.zeros(1, 32, 32)
    region[:, 10:20, 10:20] = 1
    target = torch.where(region > 0, 1 - x, x)
    v = fidelity_values(x, target, region, None)
    assert v["mae_out"] == 0.0 and v["ssim_out"] == 1.0
    assert v["ssim_in"] < 0.5
