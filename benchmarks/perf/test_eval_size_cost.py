"""Metric time per sample on 3,000 px radiographs (the size of MIMIC-CXR's) against the same images
at 512 px, with the suite's ``eval_size: 512``: pixel metrics downscale once, classifiers resize
from the original to their own input, SSIM's blur is O(n^2). Target: within 2x.

    pytest benchmarks/perf/test_eval_size_cost.py --benchmark-only -s   # ratio in extra_info / stdout

Images: a real radiograph of ``shared/data/real_cxr`` (NIH, 512 px), upsampled to 3,000 px (bicubic)
for the large variant (synthetic smooth noise when the shared folder is absent). Every metric of
the phantom suite that runs on real-data images (the phantom classifier stands in for xrv's, whose
weights are not here; LPIPS on a random backbone: same cost as the real one). Each round scores new
edits, so nothing is served from the per-image caches but the inputs and targets. Decoding is not
included (the images are tensors already).
"""

import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ix2x.classifiers.scoring import Scoring
from ix2x.configs import build
from ix2x import registry
from ix2x.types import EditResult, Sample

BATCH = 4
ROUNDS = 3
EVAL_SIZE = 512
METRICS = {"out_of_mask_change": {"lpips_random_backbone": True}, "gt_fidelity": {"lpips_random_backbone": True},
           "lpips": {"random_backbone": True}, "guidance_localization": {}, "classifier_shift": {},
           "demographic_preservation": {}}


def _radiograph() -> torch.Tensor:
    for root in (Path(__file__).resolve().parents[2] / ".." / "shared", Path("/work/shared")):
        path = root / "data" / "real_cxr" / "nih_00000001_000.png"
        if path.is_file():
            from ix2x.images import load_image

            return load_image(path)
    g = torch.Generator().manual_seed(0)
    return F.avg_pool2d(torch.rand(1, 1, 512, 512, generator=g), 15, 1, 7, count_include_pad=False)[0]


def _samples(side: int) -> list[Sample]:
    base = _radiograph()[None]
    x = base if base.shape[-1] == side else F.interpolate(base, size=(side, side), mode="bicubic").clamp(0, 1)
    out = []
    for i in range(BATCH):
        region = torch.zeros_like(x)
        a, b = side // 5 + i * side // 40, side // 2
        region[..., a:a + side // 3, b - side // 4:b + side // 8] = 1
        target = torch.where(region > 0, (x * 0.8 + 0.15).clamp(0, 1), x)
        out.append(Sample(f"s{i}", x[0].clone(), "Add the finding of left pleural effusion.", target=target[0],
                          target_aligned=True, region=region[0]))
    return out


def _edits(samples, round_no):
    """Edits as an editor makes them: the change in the region, and small differences everywhere
    else too (a diffusion editor's VAE round trip touches every pixel), so no edit equals its
    input or target outside the region and no content-keyed cache serves it (an edit equal to the
    target outside the region cost 1/1.71 of a realistic one at 512 px)."""
    g = torch.Generator().manual_seed(round_no)
    out = []
    for s in samples:
        change = 0.02 * torch.randn(s.image.shape, generator=g) * s.region
        noise = change + 0.005 * torch.randn(s.image.shape, generator=g)
        out.append(EditResult(image=(s.target + noise).clamp(0, 1),
                              guidance_map=(0.2 + 0.6 * s.region).clamp(0, 1), edit_mask=s.region.clone()))
    return out


def _metrics():
    objs = []
    for name, args in METRICS.items():
        cls = registry.load("metric", name)
        objs.append(cls(build(cls.Config, args, where=name)))
    return objs


def test_metric_time_3000px_over_512px(benchmark):
    runs = {}
    for side in (512, 3000):
        samples = _samples(side)
        metrics = _metrics()
        state = Scoring(eval_size=EVAL_SIZE)
        for m in metrics:
            m.use_scoring(state)
        for m in metrics:  # warm-up: networks built, input and target features cached
            m.compute(samples, _edits(samples, 10**6))
        runs[side] = (samples, metrics, [])

    def score(side, round_no):
        samples, metrics, times = runs[side]
        results = _edits(samples, round_no)
        t0 = time.perf_counter()
        for m in metrics:
            m.compute(samples, results)
        times.append((time.perf_counter() - t0) / len(samples))

    rounds = iter(range(10**6))

    def one_round():  # paired: the two sizes alternate, so background load hits both
        r = next(rounds)
        score(512, r)
        score(3000, r)

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    small, large = med(runs[512][2]), med(runs[3000][2])
    benchmark.extra_info.update(ms_per_sample_512=1000 * small, ms_per_sample_3000=1000 * large,
                                ratio_3000_over_512=large / small, metrics=list(METRICS), eval_size=EVAL_SIZE)
    print(f"\nmetric time per sample: 512 px {1000 * small:.1f} ms, 3000 px {1000 * large:.1f} ms, "
          f"ratio {large / small:.2f} (target <= 2)")


@pytest.mark.parametrize("side", [512, 3000])
def test_ssim_cost_grows_with_the_pixel_count(benchmark, side):
    """SSIM map alone on one image pair: 3,000 px has 34x the pixels of 512 px (O(n^2))."""
    from ix2x.metrics.functional.ssim import ssim_map

    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 1, side, side, generator=g)
    b = (a + 0.1 * torch.rand(1, 1, side, side, generator=g)).clamp(0, 1)
    benchmark.pedantic(lambda: ssim_map(a, b), rounds=3, iterations=1)
    benchmark.extra_info.update(side=side, pixels=side * side)
