"""Our torchxrayvision adapters give exactly what torchxrayvision gives when called directly.

Random-weight models are saved under the real release file names in xrv's cache under a temporary
$HOME, so that both xrv's loaders and ours run on the same files.
"""

import os

import pytest
import torch

xrv = pytest.importorskip("torchxrayvision")

from ix2x.classifiers import check_spec, clear_cache, get_classifier  # noqa: E402
from ix2x.classifiers import xrv as ours  # noqa: E402
from ix2x.errors import MissingWeightsError, UserError  # noqa: E402


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    clear_cache()
    folder = tmp_path / ".torchxrayvision" / "models_data"
    folder.mkdir(parents=True)
    yield folder
    clear_cache()


def _images(n=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size + 6, generator=g)  # not square: the adapter centre-crops


def _save_densenet(folder, weights):
    torch.manual_seed(1)
    model = xrv.models.DenseNet(weights=None, num_classes=18)
    # Random BN statistics and a biased classifier so that outputs spread around the thresholds.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
    torch.save(model, folder / os.path.basename(xrv.models.model_urls[weights]["weights_url"]))


@pytest.mark.parametrize("weights", ["densenet121-res224-all", "densenet121-res224-nih"])
def test_pathology_adapter_equals_xrv(home, weights):
    _save_densenet(home, weights)
    adapter = get_classifier(f"xrv:{weights}")
    x = _images()
    got = adapter.predict(x)
    direct_model = xrv.models.DenseNet(weights=weights)  # reads the same cache file
    # torchxrayvision's documented input pipeline, called directly: normalize, XRayCenterCrop, XRayResizer
    crop, resize = xrv.datasets.XRayCenterCrop(), xrv.datasets.XRayResizer(224)
    documented = torch.stack([torch.from_numpy(resize(crop(xrv.datasets.normalize(img.numpy(), 1.0))))
                              for img in x])
    with torch.no_grad():
        direct = direct_model(documented)
    labels = xrv.models.model_urls[weights]["labels"]
    kept = [i for i, n in enumerate(labels) if n]
    assert got.findings == tuple(labels[i] for i in kept)
    torch.testing.assert_close(got.probs, direct[:, kept], rtol=0, atol=1e-5)
    if weights.endswith("nih"):  # unsupported slots: xrv answers 0.5, we drop them
        assert len(kept) == 14 and torch.all(direct[:, 14:] == 0.5)
    from ix2x.classifiers.scoring import Scoring

    state = Scoring()
    assert state.classifier(f"xrv:{weights}") is state.classifier(f"xrv:{weights}")  # built once per run


def test_explicit_path_and_pt_spec(home, tmp_path):
    _save_densenet(home, "densenet121-res224-all")
    src = next(home.iterdir())
    moved = tmp_path / "elsewhere.pt"
    src.rename(moved)
    a = get_classifier(f"xrv:densenet121-res224-all={moved}").predict(_images(1))
    b = get_classifier(str(moved)).predict(_images(1))
    torch.testing.assert_close(a.probs, b.probs)


def test_missing_weights_names_file_place_and_command(home):
    with pytest.raises(MissingWeightsError) as e:
        get_classifier("xrv:densenet121-res224-all")
    msg = str(e.value)
    assert str(home) in msg and "nih-pc-chex-mimic_ch-google-openi-kaggle" in msg and "wget https://" in msg
    with pytest.raises(MissingWeightsError, match="RIKEN|race|sex"):
        get_classifier("xrv:demographics")


def test_foreign_pickles_are_refused(tmp_path):
    import datetime

    path = tmp_path / "foreign.pt"
    torch.save({"when": datetime.date(2020, 1, 1)}, path)  # any class outside torch.nn / xrv
    with pytest.raises(UserError, match="refusing"):
        ours.safe_state_dict(path)


def test_spec_forms_are_checked_without_loading():
    for ok in ("phantom", "a.safetensors", "b.pt", "xrv:densenet121-res224-nih=/x.pt",
               "xrv:densenet121-res224-all+xrv:demographics"):
        check_spec(ok)
    for bad in ("", "xrv:resnet50-res512-all", "model.bin"):
        with pytest.raises(UserError):
            check_spec(bad)


class _TinyAge(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.mean(dim=(2, 3))) * 10 + 50


def test_demographic_adapters_equal_xrv(home):
    import torchvision

    torch.manual_seed(2)
    race = torchvision.models.resnet34(weights=None)
    race.fc = torch.nn.Sequential(torch.nn.Linear(512, 3), torch.nn.LogSoftmax(dim=1))
    torch.save(torch.nn.DataParallel(race).state_dict(), home / ours.RACE_FILE)
    sex = xrv.baseline_models.mira.SexModel(weights=False)
    torch.save({"state_dict": {f"model.{k}": v for k, v in sex.model.state_dict().items()}, "epoch": 13},
               home / ours.SEX_FILE)
    torch.jit.script(_TinyAge()).save(str(home / ours.AGE_FILE))

    x = torch.rand(1, 1, 80, 80, generator=torch.Generator().manual_seed(3))
    got = get_classifier("xrv:demographics").predict(x)
    xr = ours.xrv_to_range(x)
    with torch.no_grad():
        race_direct = xrv.baseline_models.emory_hiti.RaceModel()(xr).exp()
        sex_direct = xrv.baseline_models.mira.SexModel()(xr).softmax(dim=1)[:, 1]
        age_direct = xrv.baseline_models.riken.AgeModel()(xr).reshape(-1)
    assert got.group_names == ("Asian", "Black", "White") and got.group_kind == "race"
    torch.testing.assert_close(got.group, race_direct, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.sex, sex_direct, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.age, age_direct, rtol=1e-4, atol=1e-4)
