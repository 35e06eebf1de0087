"""Exact lung and heart masks of phantoms (ix2x.data.phantom_structures), checked against the
generator's own change masks and its drawing: what changed between the two studies must lie where
the generator says the image changed."""

import numpy as np
import pytest

from ix2x.data.instructions import EditOp
from ix2x.data.phantom import Finding, render_pair, sample_patient
from ix2x.data.phantom_structures import STRUCTURES, pair_masks, structure_masks

SIZE = 128


def _pair(seed, findings_past, ops):
    rng = np.random.default_rng(seed)
    return render_pair(rng, SIZE, patient=sample_patient(rng), findings_past=findings_past, ops=ops)


def test_patient_sides_and_plausible_sizes():
    p = _pair(1, {}, [EditOp("add", "Edema", to_level="mild")])
    m = structure_masks(p.patient, p.findings_past, SIZE)
    cols = np.arange(SIZE)
    # Patient left = image right on a PA film.
    assert (m["left_lung"] * cols).sum() / m["left_lung"].sum() > SIZE / 2
    assert (m["right_lung"] * cols).sum() / m["right_lung"].sum() < SIZE / 2
    for s in STRUCTURES:
        assert 0.03 < m[s].mean() < 0.3, s
    # The heart is bright on the film, the lungs dark: the masks sit on the drawn anatomy.
    img = p.past.astype(float)
    assert img[m["heart"] & ~m["left_lung"] & ~m["right_lung"]].mean() > img[m["right_lung"]].mean() + 30


@pytest.mark.parametrize("side", ["left", "right", "bilateral"])
def test_effusion_shrinks_its_lungs_only_inside_the_generators_change_mask(side):
    p = _pair(2, {}, [EditOp("add", "Effusion", to_level="large", side=side)])
    before, after = pair_masks(p, SIZE)
    shrunk = {s for s in STRUCTURES if (before[s] != after[s]).any()}
    assert shrunk == ({"left_lung", "right_lung"} if side == "bilateral" else {f"{side}_lung"})
    for s in shrunk:
        lost = before[s] & ~after[s]
        assert after[s].sum() < 0.95 * before[s].sum() and not (after[s] & ~before[s]).any()
        assert not (lost & ~p.mask).any()  # only where the effusion layer changed the image
        assert np.argwhere(lost)[:, 0].mean() > np.argwhere(after[s])[:, 0].mean()  # the base, not the apex


def test_cardiomegaly_grows_the_heart_only_inside_the_generators_change_mask():
    p = _pair(3, {"Cardiomegaly": Finding("mild")}, [EditOp("change", "Cardiomegaly", "mild", "severe")])
    before, after = pair_masks(p, SIZE)
    assert after["heart"].sum() > 1.15 * before["heart"].sum()
    moved = before["heart"] ^ after["heart"]
    # Where the heart's top meets the mediastinum the image shows their maximum, so there the outline
    # moves without the image changing; everywhere else the change is inside the generator's mask.
    assert (moved & p.mask).sum() >= 0.9 * moved.sum()
    for s in ("left_lung", "right_lung"):
        assert (before[s] == after[s]).all()


@pytest.mark.parametrize("finding", ["Pneumothorax", "Consolidation", "Edema", "Lung Opacity", "Pneumonia",
                                     "Atelectasis"])
def test_other_findings_leave_the_outlines(finding):
    side = None if finding == "Edema" else "left"
    level = "severe" if finding == "Edema" else "large"
    p = _pair(4, {}, [EditOp("add", finding, to_level=level, side=side)])
    before, after = pair_masks(p, SIZE)
    assert all((before[s] == after[s]).all() for s in STRUCTURES)
    assert p.mask.any()


def test_jittered_pairs_are_refused():
    p = render_pair(np.random.default_rng(5), 64, jitter=True)
    with pytest.raises(ValueError, match="un-jittered"):
        pair_masks(p, 64)
