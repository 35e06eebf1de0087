"""The full-size SD 1.5 InstructPix2Pix model with random weights, built once per session.

Set ``IX2X_FULLSIZE_DIR`` to a folder to keep the built model between sessions (it is rebuilt when
the folder is incomplete); otherwise it lives in pytest's tmp dir.
"""

import os
import sys
from pathlib import Path

import pytest

# Tests run with --import-mode=importlib: make fullsize_helpers importable.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def sd15_dir(tmp_path_factory) -> Path:
    from ix2x.diffusion.loading import missing_files

    from ix2x.benchmarks.gpu.sd15 import make_sd15_model

    keep = os.environ.get("IX2X_FULLSIZE_DIR")
    folder = Path(keep) if keep else tmp_path_factory.mktemp("fullsize") / "sd15_ip2p"
    if not (folder.is_dir() and not missing_files(folder) and (folder / "tokenizer/merges.txt").is_file()):
        make_sd15_model(folder, seed=0)
    return folder


@pytest.fixture(scope="session")
def torch_threads():
    """One thread: on the shared 2-core machine two OpenMP threads under load spin more than they run
    (measured on a 2-core CPU). ``IX2X_FULLSIZE_THREADS`` sets another count."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("IX2X_FULLSIZE_THREADS", "1")))
    yield
    torch.set_num_threads(threads)
