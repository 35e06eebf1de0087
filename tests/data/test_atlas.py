"""Anatomical atlas: shapes, laterality, and coverage of the phantom's true change masks."""

import numpy as np
import pytest

from ix2x.data.atlas import ATLAS_FINDINGS, atlas_mask, coverage
from ix2x.data.findings import RSE_FINDINGS
from ix2x.data.phantom import render_pair


def test_every_finding_at_any_resolution():
    assert ATLAS_FINDINGS == RSE_FINDINGS
    for name in ATLAS_FINDINGS:
        for size in (37, 128, 512):
            m = atlas_mask(name, None, size)
            assert m.shape == (size, size) and m.dtype == np.float32
            assert set(np.unique(m)) <= {0.0, 1.0} and m.any()


def test_laterality_patient_left_is_image_right():
    for name in ATLAS_FINDINGS:
        if name == "Cardiomegaly":
            continue
        left, right = atlas_mask(name, "left", 128), atlas_mask(name, "right", 128)
        assert left[:, :60].sum() == 0 and left[:, 64:].sum() > 0
        assert right[:, 68:].sum() == 0 and right[:, :64].sum() > 0
        both = atlas_mask(name, "bilateral", 128)
        assert (both == np.maximum(left, right)).all() and (atlas_mask(name, None, 128) == both).all()


def test_atlas_is_much_tighter_than_the_original_masks():
    # The original's box unions cover 59-83 % of the image.
    for name in ATLAS_FINDINGS:
        assert coverage(name, None) < 0.5
        assert coverage(name, "left") < 0.25
    assert coverage("Cardiomegaly") < 0.12 and coverage("Effusion", "left") < 0.12


def test_atlas_covers_the_phantom_change_masks():
    size = 96
    inside = {n: 0 for n in ATLAS_FINDINGS}
    total = dict(inside)
    for i in range(160):
        pair = render_pair(np.random.default_rng([21, i]), size)
        if len(pair.ops) != 1:
            continue
        (op,) = pair.ops
        atlas = atlas_mask(op.finding, op.side, size) > 0
        inside[op.finding] += int((pair.mask & atlas).sum())
        total[op.finding] += int(pair.mask.sum())
    for name in ATLAS_FINDINGS:
        assert total[name] > 0, name
        assert inside[name] / total[name] >= 0.95, (name, inside[name] / total[name])


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="`finding` must be one of"):
        atlas_mask("Nodule", None, 64)
    with pytest.raises(ValueError, match="`side` must be one of"):
        atlas_mask("Effusion", "upper", 64)
