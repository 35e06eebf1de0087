"""Regions from pseudo-masks for real data, which has no true change mask."""

from ix2x.data.atlas import atlas_mask
from ix2x.data.sources import open_dataset
from ix2x.suite import DataSpec
from samples_for_tests import tiny_samples, write_mimic_dir


def test_pseudo_mask_region_is_the_atlas_of_the_instruction(tmp_path):
    data = write_mimic_dir(tmp_path / "d", tiny_samples(2, size=32))
    ds = open_dataset(DataSpec(source="dir", path=str(data), region="pseudo_mask"))
    s = ds[0]
    assert s.instruction == "Add the finding of pleural effusion."
    expected = atlas_mask("Effusion", None, 32)
    assert (s.region[0].numpy() == expected).all() and 0 < s.region.mean() < 1
    assert s.labels["region_info"]["with_prior"] == ["Effusion"]
    assert ds.sample_ids == [x.sample_id for x in ds]


def test_repeated_pairs_get_distinct_sample_ids(tmp_path):
    import csv

    from ix2x.data.mimic import MimicEditDataset

    data = write_mimic_dir(tmp_path / "d", tiny_samples(2, size=16))
    rows = list(csv.DictReader(open(data / "instructions.csv")))
    rows.append({**rows[0], "instruction": "Remove the finding of pleural effusion."})
    with open(data / "instructions.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    ds = MimicEditDataset(data, split="test")
    assert ds.sample_ids == ["s000p_s000c", "s001p_s001c", "s000p_s000c~1"]
    assert [s.sample_id for s in ds] == ds.sample_ids
    assert ds[-1].instruction.startswith("Remove")
