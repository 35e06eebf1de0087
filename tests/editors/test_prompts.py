"""Report-style prompts from parsed instructions (the baselines' input, as the InstructX2X paper feeds them)."""

import pytest

from ix2x.data.instructions import InstructionError
from ix2x.data.prompts import prompts_for


@pytest.mark.parametrize("instruction, target, source", [
    ("Add the finding of pleural effusion.", "Pleural effusion.", "No pleural effusion."),
    ("Add the finding of left pleural effusion.", "Left pleural effusion.", "No left pleural effusion."),
    ("Remove the finding of cardiomegaly.", "No cardiomegaly.", "Cardiomegaly."),
    ("Change the level of edema from mild to moderate.", "Moderate edema.", "Mild edema."),
    ("Change the level of right pneumothorax from small to large.", "Large right pneumothorax.", "Small right pneumothorax."),
    ("Add the finding of mild atelectasis in the left lower lobe.", "Mild atelectasis in the left lower lobe.",
     "No atelectasis in the left lower lobe."),
    ("Remove the findings of atelectasis and pneumonia.", "No atelectasis. No pneumonia.", "Atelectasis. Pneumonia."),
])
def test_report_prompts(instruction, target, source):
    p = prompts_for(instruction, "report")
    assert (p.target, p.source) == (target, source)


def test_progression_and_passthrough():
    assert prompts_for("Add the finding of left pleural effusion.", "progression").target == "New left pleural effusion."
    assert prompts_for("Remove the finding of edema.", "progression").target == "Resolved edema."
    assert prompts_for("Change the level of edema from mild to severe.", "progression").target == \
        "Edema, now severe (was mild)."
    assert prompts_for("make it worse", "instruction").target == "make it worse"
    with pytest.raises(InstructionError):
        prompts_for("make it worse", "report")
    with pytest.raises(ValueError, match="`prompt` must be one of"):
        prompts_for("Add the finding of edema.", "caption")


def test_roentgen_records_the_prompt_and_passes_unreadable_instructions_through(tmp_path):
    from diffusion_helpers import radiograph

    from ix2x import registry
    from ix2x.configs import build
    from ix2x.diffusion.tiny_t2i import make_tiny_t2i
    from ix2x.types import EditRequest

    cls = registry.load("editor", "roentgen")
    editor = cls(build(cls.Config, {"model": str(make_tiny_t2i(tmp_path / "m")), "steps": 2, "resolution": 64},
                       where="test"))
    out = editor.edit([EditRequest("a", radiograph(), "Remove the finding of edema.", 1),
                       EditRequest("b", radiograph(), "brighten the lungs", 1)])
    assert out[0].info["prompt"] == "No edema." and out[0].info["warnings"] == []
    assert out[1].info["prompt"] == "brighten the lungs" and "not understood" in out[1].info["warnings"][0]


def test_dataset_prompts_are_the_requests_reports_and_a_missing_report_says_what_to_add(tiny_t2i):
    """`prompt: dataset` conditions on the dataset's report of the study to draw (DiffEdit's source prompt:
    the input's report), records it, and without one refuses with the column to add and the alternative."""
    from diffusion_helpers import radiograph

    from ix2x import registry
    from ix2x.configs import build
    from ix2x.errors import UserError
    from ix2x.types import EditRequest

    cls = registry.load("editor", "diffedit")
    editor = cls(build(cls.Config, {"model": str(tiny_t2i), "steps": 2, "resolution": 64, "prompt": "dataset"},
                       where="test"))
    req = EditRequest("a", radiograph(), "Add the finding of edema.", 1, source_report="Mild cardiomegaly.",
                      target_report="Mild cardiomegaly. Moderate edema.")
    info = editor.edit([req])[0].info
    assert (info["prompt"], info["source_prompt"], info["prompt_style"]) == \
        ("Mild cardiomegaly. Moderate edema.", "Mild cardiomegaly.", "dataset")
    with pytest.raises(UserError, match="`target_report`.*`prompt: report`"):
        editor.edit([EditRequest("b", radiograph(), "Add the finding of edema.", 1)])
