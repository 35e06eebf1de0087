"""The metric audit's perturbations: exact at their end points, blur equal to scipy's Gaussian filter."""

import numpy as np
import pytest
import torch

from ix2x.data.perturbations import KINDS, NEEDS_PHANTOM, perturb


def _pair(size=32):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, size, size, generator=g) * 0.5 + 0.2
    y = x.clone()
    y[:, 4:12, 3:10] += 0.2  # the true change, in the left half
    return x, y


@pytest.mark.parametrize("kind", sorted(set(KINDS) - NEEDS_PHANTOM))
def test_strength_zero_is_the_input(kind):
    x, y = _pair()
    assert torch.equal(perturb(kind, 0.0, x, y, seed=3), x)


def test_true_edit_is_the_target_at_full_strength_and_linear_between():
    x, y = _pair()
    assert torch.equal(perturb("true_edit", 1.0, x, y), y)
    torch.testing.assert_close(perturb("true_edit", 0.25, x, y) - x, 0.25 * (y - x), rtol=0, atol=1e-6)


def test_change_moved_outside_has_the_true_amount_and_none_of_it_where_the_change_was():
    x, y = _pair()
    out = perturb("true_edit_outside", 1.0, x, y)
    changed = (y != x)
    assert torch.all(out[changed] == x[changed])
    assert float((out - x).abs().sum()) == pytest.approx(float((y - x).abs().sum()), rel=1e-5)


def test_blur_equals_scipy_gaussian_filter():
    from scipy.ndimage import gaussian_filter

    x, y = _pair(128)
    sigma = 3 * 0.5  # strength 0.5 at 128 px
    expected = gaussian_filter(x[0].double().numpy(), sigma, mode="mirror", truncate=3.0)
    got = perturb("blur", 0.5, x)[0].double().numpy()
    np.testing.assert_allclose(got, np.clip(expected, 0, 1), atol=1e-6)


def test_noise_is_seeded_per_sample_and_brightness_is_additive():
    x, _ = _pair()
    assert torch.equal(perturb("noise", 0.5, x, seed=1), perturb("noise", 0.5, x, seed=1))
    assert not torch.equal(perturb("noise", 0.5, x, seed=1), perturb("noise", 0.5, x, seed=2))
    torch.testing.assert_close(perturb("brightness", 0.5, x), (x + 0.1).clamp(0, 1))


def test_bad_settings_are_refused():
    from ix2x.editors.perturbation import Perturbation

    with pytest.raises(ValueError, match="`kind` must be one of"):
        Perturbation.Config(kind="rotate")
    with pytest.raises(ValueError, match="`strength` must be"):
        Perturbation.Config(strength=2)
    with pytest.raises(ValueError, match="needs the pixel-aligned target"):
        perturb("true_edit", 0.5, _pair()[0], None)


# ------------------------------------------------------------- re-rendered phantom patients
def _phantom(i, size=128):
    from ix2x.data.phantom import render_pair

    pair = render_pair(np.random.default_rng([0, i]), size)
    return f"s0-{i:06d}-past_s0-{i:06d}-current", torch.from_numpy(pair.past).float()[None] / 255, pair


@pytest.mark.parametrize("kind", ["second_finding", "attributes"])
def test_rerendered_patient_is_the_input_at_strength_zero(kind):
    from ix2x.data import perturbations

    sid, x, _ = _phantom(3)
    assert torch.equal(perturbations._rerendered(kind, 0.0, x, sid), x)  # the patient was drawn again exactly
    assert torch.equal(perturb(kind, 0.0, x, sample_id=sid), x)
    assert not torch.equal(perturb(kind, 1.0, x, sample_id=sid), x)


def test_second_finding_changes_only_where_the_finding_lies_and_the_classifier_sees_it():
    """Exact truth: pixels change only on the inserted finding's support; the shipped phantom
    classifier's probability of that finding grows with the strength."""
    from ix2x.classifiers.phantom import PhantomClassifier
    from ix2x.data import perturbations
    from ix2x.data.phantom import _canvas, finding_layer

    clf = PhantomClassifier()
    rising = 0
    for i in range(8):
        sid, x, pair = _phantom(i)
        name, finding = perturbations.off_target_finding(pair, np.random.default_rng([0, i, 11]))
        support = torch.from_numpy(finding_layer(_canvas(pair.patient, 128), name, finding) != 0)[None]
        images = [perturb("second_finding", s, x, sample_id=sid) for s in (0.0, 0.5, 1.0)]
        assert torch.equal(images[2][~support], x[~support])
        p = clf.predict(torch.stack(images)).probs[:, clf.findings.index(name)]
        rising += bool(p[0] < p[1] < p[2])
    assert rising >= 6, rising


def test_attributes_flip_the_classifiers_sex_reading():
    """Sex swapped at full strength: the shipped phantom classifier reads the other sex on most
    patients (it reads the true sex of the unaltered ones)."""
    from ix2x.classifiers.phantom import PhantomClassifier

    clf = PhantomClassifier()
    flipped = 0
    for i in range(8):
        sid, x, pair = _phantom(i)
        sex = clf.predict(torch.stack([x, perturb("attributes", 1.0, x, sample_id=sid)])).sex
        flipped += bool((sex[0] > 0.5) == (pair.patient.sex == "F") and (sex[1] > 0.5) == (pair.patient.sex == "M"))
    assert flipped >= 6, flipped


def test_rerendering_needs_a_phantom_sample():
    _, x, _ = _phantom(1)
    with pytest.raises(ValueError, match="`sample_id` must be a phantom sample"):
        perturb("attributes", 0.5, x, sample_id="p10_s20")
    with pytest.raises(ValueError, match="does not re-render"):
        perturb("attributes", 0.5, x, sample_id="s0-000002-past_s0-000002-current")
