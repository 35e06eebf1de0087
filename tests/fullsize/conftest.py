"""The full-size SD 1.5 InstructPix2Pix model with random weights, built once per session.

Set ``IX2X_FULLSIZE_DIR`` to a folder to keep the built model between sessions (it is rebuilt when
the folder is incomplete); otherwise it lives in pytest's tmp dir.
"""

import os
import re
from pathlib import Path

import pytest


def rss_gb() -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of this process, GB."""
    text = Path("/proc/self/status").read_text()
    return {k: int(re.search(rf"{k}:\s+(\d+)", text).group(1)) / 2**20 for k in ("VmRSS", "VmHWM")}


def reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def sd15_dir(tmp_path_factory) -> Path:
    from ix2x.diffusion.loading import missing_files

    from benchmarks.gpu.sd15 import make_sd15_model

    keep = os.environ.get("IX2X_FULLSIZE_DIR")
    folder = Path(keep) if keep else tmp_path_factory.mktemp("fullsize") / "sd15_ip2p"
    if not (folder.is_dir() and not missing_files(folder) and (folder / "tokenizer/merges.txt").is_file()):
        make_sd15_model(folder, seed=0)
    return folder


@pytest.fixture(scope="session")
def torch_threads():
    """Both cores of the shared machine (the tests run under `nice -n 10`)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
    torch.set_num_threads(threads)
