"""The phantom segmenter's trainer writes weights and a model card the segmenter loads; same
settings, same bytes (one thread, seeded)."""

import json

from ix2x.classifiers.segmentation import PhantomSegmenter
from ix2x.training.segmenter import HELD_OUT_SEED, TRAIN_SEED, main


def test_a_tiny_training_run_ships_a_loadable_card(tmp_path):
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name / "seg.safetensors"
        main(["--out", str(out), "--n-train", "2", "--n-held-out", "1", "--steps", "2", "--width", "4"])
        outs.append(out)
    card = json.loads(outs[0].with_suffix(".json").read_text())
    assert card["training"]["train_seed"] == TRAIN_SEED and card["held_out"]["generator_seed"] == HELD_OUT_SEED
    assert TRAIN_SEED != 0 and HELD_OUT_SEED != 0  # the benchmark suites' generator seed
    assert set(card["held_out"]["dice"]) == {"left_lung", "right_lung", "heart"}
    assert outs[0].read_bytes() == outs[1].read_bytes()
    seg = PhantomSegmenter(outs[0])
    assert seg.name == "phantom:seg.safetensors"
