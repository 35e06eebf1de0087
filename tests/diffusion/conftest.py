import sys
from pathlib import Path

import pytest
import torch

# Tests run with --import-mode=importlib: make diffusion_helpers importable.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The machines are shared 2-core boxes: two intra-op threads under load are several times slower
    than one. Results are compared within one run, so the thread count does not change what is tested."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny random InstructPix2Pix folder (64 px images, 16x16 latents), written once per session."""
    from ix2x.diffusion.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny_ip2p") / "model", seed=0, image_size=64)


@pytest.fixture
def fake_masks(monkeypatch):
    """Replace the pseudo-mask lookup (ix2x.data.masks, another module's job) with a fixed prior: the left
    half of the image for instructions naming 'effusion', else the whole image."""
    from ix2x.diffusion import editor

    def fake(instruction, size, source, ops=None):
        mask = torch.ones(1, size, size)
        if "effusion" in instruction.lower():
            mask[..., size // 2:] = 0
        return mask, {"findings": ["Effusion"], "source": source, "warnings": []}

    monkeypatch.setattr(editor, "pseudo_mask_for", fake)
