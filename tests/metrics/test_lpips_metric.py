"""Our LPIPS equals the lpips package's on the same backbone; the metric's keys and NaN reasons."""

import math

import pytest
import torch

lpips_pkg = pytest.importorskip("lpips")

from ix2x.classifiers import lpips_net  # noqa: E402
from ix2x.metrics.functional.lpips import lpips_distance  # noqa: E402
from ix2x.errors import MissingWeightsError  # noqa: E402
from ix2x.types import EditResult, Sample  # noqa: E402
from ix2x.metrics.lpips import Lpips  # noqa: E402


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    yield tmp_path / "torch"


def _place_random_alexnet(torch_home):
    import torchvision

    torch.manual_seed(0)
    file = lpips_net.backbone_file("alex")
    assert str(file).startswith(str(torch_home))  # honours $TORCH_HOME
    file.parent.mkdir(parents=True)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), file)


def _pair(n=2, size=64):
    g = torch.Generator().manual_seed(1)
    a = torch.rand(n, 1, size, size, generator=g)
    return a, (a + 0.2 * torch.rand(n, 1, size, size, generator=g)).clamp(0, 1)


def test_ours_equals_lpips_package_on_the_same_backbone_file(torch_home):
    _place_random_alexnet(torch_home)
    a, b = _pair()
    ours = lpips_distance(lpips_net.get_lpips("alex"), a, b)
    theirs = lpips_pkg.LPIPS(net="alex", verbose=False).eval()  # torchvision reads the same cache file
    with torch.no_grad():
        expected = theirs(a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1), normalize=True).reshape(-1)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-7)
    spatial = lpips_distance(lpips_net.get_lpips("alex"), a, b, spatial=True)
    assert spatial.shape == (2, 1, 64, 64) and torch.all(spatial >= 0)


def test_random_backbone_matches_pnet_rand_and_identical_images_score_zero(torch_home):
    model = lpips_net.get_lpips("alex", random_backbone=True)
    theirs = lpips_pkg.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    theirs.load_state_dict(model.state_dict())
    a, b = _pair()
    with torch.no_grad():
        expected = theirs(a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1), normalize=True).reshape(-1)
    torch.testing.assert_close(lpips_distance(model, a, b), expected)
    assert torch.all(lpips_distance(model, a, a) == 0)


def test_missing_backbone_names_file_and_command(torch_home):
    with pytest.raises(MissingWeightsError) as e:
        lpips_net.get_lpips("alex")
    assert "alexnet-owt-7be5be79.pth" in str(e.value) and "wget https://download.pytorch.org" in str(e.value)


def test_metric_input_and_target(torch_home):
    img = torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(2))
    edited = (img * 0.5).clamp(0, 1)
    with_target = Sample("a", img, "Add the finding of edema.", target=edited, target_aligned=True)
    real = Sample("b", img, "Add the finding of edema.", target=edited, target_aligned=False)
    m = Lpips(Lpips.Config(random_backbone=True))
    v1, v2 = m.compute([with_target, real], [EditResult(image=edited), EditResult(image=edited)])
    assert v1["lpips_input"] > 0 and v1["lpips_target"] == 0
    assert math.isnan(v2["lpips_target"]) and "not pixel-aligned" in v2["nan_reason"]


def test_random_backbone_is_the_same_in_every_process():
    """Regression: the random AlexNet was drawn from the global RNG, so two runs of one suite gave
    different LPIPS values."""
    import subprocess
    import sys

    code = ("import torch; torch.manual_seed({s}); from ix2x.classifiers.lpips_net import get_lpips; "
            "m = get_lpips('alex', random_backbone=True); print(float(sum(p.sum() for p in m.net.parameters())))")
    outs = {subprocess.run([sys.executable, "-c", code.format(s=s)], capture_output=True, text=True,
                           check=True).stdout.strip() for s in (1, 2)}
    assert len(outs) == 1
