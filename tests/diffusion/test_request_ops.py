"""The diffusion editor takes the instruction's parse from its request (the run's, made once) and
edits exactly as when it parses the instruction itself."""

import dataclasses

import torch
from diffusion_helpers import radiograph

from ix2x import registry
from ix2x.configs import build
from ix2x.data.instructions import EditOp
from ix2x.types import EditRequest, EditResult

INSTRUCTIONS = ["Add the finding of left pleural effusion.",
                "Change the level of pleural effusion from mild to moderate to large.",  # levels unreadable
                "make it look worse"]  # not the grammar


def test_the_request_parse_gives_the_same_edit_as_parsing_the_text(tiny_model):
    cls = registry.load("editor", "instructx2x")
    editor = cls(build(cls.Config, {"model": str(tiny_model), "steps": 2, "resolution": 64}, where="test"))
    plain = [EditRequest(f"s{i}", radiograph(i, size=64), text, 100 + i) for i, text in enumerate(INSTRUCTIONS)]
    with_ops = [dataclasses.replace(r, ops=tuple(o) if (o := _read(r.instruction)) else ()) for r in plain]
    assert with_ops[0].ops and with_ops[2].ops == ()
    a, b = editor.edit(plain), editor.edit(with_ops)
    for x, y in zip(a, b):
        assert type(x) is type(y) is EditResult
        assert torch.equal(x.image, y.image) and torch.equal(x.guidance_map, y.guidance_map)
        assert x.info == y.info  # the same prior, with the same warnings for what the grammar could not read
    # The editor follows the parse it is given: an instruction the grammar cannot read, with ops.
    given = dataclasses.replace(plain[2], ops=(EditOp("add", "Edema"),))
    info = editor.edit([given])[0].info["pseudo_mask"]
    assert info["findings"] == ["Edema"] and not info.get("warnings")


def _read(text):
    from ix2x.data.instructions import read_ops

    return read_ops(text)
