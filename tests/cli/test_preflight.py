"""`ix2x validate` checks every file `ix2x run` will load, at the paths the libraries read, without
loading any. References: torchxrayvision's own cache folder and URLs, torch.hub's folder and
torchvision's weight URL, huggingface_hub's cache lookup, diffusers/transformers loading the stand-ins."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from samples_for_tests import tiny_samples, write_mimic_dir

REPO = Path(__file__).resolve().parents[2]
HUB_ID = "timbrooks/instruct-pix2pix"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from ix2x.diffusion.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TORCH_HOME", "XDG_CACHE"))}
    return {**env, "HOME": str(home), "TORCH_HOME": str(home / "torch"), "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(REPO)}


def _validate(args, home, cwd):
    return subprocess.run([sys.executable, "-m", "ix2x", "validate", *args], capture_output=True, text=True,
                          env=_env(home), cwd=cwd)


def _xrv_files(home: Path) -> list[Path]:
    """Every file torchxrayvision reads for the mimic suite's classifiers, from xrv's own code."""
    import torchxrayvision as xrv

    cache = Path(xrv.utils.get_cache_dir().replace(os.path.expanduser("~"), str(home), 1))
    files = [cache / os.path.basename(xrv.models.model_urls[w]["weights_url"])
             for w in ("densenet121-res224-all", "densenet121-res224-chex")]
    base = Path(xrv.__file__).parent / "baseline_models"
    for sub in ("emory_hiti", "mira", "riken"):
        source = (base / sub / "__init__.py").read_text()
        files += [cache / f for f in re.findall(r"releases/download/v1/([\w.-]+\.(?:pt|ckpt))", source)]
    return files


def _lpips_file(home: Path) -> Path:
    import torchvision

    url = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url
    return home / "torch" / "hub" / "checkpoints" / os.path.basename(url)  # torch.hub.get_dir() with TORCH_HOME


def _cache_hub_model(home: Path, model: Path) -> Path:
    """The tiny model placed in the Hugging Face cache layout under $HOME, as `huggingface-cli download` leaves it."""
    repo = home / ".cache" / "huggingface" / "hub" / f"models--{HUB_ID.replace('/', '--')}"
    commit = "0" * 40
    shutil.copytree(model, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return repo


@pytest.fixture
def data(tmp_path):
    return write_mimic_dir(tmp_path / "data", tiny_samples(3, size=32))  # 32 px: validate's minimum


def test_empty_home_names_every_missing_file_and_cuda(tmp_path, data):
    home = tmp_path / "home"
    home.mkdir()
    out = _validate(["--suite", "mimic", "--data", str(data)], home, tmp_path)
    assert out.returncode == 1, out.stderr
    text = out.stdout
    assert "models/diffusers/InstructX2X does not exist" in text and "--editor-arg instructx2x.model=DIR" in text
    assert f"hub model '{HUB_ID}' is not in the local Hugging Face cache" in text
    assert "huggingface-cli download timbrooks/instruct-pix2pix" in text
    files = _xrv_files(home)
    assert len(files) == 5  # two DenseNets, race, sex, age
    for f in files:
        assert str(f) in text, f
        assert f"-O {f}" in text  # the fetch command puts it where xrv reads it
    assert str(_lpips_file(home)) in text
    import torch

    if not torch.cuda.is_available():
        assert "device `cuda`: CUDA is not available" in text
    # a file two metrics need is one line
    problems = [line for line in text.splitlines() if line.startswith("PROBLEM:")]
    assert len([p for p in problems if str(files[0]) in p]) == 1


def test_stand_ins_in_the_real_layouts_pass(tmp_path, data, tiny_model, monkeypatch, capsys):
    home = tmp_path / "home"
    for f in _xrv_files(home) + [_lpips_file(home)]:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"stand-in")  # validate checks presence; loading them is the loaders' test
    _cache_hub_model(home, tiny_model)
    shutil.copytree(tiny_model, tmp_path / "models" / "diffusers" / "InstructX2X")
    import torch

    from ix2x.cli.main import main
    from ix2x.diffusion import checks

    # In-process (a subprocess costs seconds of imports): the paths are read at call time.
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setattr(checks, "hub_cache_dir", lambda: home / ".cache" / "huggingface" / "hub")
    monkeypatch.chdir(tmp_path)
    device = [] if torch.cuda.is_available() else ["--device", "cpu"]
    rc = main(["validate", "--suite", "mimic", "--data", str(data), "--json", *device])
    report = json.loads(capsys.readouterr().out)
    assert report["problems"] == [] and report["ok"] is True and rc == 0
    assert report["editors"] == ["identity", "instructx2x", "instructpix2pix"]


def test_xrv_urls_read_from_source_equal_the_imported_table():
    import torchxrayvision as xrv

    from ix2x.classifiers.xrv import weights_urls

    assert weights_urls() == {k: v["weights_url"] for k, v in xrv.models.model_urls.items()}


def test_hub_cache_stand_in_is_what_huggingface_hub_finds(tmp_path, tiny_model, monkeypatch):
    from huggingface_hub import snapshot_download

    from ix2x.diffusion import checks

    home = tmp_path / "home"
    repo = _cache_hub_model(home, tiny_model)
    monkeypatch.setattr(checks, "hub_cache_dir", lambda: repo.parent)
    reference = Path(snapshot_download(HUB_ID, local_files_only=True, cache_dir=repo.parent))
    assert checks.hub_snapshot(HUB_ID) == reference
    assert checks.hub_problems(HUB_ID) == []
    (reference / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    (problem,) = checks.hub_problems(HUB_ID)
    assert "vae missing" in problem and "huggingface-cli download" in problem


@pytest.mark.parametrize("remove, expect", [
    ("unet/diffusion_pytorch_model.safetensors", "unet missing"),
    ("text_encoder/config.json", "text_encoder missing"),
    ("scheduler/scheduler_config.json", "scheduler missing"),
    ("tokenizer/tokenizer.json", "tokenizer missing"),
])
def test_each_missing_component_is_named(tmp_path, tiny_model, remove, expect):
    from ix2x.diffusion.checks import model_problems

    folder = shutil.copytree(tiny_model, tmp_path / "m")
    assert model_problems(str(folder)) == []
    (folder / remove).unlink()
    (problem,) = model_problems(str(folder))
    assert expect in problem and str(folder) in problem


def test_tokenizer_size_matches_transformers_and_placeholder_is_refused(tmp_path, tiny_model):
    from transformers import CLIPTokenizer

    from ix2x.diffusion.checks import model_problems, tokenizer_size

    assert tokenizer_size(tiny_model / "tokenizer") == len(CLIPTokenizer.from_pretrained(tiny_model / "tokenizer"))
    folder = shutil.copytree(tiny_model, tmp_path / "m")
    shutil.rmtree(folder / "tokenizer")
    (folder / "tokenizer").mkdir()
    (folder / "tokenizer" / "vocab.json").write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1}))
    (folder / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    assert len(CLIPTokenizer.from_pretrained(folder / "tokenizer")) == 2
    (problem,) = model_problems(str(folder))
    assert "tokenizer has 2 tokens" in problem


def test_not_an_instructpix2pix_unet(tmp_path, tiny_model):
    from ix2x.diffusion.checks import model_problems

    folder = shutil.copytree(tiny_model, tmp_path / "m")
    config = json.loads((folder / "unet/config.json").read_text())
    (folder / "unet/config.json").write_text(json.dumps({**config, "in_channels": 4}))
    (problem,) = model_problems(str(folder))
    assert "not an InstructPix2Pix model" in problem and "4 input channels, expected 8" in problem


def test_shipped_suites_with_text_to_image_editors_pass_the_check(tmp_path):
    """Bug: the pre-import check took every built-in editor's `model` for an InstructPix2Pix folder, so the
    shipped phantom_baselines suite (roentgen, diffedit, radedit on a text-to-image folder) could not start.
    Those editors' own hooks check their folders; an InstructPix2Pix folder given to roentgen is still refused."""
    from ix2x.errors import MissingWeightsError
    from ix2x.preflight import check_specs
    from ix2x.suite import load_suite, suite_from_dict

    check_specs(load_suite(REPO / "benchmarks/suites/phantom_baselines.yaml"))  # raised MissingWeightsError before the fix
    r = _validate(["--suite", "phantom_baselines"], tmp_path, REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    wrong = suite_from_dict({"name": "w", "editors": [{"name": "roentgen", "args": {"model": "builtin:phantom_ix2x"}}]})
    check_specs(wrong)  # not a pix2pix editor: no pix2pix check before import...
    r = _validate(["--suite", "phantom_smoke", "--editors", "roentgen", "--editor-arg",
                   "roentgen.model=builtin:phantom_ix2x"], tmp_path, REPO)
    assert r.returncode == 1 and "roentgen" in r.stdout + r.stderr  # ...its hook refuses the folder
    with pytest.raises(MissingWeightsError, match="not an InstructPix2Pix"):
        check_specs(suite_from_dict({"name": "w", "editors": [
            {"name": "instructx2x", "args": {"model": "builtin:phantom_t2i"}}]}))


def test_memory_problem_when_the_model_does_not_fit(tiny_model, monkeypatch):
    from ix2x.diffusion import checks
    from ix2x.diffusion.memory import estimate_for_folder

    need = estimate_for_folder(tiny_model, 1, "float16", 512).total
    monkeypatch.setattr(checks, "free_cuda_bytes", lambda device: need - 1)
    (problem,) = checks.memory_problems(tiny_model, "cuda", "float16", what="editor `x`")
    assert "GiB free" in problem and "editor `x`" in problem
    monkeypatch.setattr(checks, "free_cuda_bytes", lambda device: need)
    assert checks.memory_problems(tiny_model, "cuda", "float16", what="editor `x`") == []
    assert checks.memory_problems(tiny_model, "cpu", "float32", what="editor `x`") == []


def test_lpips_random_backbone_needs_no_file(tmp_path, monkeypatch):
    from ix2x.metrics.lpips import Lpips

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert "backbone not found" in Lpips().problems()[0]
    assert Lpips(Lpips.Config(random_backbone=True)).problems() == []


def test_prompt_dataset_needs_the_report_column_before_anything_loads(data):
    """Without the check every batch failed after the model loaded, and the run ended with every record failed."""
    from ix2x.errors import UserError
    from ix2x.preflight import check_specs
    from ix2x.suite import suite_from_dict

    def suite(prompt):
        return suite_from_dict({"name": "r", "data": {"source": "dir", "path": str(data)},
                                "editors": [{"name": "roentgen", "args": {"prompt": prompt}}]})

    with pytest.raises(UserError, match=r"`roentgen` take\(s\) `prompt: dataset`.*no `target_report` column"):
        check_specs(suite("dataset"), models=False)
    check_specs(suite("report"), models=False)
    csv_file = data / "instructions.csv"
    lines = csv_file.read_text().splitlines()
    csv_file.write_text("\n".join([lines[0] + ",target_report"] + [l + ",Edema." for l in lines[1:]]) + "\n")
    check_specs(suite("dataset"), models=False)


def test_preflight_only_orchestrates_components_own_their_files():
    """Which files a classifier, a metric or an editor reads is the component's to say (its
    `problems` hook); preflight collects, and no component calls back into it."""
    import ast

    source = (REPO / "ix2x/preflight.py").read_text().lower()
    for knowledge in ("xrv", "torchxrayvision", "lpips", "inception", "backbone", "pix2pix", "url"):
        assert knowledge not in source, knowledge
    for folder in ("metrics", "editors", "ix2x/classifiers", "ix2x/diffusion"):
        for path in (REPO / folder).rglob("*.py"):
            imported = {n.module for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom)}
            assert "ix2x.preflight" not in imported, path


def test_a_plugin_classifier_names_its_own_missing_files(monkeypatch):
    from ix2x import classifiers, registry

    class Plugin:
        @staticmethod
        def from_spec(arg, device="cpu"):
            raise AssertionError("nothing is loaded to find problems")

        @staticmethod
        def problems(arg):
            return [f"plugin weights not found: /nowhere/{arg}.pt"]

    monkeypatch.setitem(registry._IN_PROCESS["classifier"], "plug", Plugin)
    assert classifiers.problems("plug:w+phantom") == ["plugin weights not found: /nowhere/w.pt"]
