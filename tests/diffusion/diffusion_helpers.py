"""Helpers shared by the diffusion tests."""

import torch


def radiograph(seed: int = 0, size: int = 64) -> torch.Tensor:
    """A smooth chest-like test image (1, size, size) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    lungs = torch.exp(-(((x.abs() - 0.45) / 0.25) ** 2 + (y / 0.6) ** 2))
    img = 0.2 + 0.5 * lungs + 0.05 * torch.rand(size, size, generator=g)
    return img.clamp(0, 1)[None].float()
