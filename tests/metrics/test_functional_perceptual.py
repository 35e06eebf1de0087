"""ix2x.metrics.functional: SSIM maps equal torchmetrics'; LPIPS from cached backbone features
equals the lpips package, whatever was cached before."""

import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from ix2x.classifiers import lpips_net
from ix2x.metrics.functional import lpips as functional_lpips
from ix2x.metrics.functional.ssim import ssim_map

lpips_pkg = pytest.importorskip("lpips")


@pytest.mark.parametrize("shape", [(3, 1, 40, 52), (2, 1, 11, 13), (1, 1, 128, 128), (1, 1, 700, 610)])
def test_ssim_map_equals_torchmetrics(shape):
    g = torch.Generator().manual_seed(sum(shape))
    a = torch.rand(*shape, generator=g, dtype=torch.float64)
    b = (a + 0.3 * torch.rand(*shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    mean, full = structural_similarity_index_measure(a, b, data_range=1.0, return_full_image=True,
                                                     reduction="none")
    ours = ssim_map(a, b)
    assert ours.shape == full.shape and ours.dtype == torch.float32
    torch.testing.assert_close(ours.double(), full, rtol=0, atol=1e-5)  # float32 vs torchmetrics in float64
    torch.testing.assert_close(ours.double().mean([1, 2, 3]), mean, rtol=0, atol=1e-6)
    assert torch.all(ssim_map(a, a) == 1)


@pytest.fixture
def model():
    return lpips_net.get_lpips("alex", random_backbone=True)


def _theirs(model, a, b, spatial):
    theirs = lpips_pkg.LPIPS(net="alex", pnet_rand=True, spatial=spatial, verbose=False).eval()
    theirs.load_state_dict(model.state_dict())
    with torch.no_grad():
        return theirs(a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1), normalize=True)


def test_spatial_lpips_equals_the_package(model):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 1, 96, 80, generator=g)
    b = (a + 0.2 * torch.randn(3, 1, 96, 80, generator=g)).clamp(0, 1)
    torch.testing.assert_close(functional_lpips.lpips_distance(model, a, b, spatial=True), _theirs(model, a, b, True))


def test_cached_features_give_the_values_of_a_cold_start(model, monkeypatch):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, 64, 64, generator=g)
    y = (x + 0.1 * torch.randn(4, 1, 64, 64, generator=g)).clamp(0, 1)
    expected = _theirs(model, x, y, False).reshape(-1)
    cache = lpips_net.TensorLRU(lpips_net.FEATURE_CACHE_BYTES)
    functional_lpips.lpips_distance(model, y[2:], x[:2], cache=cache)  # some images seen before, in other batches
    assert len(cache._items) == 4
    torch.testing.assert_close(functional_lpips.lpips_distance(model, x, y, cache=cache), expected)
    # A repeated image within one call, and a budget that keeps one entry: values do not change.
    monkeypatch.setattr(cache, "max_bytes", 1)
    d = functional_lpips.lpips_distance(model, torch.cat([x[:1], x[:1]]), torch.cat([y[:1], y[:1]]), cache=cache)
    assert d[0] == d[1] and torch.isclose(d[0], expected[0])
    functional_lpips.lpips_distance(model, x, y, cache=cache)
    assert len(cache._items) == 1


def test_features_are_keyed_by_content_not_by_object(model):
    a = torch.zeros(1, 1, 64, 64)
    b = torch.ones(1, 1, 64, 64)
    cache = lpips_net.TensorLRU(lpips_net.FEATURE_CACHE_BYTES)
    first = functional_lpips.lpips_distance(model, a, b, cache=cache)
    a += 1  # the same tensor object, new content: must not reuse the zeros' features
    assert functional_lpips.lpips_distance(model, a, b, cache=cache) == 0 and first > 0


def test_a_cache_smaller_than_a_batch_still_keeps_the_batch(model, monkeypatch):
    """Regression: 256 MB held fewer images than a batch's inputs, edits and targets at 512 px, so a
    batch's second comparison sent them through the backbone again. A run's cache keeps at least
    the working set of a batch (3 images per sample), whatever their size."""
    from ix2x.classifiers.scoring import Scoring

    g = torch.Generator().manual_seed(2)
    x, y, t = (torch.rand(2, 1, 64, 64, generator=g) for _ in range(3))  # inputs, edits, targets of a batch
    state = Scoring(batch_size=2)
    monkeypatch.setattr(state.features, "max_bytes", 1)  # far below one image's features
    computed = []
    put = state.features.put
    monkeypatch.setattr(state.features, "put", lambda key, value: computed.append(key) or put(key, value))
    for a, b in ((x, y), (y, t), (x, t)):  # out_of_mask_change, gt_fidelity, lpips: the same images again
        functional_lpips.lpips_distance(model, a, b, cache=state.features)
    assert len(computed) == 6 and len(state.features._items) == 6  # each image through the backbone once
    fresh = functional_lpips.lpips_distance(model, x, t, cache=lpips_net.TensorLRU(1))
    assert torch.equal(fresh, functional_lpips.lpips_distance(model, x, t, cache=state.features))
