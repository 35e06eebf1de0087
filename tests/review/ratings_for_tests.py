"""Ratings files as the packet page saves them, written by simulated readers."""

import json

import numpy as np

FOLLOWED = ("no", "partly", "yes")
UNINTENDED = ("none", "minor", "major")


def simulated(key, rater, seed, *, skip=0):
    """A reader who rates the ceiling editor's edits realistic and followed, the floor's not,
    with noise; the last ``skip`` cases of the packet are left unanswered."""
    rng = np.random.default_rng(seed)
    answers = []
    for i, (case, truth) in enumerate(sorted(key["cases"].items())):
        good = truth["editor"] == "oracle"
        a = {"case": case, "comment": "", "time_s": 2.5, "where": None}
        if key["mode"] == "rate":
            a["realism"] = int(np.clip((4 if good else 2) + rng.integers(-1, 2), 1, 5))
            a["instruction_followed"] = FOLLOWED[int(np.clip((2 if good else 0) + rng.integers(-1, 2), 0, 2))]
            a["unintended_change"] = UNINTENDED[int(rng.integers(0, 2))]
        else:
            right = truth["kind"] if rng.random() < 0.75 else ("real" if truth["kind"] == "edit" else "edited")
            a["judgement"] = "real" if right == "real" else "edited"
        if i >= len(key["cases"]) - skip:
            a = {"case": case, "comment": "", "time_s": 0}
        answers.append(a)
    return {"format": "ix2x-review-ratings", "version": 1, "packet_hash": key["packet_hash"], "mode": key["mode"],
            "rater_id": rater, "rater_slot": 1, "saved_at": "2026-12-04T00:00:00Z", "answers": answers}


def write(path, data):
    path.write_text(json.dumps(data))
    return path
