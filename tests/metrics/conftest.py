import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# These tests run beside other work on 2 shared cores: one thread avoids oversubscription stalls.
import torch  # noqa: E402

torch.set_num_threads(1)

from metric_helpers import LookupClassifier, phantom_samples  # noqa: E402

from ix2x.classifiers import clear_cache, register  # noqa: E402


@pytest.fixture(scope="module")
def phantoms():
    return phantom_samples()


@pytest.fixture
def lookup(phantoms):
    clear_cache()
    register("lookup", LookupClassifier(phantoms))
    yield "lookup"
    clear_cache()
