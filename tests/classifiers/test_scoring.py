"""Per-run scoring state: classifiers found through the `ix2x.classifiers` entry points and built
once per run, caches that belong to a run (not to the process), evaluation sizes, old-style plugins."""

import json
import math
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from ix2x import registry
from ix2x.classifiers import Outputs, build_classifier, check_spec
from ix2x.classifiers.base import Classifier
from ix2x.classifiers.scoring import Scoring, eval_shape
from ix2x.errors import UserError
from ix2x.types import EditResult, Metric, Sample


class _Spy(Classifier):
    """Counts the images it is asked about and records their shapes."""

    findings = ("Effusion",)

    def __init__(self, input_size=None):
        super().__init__("spy")
        self.input_size = input_size
        self.seen = []

    def _predict(self, images):
        self.seen.append(tuple(images.shape))
        return Outputs(findings=self.findings, probs=images.mean(dim=(1, 2, 3))[:, None])


def test_builtin_classifiers_come_from_the_entry_point_group():
    names = registry.names("classifier")
    assert {"phantom", "xrv"} <= set(names)
    assert registry.GROUPS["classifier"] == "ix2x.classifiers"
    with pytest.raises(UserError, match="Installed classifiers: .*phantom"):
        check_spec("nosuch:thing")


def test_a_plugin_classifier_installed_as_an_entry_point(tmp_path, monkeypatch):
    """A throwaway distribution on sys.path declares `ix2x.classifiers: spyplug`; a metric names it."""
    (tmp_path / "spyplug_mod.py").write_text(textwrap.dedent('''
        import torch
        from ix2x.classifiers import Outputs
        from ix2x.classifiers.base import Classifier

        class Plug(Classifier):
            findings = ("Effusion", "Edema")
            built = []

            @classmethod
            def check_arg(cls, arg):
                if arg not in (None, "a", "b"):
                    from ix2x.errors import UserError
                    raise UserError(f"spyplug: arg must be a or b, got {arg!r}")

            @classmethod
            def from_spec(cls, arg, device="cpu"):
                cls.built.append(arg)
                return cls("spyplug", device)

            def _predict(self, images):
                m = images.mean(dim=(1, 2, 3))
                return Outputs(findings=self.findings, probs=torch.stack([m, 1 - m], 1))
    '''))
    dist = tmp_path / "spyplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: spyplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ix2x.classifiers]\nspyplug = spyplug_mod:Plug\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    check_spec("spyplug:a")
    with pytest.raises(UserError, match="must be a or b"):
        check_spec("spyplug:c")
    from ix2x.metrics.classifier_shift import ClassifierShift

    metric = ClassifierShift(ClassifierShift.Config(classifier="spyplug:b"))
    metric.scoring = state = Scoring()
    s = Sample("x", torch.full((1, 16, 16), 0.25), "Add the finding of left pleural effusion.")
    for _ in range(2):
        [v] = metric.compute([s], [EditResult(image=torch.full((1, 16, 16), 0.75))])
    assert v["effect"] == pytest.approx(0.5)
    plug = sys.modules["spyplug_mod"].Plug
    assert plug.built == ["b"]  # built once per run, whatever the number of batches
    assert state.classifier("spyplug:b") is state.classifier("spyplug:b")


def test_runs_share_no_state():
    """Two runs' scoring states: one's predictions are not served to the other (before, one
    process-wide cache served every run)."""
    spy = _Spy()
    images = [torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    a, b = Scoring(classifiers={"spy": spy}), Scoring(classifiers={"spy": spy})
    a.predict(spy, images)
    a.predict(spy, images)
    assert sum(s[0] for s in spy.seen) == 8  # one fixed chunk: cached the second time
    b.predict(spy, images)
    assert len(spy.seen) == 2


def test_classifiers_see_their_own_input_size_resized_from_the_original():
    from ix2x.classifiers.base import square_resize

    spy = _Spy(input_size=32)
    big = torch.rand(1, 300, 260, generator=torch.Generator().manual_seed(0))
    out = Scoring(eval_size=64).predict(spy, [big])
    assert spy.seen == [(8, 1, 32, 32)]
    # torchvision's antialiased bilinear resize of the centre crop is the reference.
    crop = TF.center_crop(big, [260, 260])
    want = TF.resize(crop, [32, 32], antialias=True).mean()
    assert out.probs[0, 0] == pytest.approx(float(want), abs=1e-6)
    assert torch.equal(square_resize(big[None], 32)[0].mean(), out.probs[0, 0])


def _big_sample(size=240, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = F.avg_pool2d(torch.rand(1, 1, size, size + 40, generator=g), 9, 1, 4, count_include_pad=False)[0]
    region = torch.zeros_like(x)
    region[:, 60:150, 70:200] = 1
    target = torch.where(region > 0, (x + 0.3).clamp(0, 1), x)
    return Sample("big", x, "Add the finding of left pleural effusion.", target=target, target_aligned=True,
                  region=region)


def test_pixel_metrics_see_the_evaluation_size():
    """out_of_mask_change and gt_fidelity at eval_size 64 equal the same metrics at native size on
    images resized by torchvision (antialiased bilinear; masks: any source pixel)."""
    from ix2x.metrics.gt_fidelity import GtFidelity
    from ix2x.metrics.out_of_mask_change import OutOfMaskChange

    s = _big_sample()
    edit = EditResult(image=(0.9 * s.target + 0.1 * s.image.flip(-1)).clamp(0, 1), edit_mask=s.region)
    assert eval_shape(240, 280, 64) == (55, 64)

    def small(t, mask=False):
        r = TF.resize(t.float() if not mask else (t >= 0.5).float(), [55, 64], antialias=True)
        return (r > 0).float() if mask else r.clamp(0, 1)

    s_small = Sample("big", small(s.image), s.instruction, target=small(s.target), target_aligned=True,
                     region=small(s.region, mask=True))
    e_small = EditResult(image=small(edit.image), edit_mask=small(s.region, True))
    for cls, cfg in ((OutOfMaskChange, OutOfMaskChange.Config(lpips_random_backbone=True)),
                     (GtFidelity, GtFidelity.Config(lpips_random_backbone=True))):
        at_eval = cls(cfg)
        at_eval.scoring = Scoring(eval_size=64)
        native = cls(cfg)
        native.scoring = Scoring(eval_size=None)
        [a] = at_eval.compute([s], [edit])
        [b] = native.compute([s_small], [e_small])
        for k in a:
            if isinstance(a[k], float):
                assert a[k] == pytest.approx(b[k], abs=1e-6, nan_ok=True), (cls.__name__, k)
        [full] = native.compute([s], [edit])
        assert full["mae"] != pytest.approx(a["mae"], abs=1e-6)  # the size does change the values


def test_oracle_still_scores_perfectly_at_the_evaluation_size():
    from ix2x.metrics.out_of_mask_change import OutOfMaskChange

    s = _big_sample()
    oracle = EditResult(image=s.target.clone(), edit_mask=s.region.clone())
    m = OutOfMaskChange(OutOfMaskChange.Config(lpips_net=None))
    m.scoring = Scoring(eval_size=64)
    [v] = m.compute([s], [oracle])
    assert v["mae"] == 0 and v["ssim"] == 1


def test_suite_records_its_evaluation_size():
    from ix2x.errors import ConfigError
    from ix2x.suite import suite_from_dict

    assert suite_from_dict({"name": "t"}).eval_size == 512
    assert suite_from_dict({"name": "t", "eval_size": None}).as_dict()["eval_size"] is None
    with pytest.raises(ConfigError, match="eval_size"):
        suite_from_dict({"name": "t", "eval_size": 4})


def test_the_run_records_weights_and_evaluation_size(tmp_path):
    from ix2x.benchmarks import runner
    from ix2x import records
    from ix2x.classifiers.base import sha256_of
    from ix2x.classifiers.phantom import DEFAULT_WEIGHTS
    from ix2x.suite import suite_from_dict
    raw = {"name": "weights_t", "editors": [{"name": "identity"}], "metrics": [{"name": "classifier_shift"}],
           "batch_size": 2, "eval_size": 96}
    run_dir = runner.start_run(suite_from_dict(raw), tmp_path)
    samples = [_big_sample(size=64, seed=i) for i in range(2)]
    samples = [Sample(f"s{i}", x.image, x.instruction, region=x.region) for i, x in enumerate(samples)]
    assert runner.execute(run_dir, samples, progress=False).ok
    meta = json.loads((run_dir / records.RUN_FILE).read_text())
    assert meta["weights"] == {str(DEFAULT_WEIGHTS): sha256_of(DEFAULT_WEIGHTS)}
    assert meta["suite"]["eval_size"] == 96


class _OldStyle(Metric):
    """A metric plugin written before scoring state existed: it asks for a classifier by spec and
    predicts through the shared helper, with the old two-argument calls."""

    higher_is_better = {"p": True}

    def compute(self, samples, results):
        from ix2x.classifiers import get_classifier
        from ix2x.metrics._shared import predict_images

        clf = get_classifier("phantom", self.device)
        out = predict_images(clf, [r.image for r in results])
        return [{"p": float(out.probs[i].mean())} for i in range(len(results))]


def test_old_style_metric_plugins_still_work():
    s = _big_sample(size=64)
    [v] = _OldStyle().compute([s], [EditResult(image=s.image)])
    direct = build_classifier("phantom").predict(s.image[None]).probs.mean()
    assert v["p"] == pytest.approx(float(direct), abs=1e-6) and math.isfinite(v["p"])


def test_a_metric_outside_a_run_gets_its_own_state():
    from ix2x.metrics._shared import scoring
    from ix2x.metrics.lpips import Lpips

    a, b = Lpips(Lpips.Config(random_backbone=True)), Lpips(Lpips.Config(random_backbone=True))
    assert scoring(a) is scoring(a) and scoring(a) is not scoring(b)
    assert scoring(a).eval_size is None  # outside a run: native size, as before


def test_ls_lists_classifiers(capsys):
    from ix2x.cli.main import main

    assert main(["ls", "classifiers"]) == 0
    out = capsys.readouterr().out
    assert "phantom" in out and "ix2x.classifiers.xrv:Xrv" in out
