"""Weight files never run code: crafted pickles are read without calling anything they name, and
the real torchxrayvision file layout still loads to the outputs xrv itself gives."""

import hashlib
import os
import pickle

import pytest
import torch

xrv = pytest.importorskip("torchxrayvision")

from ix2x.classifiers import xrv as ours  # noqa: E402
from ix2x.classifiers.safe_pickle import Placeholder, restricted_load  # noqa: E402
from ix2x.errors import UserError  # noqa: E402

WEIGHTS = "densenet121-res224-all"
FILE = os.path.basename(xrv.models.model_urls[WEIGHTS]["weights_url"])


class _Exec:
    """Pickles as ``exec(code)``: what a hostile weights file does."""

    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return exec, (self.code,)


class _System:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _ChainedDenseNet:
    """Pickles as ``xrv.models.DenseNet(..., weights=WEIGHTS, cache_dir=folder)``: a class that
    weights_only=True allows once xrv's classes are allow-listed, whose constructor then
    torch.loads ``folder/FILE`` with weights_only=False."""

    def __init__(self, folder):
        self.folder = str(folder)

    def __reduce__(self):
        return xrv.models.DenseNet, (32, (6, 12, 24, 16), 64, 4, 0, 18, 1, WEIGHTS, self.folder)


def _touch_code(marker):
    return f"open({str(marker)!r}, 'w').write('ran')"


def test_chained_pickle_runs_nothing(tmp_path):
    attacker = tmp_path / "attacker"
    attacker.mkdir()
    marker = tmp_path / "marker"
    torch.save(_Exec(_touch_code(marker)), attacker / FILE)
    crafted = tmp_path / "crafted.pt"
    torch.save(_ChainedDenseNet(attacker), crafted)

    # The file is live: the previous loader (weights_only=True with xrv's classes allowed) ran it.
    with torch.serialization.safe_globals([xrv.models.DenseNet]):
        with pytest.raises(Exception):  # xrv fails after the payload ran: the second file is no model
            torch.load(str(crafted), map_location="cpu", weights_only=True)
    assert marker.exists(), "the crafted file should run code through weights_only=True + DenseNet"
    marker.unlink()

    with pytest.raises(UserError, match="crafted.pt"):
        ours.safe_state_dict(crafted)
    assert not marker.exists()
    with pytest.raises(UserError):
        ours.XrvPathology(WEIGHTS, crafted)
    assert not marker.exists()
    # What the file named was recorded, never called.
    obj = restricted_load(crafted)
    assert isinstance(obj, Placeholder) and obj.qualified == "torchxrayvision.models.DenseNet"
    assert obj.args[-1] == str(attacker)


@pytest.mark.parametrize("form", ["zip", "legacy", "plain_pickle"])
@pytest.mark.parametrize("payload", ["os.system", "exec"])
def test_reduce_pickles_run_nothing(tmp_path, form, payload):
    marker = tmp_path / "marker"
    evil = _System(f"touch {marker}") if payload == "os.system" else _Exec(_touch_code(marker))
    path = tmp_path / "weights.pt"
    # Nested inside a state dict, as a hostile file would hide it.
    obj = {"state_dict": {"w": torch.zeros(2)}, "extra": evil}
    if form == "plain_pickle":
        path.write_bytes(pickle.dumps(obj))
    else:
        torch.save(obj, path, _use_new_zipfile_serialization=form == "zip")
    try:
        ours.safe_state_dict(path)
    except UserError:
        pass  # a plain pickle is no torch file: refused, with its name
    assert not marker.exists()


def test_torchscript_is_not_read_as_weights(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))
    with pytest.raises(UserError, match="TorchScript"):
        ours.safe_state_dict(path)


def _densenet(seed=1):
    torch.manual_seed(seed)
    model = xrv.models.DenseNet(weights=None, num_classes=18)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("zip_format", [True, False])
def test_real_xrv_layout_loads_to_xrvs_outputs(tmp_path, monkeypatch, zip_format):
    """A whole pickled DenseNet at the path xrv reads (zip and the legacy format of older torch):
    our model equals xrv's own DenseNet(weights=...) on the same file."""
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = tmp_path / ".torchxrayvision" / "models_data"
    folder.mkdir(parents=True)
    torch.save(_densenet(), folder / FILE, _use_new_zipfile_serialization=zip_format)
    adapter = ours.XrvPathology(WEIGHTS)
    direct = xrv.models.DenseNet(weights=WEIGHTS).eval()
    x = torch.rand(2, 1, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = direct(ours.xrv_to_range(x))
    ours_sd, xrv_sd = adapter.model.state_dict(), direct.state_dict()
    assert set(ours_sd) == set(xrv_sd)
    for k in xrv_sd:
        assert torch.equal(ours_sd[k], xrv_sd[k]), k
    with torch.no_grad():  # same batch, same weights: the same bytes
        assert torch.equal(adapter.model(ours.xrv_to_range(x)), want)
    # Through the adapter (fixed chunks of 8: kernels differ in the last bits from a batch of 2).
    torch.testing.assert_close(adapter.predict(x).probs, want[:, adapter.columns], rtol=0, atol=1e-4)
    digest = hashlib.sha256((folder / FILE).read_bytes()).hexdigest()
    assert adapter.weight_files == {str(folder / FILE): digest}


def test_torchscript_loads_only_from_its_path_with_its_hash(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    real = tmp_path / "elsewhere.pt"
    torch.jit.script(torch.nn.Linear(3, 1)).save(str(real))
    (folder / ours.AGE_FILE).symlink_to(real)
    with pytest.raises(UserError, match="regular file"):
        ours.load_torchscript(folder, ours.AGE_FILE)
    (folder / ours.AGE_FILE).unlink()
    (folder / ours.AGE_FILE).write_bytes(real.read_bytes())
    model, digest = ours.load_torchscript(folder, ours.AGE_FILE)
    assert digest == hashlib.sha256(real.read_bytes()).hexdigest()
    x = torch.rand(2, 3)
    torch.testing.assert_close(model(x), torch.jit.load(str(real))(x))


class _HookedTensor:
    """A tensor whose pickled state sets a backward hook that would run code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        t = torch.zeros(2, requires_grad=False)
        hooks = {0: _Exec(_touch_code(self.marker))}
        return torch._utils._rebuild_tensor_v2, (t.untyped_storage(), 0, (2,), (1,), True, hooks)


def test_tensor_hooks_from_the_file_are_dropped(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "hooked.pt"
    torch.save({"w": _HookedTensor(marker)}, path)
    state = ours.safe_state_dict(path)
    w = state["w"]
    assert not w.requires_grad and not getattr(w, "_backward_hooks", None)
    assert torch.equal(w, torch.zeros(2)) and not marker.exists()
