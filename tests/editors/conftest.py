import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent.parent / "diffusion"))
sys.path.insert(0, str(Path(__file__).parent))  # radedit_reference


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Shared 2-core machines: one intra-op thread (results are compared within one run)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_t2i(tmp_path_factory):
    from ix2x.diffusion.tiny_t2i import make_tiny_t2i

    return make_tiny_t2i(tmp_path_factory.mktemp("tiny_t2i") / "model")


@pytest.fixture(scope="session")
def tiny_radedit(tmp_path_factory):
    from ix2x.diffusion.tiny_t2i import make_tiny_radedit

    return make_tiny_radedit(tmp_path_factory.mktemp("tiny_radedit") / "radedit")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from ix2x.diffusion.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny_ip2p") / "model")
