"""`realism` against a reference folder: FID/KID to the folder equal torchmetrics' on the same
features; the folder's statistics are cached on disk and reused without running the network; a
changed file or another extractor invalidates them; files must stay inside the folder; memory does
not grow with the folder; KID's row says why it has no interval."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from metric_helpers import Given, blur_everything

from ix2x.images import read_image, save_image
from ix2x.metrics import realism as ours
from ix2x.metrics import realism_reference as ref

tm_fid = pytest.importorskip("torchmetrics.image.fid")
tm_kid = pytest.importorskip("torchmetrics.image.kid")


class Projection:
    """A small deterministic extractor (fixed random projection of the 16 x 16 downsampled image) that
    counts the images it is run on."""

    dim = 12

    def __init__(self, seed=0):
        self.name, self.weight_files = f"projection{seed}", {f"projection{seed}.bin": f"sha{seed}"}
        self.w = torch.randn(256, self.dim, generator=torch.Generator().manual_seed(seed))
        self.images_seen = 0

    def features(self, images):
        self.images_seen += images.shape[0]
        x = torch.nn.functional.adaptive_avg_pool2d(images, 16).flatten(1)
        return x @ self.w


def _folder(tmp_path, n, size=32, seed=0, name="ref"):
    root = tmp_path / name
    root.mkdir()
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        save_image(root / f"img{i:04d}.png", torch.rand(1, size, size, generator=g))
    return root


def test_second_run_reads_the_cache_and_changes_invalidate_it(tmp_path):
    root = _folder(tmp_path, 10)
    cache = tmp_path / "cache"
    net = Projection()
    first = ref.reference_statistics("proj", net, root, cache=cache, progress=False)
    assert net.images_seen == 10 and first.moments.n == 10
    assert len(list(cache.glob("*.npz"))) == 1

    again = ref.reference_statistics("proj", net, root, cache=cache, progress=False)
    assert net.images_seen == 10  # not run again
    assert again.key == first.key
    assert np.array_equal(again.moments.outer, first.moments.outer) and np.array_equal(again.features, first.features)

    # another extractor (other weights): other key, computed
    other = Projection(seed=1)
    assert ref.reference_statistics("proj", other, root, cache=cache, progress=False).key != first.key
    assert other.images_seen == 10
    # a rewritten file: other key, computed again
    save_image(root / "img0003.png", torch.zeros(1, 32, 32))
    changed = ref.reference_statistics("proj", net, root, cache=cache, progress=False)
    assert changed.key != first.key and net.images_seen == 20
    # another reading policy (preprocessing): other key
    assert ref.reference_statistics("proj", net, root, cache=cache, bit_depth=16,
                                    progress=False).key not in (first.key, changed.key)


def test_reference_moments_equal_the_features_of_every_file(tmp_path):
    """PNG, JPEG and DICOM through the project's readers; the cached sums give the same mean and
    covariance as numpy on the features of each file read alone."""
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
    from dicom_synth import write_dicom

    root = _folder(tmp_path, 6)
    (root / "sub").mkdir()
    Image.fromarray((np.random.default_rng(0).random((40, 36)) * 255).astype(np.uint8)).save(root / "sub" / "a.jpg")
    write_dicom(root / "sub" / "b.dcm", np.random.default_rng(1).integers(0, 4096, (32, 32)))
    (root / "notes.txt").write_text("not an image")
    net = Projection()
    stats = ref.reference_statistics("proj", net, root, cache=tmp_path / "c", progress=False)
    files = ref.reference_files(root)
    assert [p.name for p in files] == [f"img{i:04d}.png" for i in range(6)] + ["a.jpg", "b.dcm"]
    feats = np.stack([Projection().features(read_image(p, bit_depth="auto")[0][None])[0].double().numpy()
                      for p in files])
    mean, cov = stats.moments.mean_cov()
    # float32 features of one file alone vs in a batch of 8 (this test extractor has no fixed chunks)
    np.testing.assert_allclose(mean, feats.mean(0), rtol=0, atol=1e-5)
    np.testing.assert_allclose(cov, np.cov(feats, rowvar=False), rtol=1e-5, atol=1e-5)


def test_files_must_stay_inside_the_folder(tmp_path):
    from ix2x.data.paths import OutsideRoot
    from ix2x.errors import UserError

    root = _folder(tmp_path, 3)
    outside = _folder(tmp_path, 1, name="elsewhere")
    (root / "link.png").symlink_to(outside / "img0000.png")
    with pytest.raises(OutsideRoot, match="outside"):
        ref.reference_files(root)
    with pytest.raises(UserError, match="`reference` must be a folder"):
        ref.reference_files(tmp_path / "missing")


def test_memory_does_not_grow_with_the_reference(tmp_path):
    """Peak traced memory computing the statistics of 400 images within 10 % of 100 (running sums
    and a reservoir of at most max_features feature vectors)."""
    import tracemalloc

    peaks = []
    for n in (100, 400):
        files = ref.reference_files(_folder(tmp_path, n, size=32, name=f"r{n}"))
        tracemalloc.start()
        ref.compute(Projection(), files, bit_depth="auto", max_features=20, seed=0, progress=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] <= 1.1 * peaks[0], peaks


# ------------------------------------------------------------------------------ the metric
def test_metric_against_a_reference_equals_torchmetrics(tmp_path, phantoms, monkeypatch):
    """FID and KID from the edits to a folder of the phantoms' targets equal torchmetrics' on the
    phantom classifier's features; a new metric object aggregating the stored records reads the
    reference from the cache, without building the extractor."""
    from ix2x.classifiers import features
    from metric_helpers import blur_everything

    root = tmp_path / "reference"
    root.mkdir()
    for i, s in enumerate(phantoms):
        save_image(root / f"t{i}.png", s.target)
    config = ours.Realism.Config(reference=str(root), reference_cache=str(tmp_path / "cache"), fid_resamples=20,
                                 kid_subsets=6, kid_subset_size=5)
    edits = blur_everything(phantoms)
    metric = ours.Realism(config)
    values = metric.compute(phantoms, edits)
    assert len({v["reference_key"] for v in values}) == 1

    def refuse(*a, **k):
        raise AssertionError("the feature extractor was built")

    monkeypatch.setattr(features, "build_features", refuse)
    rows = {a.key: a for a in ours.Realism(config).aggregate(values, seed=4)}

    net = features.PhantomFeatures()
    ref_f = torch.cat([net.features(read_image(p, bit_depth="auto")[0][None]) for p in sorted(root.iterdir())])
    edit_f = torch.stack([torch.from_numpy(ours.decode_features(v["features_edit"])) for v in values])
    m = tm_fid.FrechetInceptionDistance(feature=Given(ref_f.shape[1]))
    m.update(ref_f.double(), real=True)
    m.update(edit_f.double(), real=False)
    assert rows["fid_reference"].value == pytest.approx(float(m.compute()), rel=1e-6, abs=1e-6)
    assert rows["fid_reference"].n == len(phantoms) and rows["fid_reference"].ci_low <= rows["fid_reference"].ci_high
    k = tm_kid.KernelInceptionDistance(feature=Given(ref_f.shape[1]), subsets=6, subset_size=5)
    k.update(ref_f.double(), real=True)
    k.update(edit_f.double(), real=False)
    torch.manual_seed(4)
    mean, std = k.compute()
    assert rows["kid_reference_mean"].value == pytest.approx(float(mean), rel=1e-6, abs=1e-9)
    assert rows["kid_reference_std"].value == pytest.approx(float(std), rel=1e-6, abs=1e-9)
    # the split's targets are still scored beside the reference
    assert np.isfinite(rows["fid"].value)


def test_samples_without_a_target_count_against_the_reference(tmp_path, phantoms):
    import dataclasses

    from metric_helpers import identity

    root = _folder(tmp_path, 6, size=64)
    no_target = [dataclasses.replace(s, target=None) for s in phantoms]
    metric = ours.Realism(ours.Realism.Config(reference=str(root), reference_cache=str(tmp_path / "c"),
                                              fid_resamples=0, kid_subsets=2, kid_subset_size=3))
    rows = {a.key: a for a in metric.aggregate(metric.compute(no_target, identity(no_target)))}
    assert np.isnan(rows["fid"].value)
    assert rows["fid_reference"].n == len(phantoms) and np.isfinite(rows["fid_reference"].value)


def test_kid_says_why_it_has_no_interval():
    g = np.random.default_rng(0)
    e, t = g.normal(size=(20, 8)).astype(np.float32), g.normal(size=(20, 8)).astype(np.float32)
    values = [{"features_edit": ours.encode_features(a), "features_target": ours.encode_features(b)}
              for a, b in zip(e, t)]
    rows = {a.key: a for a in ours.Realism(ours.Realism.Config(fid_resamples=5, kid_subsets=3)).aggregate(values)}
    assert np.isnan(rows["kid_mean"].ci_low) and "kid_std" in rows["kid_mean"].nan_reason


def test_fid_interval_names_its_method():
    g = np.random.default_rng(1)
    e, t = g.normal(size=(20, 8)).astype(np.float32), g.normal(size=(20, 8)).astype(np.float32)
    values = [{"features_edit": ours.encode_features(a), "features_target": ours.encode_features(b)}
              for a, b in zip(e, t)]
    rows = {a.key: a for a in ours.Realism(ours.Realism.Config(fid_resamples=5, kid_subsets=3)).aggregate(values)}
    assert rows["fid"].ci_method == "percentile"
    rows = {a.key: a for a in ours.Realism(ours.Realism.Config(fid_resamples=0, kid_subsets=3)).aggregate(values)}
    assert rows["fid"].ci_method == ""


def test_preflight_names_a_missing_reference_folder(tmp_path):
    metric = ours.Realism(ours.Realism.Config(reference=str(tmp_path / "nowhere")))
    assert any("`reference` must be a folder" in p for p in metric.problems())
    assert not ours.Realism(ours.Realism.Config(reference=str(tmp_path))).problems()


def test_a_changed_reference_folder_is_not_silently_scored(tmp_path, phantoms):
    """Records name the reference statistics they were scored with; when those left the cache and
    the folder now reads differently, aggregating says so instead of scoring another set."""
    import shutil

    root = tmp_path / "reference"
    root.mkdir()
    for i, s in enumerate(phantoms):
        save_image(root / f"t{i}.png", s.target)
    config = ours.Realism.Config(reference=str(root), reference_cache=str(tmp_path / "cache"), fid_resamples=0)
    values = ours.Realism(config).compute(phantoms, blur_everything(phantoms))
    shutil.rmtree(tmp_path / "cache")
    ours.Realism(config).aggregate(values)  # the same folder: the same key, recomputed
    (root / "t0.png").unlink()
    shutil.rmtree(tmp_path / "cache")
    with pytest.raises(ValueError, match="no longer in"):
        ours.Realism(config).aggregate(values)


def test_the_cache_key_names_the_device_type(tmp_path):
    """Features computed on CUDA differ from the CPU's in the last bits: their statistics are not
    shared; two CUDA devices are the same kernels."""
    from types import SimpleNamespace

    root = _folder(tmp_path, 3, size=32)
    files = sorted(root.iterdir())

    def key(device):
        extractor = SimpleNamespace(name="phantom", weight_files={"w": "0"}, device=device)
        return ref.cache_key("phantom", extractor, root, files, bit_depth="auto", max_features=10, seed=0)[0]

    assert key("cpu") != key("cuda:0") and key("cuda:0") == key("cuda:1")
