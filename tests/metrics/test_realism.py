"""`realism`: FID and KID equal torchmetrics' on the same features; features do not depend on the
batch; set-level values come from the stored features alone; memory does not grow with n."""

import os

import numpy as np
import pytest
import torch
from metric_helpers import Given

from ix2x.metrics import realism as ours

tm_fid = pytest.importorskip("torchmetrics.image.fid")
tm_kid = pytest.importorskip("torchmetrics.image.kid")


def _features(n, dim, seed, shift=0.0):
    g = np.random.default_rng(seed)
    mix = g.normal(size=(dim, dim)) / np.sqrt(dim)  # correlated features, as a network's are
    return (g.normal(size=(n, dim)) @ mix + shift).astype(np.float32)


def _torchmetrics_fid(edits, targets):
    m = tm_fid.FrechetInceptionDistance(feature=Given(edits.shape[1]))
    m.update(torch.from_numpy(targets), real=True)
    m.update(torch.from_numpy(edits), real=False)
    return float(m.compute())


@pytest.mark.parametrize("n,dim", [(40, 16), (90, 64), (60, 300)])  # 300 > _SYMMETRIC_ABOVE, n < dim too
def test_fid_equals_torchmetrics(n, dim):
    edits, targets = _features(n, dim, 1, shift=0.3), _features(n + 7, dim, 2)
    expected = _torchmetrics_fid(edits, targets)
    assert ours.fid(edits, targets) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    # the bootstrap's symmetric square root gives the same value
    assert ours.fid(edits, targets, symmetric=True) == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_kid_equals_torchmetrics_with_the_same_seed():
    edits, targets = _features(50, 24, 3, shift=0.5), _features(45, 24, 4)
    m = tm_kid.KernelInceptionDistance(feature=Given(24), subsets=7, subset_size=20)
    m.update(torch.from_numpy(targets), real=True)
    m.update(torch.from_numpy(edits), real=False)
    torch.manual_seed(11)
    mean, std = m.compute()
    got = ours.kid(edits, targets, subsets=7, subset_size=20, seed=11)
    assert got == pytest.approx((float(mean), float(std)), rel=1e-6, abs=1e-9)


def test_stored_features_round_trip_exactly():
    f = _features(1, 33, 5)[0]
    assert np.array_equal(ours.decode_features(ours.encode_features(f)), f)


def _values(edits, targets):
    return [{"features_edit": ours.encode_features(e), "features_target": ours.encode_features(t)}
            for e, t in zip(edits, targets)]


def test_aggregate_from_stored_features_equals_torchmetrics():
    edits, targets = _features(30, 16, 6, shift=0.2), _features(30, 16, 7)
    metric = ours.Realism(ours.Realism.Config(fid_resamples=50, kid_subsets=5))
    values = _values(edits, targets) + [{"nan_reason": "no target", "fid": float("nan")}]
    rows = {a.key: a for a in metric.aggregate(values, seed=3)}
    assert rows["fid"].value == pytest.approx(_torchmetrics_fid(edits, targets), rel=1e-6)
    assert rows["fid"].n == 30 and rows["fid"].n_nan == 1
    assert rows["fid"].ci_low <= rows["fid"].ci_high
    assert rows["kid_mean"].value == pytest.approx(ours.kid(edits, targets, subsets=5, subset_size=15,
                                                            seed=3, disjoint=True)[0], rel=1e-12)


def test_paired_kid_draws_disjoint_samples():
    """Edits equal to their targets (the oracle): independent subset draws put a sample on both
    sides and bias KID far below 0; disjoint draws are unbiased, so the mean is near 0."""
    targets = _features(200, 16, 12)
    overlapping = ours.kid(targets, targets, subsets=200, subset_size=100, seed=0)
    disjoint = ours.kid(targets, targets, subsets=200, subset_size=100, seed=0, disjoint=True)
    assert overlapping[0] < -5 * overlapping[1] / np.sqrt(200)  # significantly negative
    assert abs(disjoint[0]) < 3 * disjoint[1] / np.sqrt(200) + 1e-12


def test_oracle_scores_zero_fid():
    targets = _features(20, 8, 8)
    rows = {a.key: a for a in ours.Realism(ours.Realism.Config(fid_resamples=10)).aggregate(
        _values(targets, targets))}
    assert abs(rows["fid"].value) < 1e-9 and abs(rows["fid"].ci_high) < 1e-9
    # never below 0 (a squared distance), and inside its own interval
    assert rows["fid"].value >= 0 and 0 <= rows["fid"].ci_low <= rows["fid"].value <= rows["fid"].ci_high


def test_rounding_noise_never_makes_fid_negative():
    # many dimensions, few samples: the square root of the product of two equal covariances comes
    # out a little above their trace, which made FID slightly negative for edits equal to targets
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(40, 64)).astype(np.float32)
    assert ours.fid(targets, targets) != 0  # the raw formula is rounding noise here, of either sign
    rows = {a.key: a for a in ours.Realism(ours.Realism.Config(fid_resamples=20)).aggregate(
        _values(targets, targets))}
    assert rows["fid"].value >= 0 and rows["fid"].ci_low >= 0


def test_memory_does_not_grow_with_the_number_of_samples():
    """Peak memory of aggregating 5,000 samples' stored features within 10 % of 1,000's (the FID's
    running sums are float64 (d, d) matrices; KID and the bootstrap keep at most max_features)."""
    import tracemalloc

    metric = ours.Realism(ours.Realism.Config(fid_resamples=0, kid_subsets=2, kid_subset_size=50,
                                              max_features=200))
    peaks = []
    for n in (1000, 5000):
        values = _values(_features(n, 64, 9), _features(n, 64, 10))
        tracemalloc.start()
        metric.aggregate(values)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] <= 1.1 * peaks[0], peaks


# ----------------------------------------------------------------- extractors on phantom images
def test_phantom_metric_equals_torchmetrics_on_the_classifier_layer(phantoms):
    """The whole metric against torchmetrics' FID with the phantom classifier's penultimate layer as
    its custom feature extractor, called directly on the images."""
    from ix2x.classifiers.phantom import PhantomClassifier, prepare
    from metric_helpers import blur_everything

    clf = PhantomClassifier()

    class Penultimate(torch.nn.Module):
        num_features = 128

        def forward(self, x):
            with torch.no_grad():
                return clf.net.hidden(clf.net.features(prepare(x, clf.config)))

    edits = blur_everything(phantoms)
    metric = ours.Realism(ours.Realism.Config(fid_resamples=0))
    rows = {a.key: a for a in metric.aggregate(metric.compute(phantoms, edits))}
    m = tm_fid.FrechetInceptionDistance(feature=Penultimate())
    for s, e in zip(phantoms, edits):  # one at a time: the reference has no batch-size effect either
        m.update(s.target[None], real=True)
        m.update(e.image[None], real=False)
    assert rows["fid"].value == pytest.approx(float(m.compute()), rel=1e-4)  # float32 network
    assert rows["fid"].n == len(phantoms)


def test_features_do_not_depend_on_the_batch():
    """Batch 1 and batch 16 store the same bytes (and so give the same FID and KID)."""
    from metric_helpers import blur_everything, phantom_samples

    samples = phantom_samples(16, size=64, seed=1)
    edits = blur_everything(samples)
    together = ours.Realism().compute(samples, edits)
    alone = [ours.Realism().compute([s], [e])[0] for s, e in zip(samples, edits)]
    assert together == alone


def test_aggregate_never_loads_the_extractor(tmp_path, samples, monkeypatch):
    """A rescore of another metric recomputes realism's set-level values from the features stored in
    the records, without building the feature extractor."""
    from ix2x import records
    from ix2x.benchmarks import runner
    from ix2x.classifiers import features
    from ix2x.suite import ComponentSpec, suite_from_dict

    suite = suite_from_dict({"name": "r", "editors": [{"name": "identity"}, {"name": "oracle"}],
                             "metrics": [{"name": "realism", "args": {"fid_resamples": 20}},
                                         {"name": "out_of_mask_change", "args": {"lpips_net": None}}]})
    run_dir = runner.start_run(suite, tmp_path)
    runner.execute(run_dir, samples, progress=False)

    def refuse(*a, **k):
        raise AssertionError("the feature extractor was built")

    monkeypatch.setattr(features, "build_features", refuse)
    outcome = runner.rescore(run_dir, [ComponentSpec("out_of_mask_change", args={"lpips_net": None,
                                                                              "change_threshold": 0.5})],
                             samples, progress=False)
    key = lambda r: (r["editor"], r["metric"], r["key"])  # noqa: E731
    fid_rows = lambda d: {key(r): r for r in records.RunDir.open(d).summary() if r["metric"] == "realism"}  # noqa: E731
    before, after = fid_rows(run_dir), fid_rows(outcome.run_dir)
    assert before and before == after
    # oracle: edits are the targets; with fewer samples than feature dimensions the covariance is
    # singular and the square root of the product's ~1e-10 eigenvalues leaves ~1e-5 (torchmetrics too)
    assert before[("oracle", "realism", "fid")]["value"] == pytest.approx(0, abs=1e-3)


# --------------------------------------------------------------- xrv and Inception, random weights
def test_xrv_features_equal_densenet_features2(tmp_path, monkeypatch):
    """Random DenseNet weights saved where torchxrayvision keeps them; our extractor equals xrv's
    own model's ``features2`` on xrv's documented input pipeline."""
    xrv = pytest.importorskip("torchxrayvision")
    from ix2x.classifiers.features import build_features

    monkeypatch.setenv("HOME", str(tmp_path))
    folder = tmp_path / ".torchxrayvision" / "models_data"
    folder.mkdir(parents=True)
    torch.manual_seed(1)
    weights = "densenet121-res224-all"
    torch.save(xrv.models.DenseNet(weights=None, num_classes=18),
               folder / os.path.basename(xrv.models.model_urls[weights]["weights_url"]))
    x = torch.rand(3, 1, 64, 70, generator=torch.Generator().manual_seed(0))
    got = build_features(f"xrv:{weights}").features(x)
    direct = xrv.models.DenseNet(weights=weights).eval()
    crop, resize = xrv.datasets.XRayCenterCrop(), xrv.datasets.XRayResizer(224)
    documented = torch.stack([torch.from_numpy(resize(crop(xrv.datasets.normalize(i.numpy(), 1.0)))) for i in x])
    with torch.no_grad():
        expected = direct.features2(documented)
    assert got.shape == (3, 1024)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_inception_features_equal_torchvisions_model(tmp_path, monkeypatch):
    """Random Inception-v3 weights under torchvision's file name in $TORCH_HOME; our extractor equals
    the model torchvision itself builds from that file (its ImageNet weights enum), pool features."""
    torchvision = pytest.importorskip("torchvision")
    from ix2x.classifiers.features import INCEPTION_FILE, build_features

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(2)
    net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=True)
    torch.save(net.state_dict(), tmp_path / "hub" / "checkpoints" / INCEPTION_FILE)
    direct = torchvision.models.inception_v3(weights=torchvision.models.Inception_V3_Weights.IMAGENET1K_V1).eval()
    direct.fc = torch.nn.Identity()
    x = torch.rand(2, 1, 299, 299, generator=torch.Generator().manual_seed(0))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = direct((x.repeat(1, 3, 1, 1) - mean) / std)
    got = build_features("inception").features(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)


def test_bad_spec_and_missing_weights_are_clear(tmp_path, monkeypatch):
    from ix2x.classifiers.features import problems as features_problems
    from ix2x.errors import UserError

    with pytest.raises(UserError, match="`features` must be one of"):
        ours.Realism(ours.Realism.Config(features="resnet"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (problem,) = features_problems("inception")
    assert "inception_v3_google" in problem and "wget" in problem
