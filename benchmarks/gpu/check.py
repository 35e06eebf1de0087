"""``make gpu-check``: one command that measures the full-size path on a CUDA GPU.

    python -m ix2x.benchmarks.gpu.check --out results/gpu_check      # what `make gpu-check` runs
    python -m ix2x.benchmarks.gpu.check --tiny --out /tmp/dry        # DRY RUN: tiny model, CPU, numbers mean nothing

Writes ``OUT/gpu_check.json`` (schema in docs/performance.md) after every part, so a run
stopped at its time limit keeps what it measured, and ``OUT/gpu_check.md``, a short table. Parts, in
order, each skipped with a reason once ``--budget-s`` is spent (one failing part is recorded with its
error and the others still run):

1. ``cuda_tests``: ``pytest -m cuda`` (tests/fullsize/test_cuda.py).
2. ``matmul_peak``: an 8192^3 bf16 matrix product, the card's reachable peak next to its data-sheet one.
3. ``flops``: UNet FLOPs per edit, counted with ``torch.utils.flop_counter.FlopCounterMode``.
4. ``loop``: the full-size RSE edit at batch 1, 4, 8, 16 in fp16 and bf16, eager and channels-last
   (``compile`` below adds ``torch.compile``, compile time apart): seconds per edit, images/s, achieved UNet
   TFLOP/s and its fraction of the bf16 peak, peak CUDA memory against :mod:`ix2x.diffusion.memory`.
5. ``ratios``: RSE / plain and ours / diffusers' ``StableDiffusionInstructPix2PixPipeline``, interleaved.
6. ``compile``: channels-last + ``torch.compile`` at ``--compile-batches`` (default 8), bf16 then fp16.
7. ``torchrun``: ``ix2x run`` under ``torchrun --nproc_per_node=2`` equals one process.
8. ``train``: two training steps of the full-size config under ``accelerate launch``, and the same two
   steps as one step, then ``--resume`` for the second.

Without CUDA (and without ``--tiny``) it prints that nothing was measured and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

SCHEMA = 1
REPO = Path(__file__).resolve().parents[2]
PROMPT = "Add the finding of left pleural effusion."
PARTS = ("cuda_tests", "matmul_peak", "flops", "loop", "ratios", "compile", "torchrun", "train")
# Seconds a part needs at full size (a guess before the first GPU run): it is skipped, with the
# reason in the JSON, when less of the budget is left. The loop parts check before every setting.
MIN_S = {"cuda_tests": 30, "matmul_peak": 5, "flops": 45, "loop": 20, "ratios": 45, "torchrun": 60,
         "train": 150, "compile": 60}
# Dense bf16 tensor-core peaks from the vendors' data sheets (TFLOP/s, no sparsity).
BF16_PEAK_TFLOPS = {"H200": 989.4, "H100 SXM": 989.4, "H100 80GB HBM3": 989.4, "H100 PCIe": 756.5,
                    "H100 NVL": 835.5, "A100": 312.0, "L40S": 362.1, "L4": 121.0, "A10": 125.0}
NO_CUDA = ("gpu-check: no CUDA device here (torch {torch}, torch.cuda.is_available() is False): nothing was "
           "measured. Run `make gpu-check` on a machine with an NVIDIA GPU (docs/performance.md); "
           "`python -m ix2x.benchmarks.gpu.check --tiny` runs every measurement at tiny size on the CPU.")


class Check:
    """The run's settings, the model folders it built, and its JSON result."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.args = args
        self.tiny = args.tiny
        self.device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.deadline = time.monotonic() + args.budget_s
        self.res = 64 if self.tiny else 512
        self.steps = args.steps
        self.batches = [1, 2] if self.tiny else args.batches
        self.dtypes = ["float32", "bfloat16"] if self.device == "cpu" else ["float16", "bfloat16"]
        self.result: dict[str, Any] = {
            "schema": SCHEMA, "tiny": self.tiny, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "device": device_info(self.device), "settings": {
                "steps": self.steps, "resolution": self.res, "batches": self.batches, "dtypes": self.dtypes,
                "budget_s": args.budget_s, "rounds": args.rounds},
            "parts": {}}
        self._model_dir: Path | None = None

    @property
    def left_s(self) -> float:
        return self.deadline - time.monotonic()

    def model_dir(self) -> Path:
        """The model every part edits with: full size (SD 1.5 InstructPix2Pix, random weights, stored in
        float16) or, with --tiny, the tiny test model at 64 px."""
        if self._model_dir is None:
            folder = self.out / ("tiny_model" if self.tiny else "sd15_model")
            if not (folder / "model_index.json").is_file():
                t0 = time.perf_counter()
                if self.tiny:
                    from ix2x.diffusion.tiny import make_tiny_model

                    make_tiny_model(folder, seed=0, image_size=self.res)
                else:
                    from ix2x.benchmarks.gpu.sd15 import make_sd15_model

                    make_sd15_model(folder, seed=0, dtype="float16")
                self.result["model_build_s"] = round(time.perf_counter() - t0, 1)
            self.result["model"] = str(folder)
            self._model_dir = folder
        return self._model_dir

    def write(self) -> None:
        self.result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (self.out / "gpu_check.json").write_text(json.dumps(self.result, indent=2, default=str))
        (self.out / "gpu_check.md").write_text(table(self.result))


def device_info(device: str) -> dict[str, Any]:
    import torch

    info = {"kind": device, "torch": torch.__version__, "python": platform.python_version(),
            "cuda_available": torch.cuda.is_available()}
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        info.update(name=p.name, memory_gb=round(p.total_memory / 2**30, 1), sm_count=p.multi_processor_count,
                    cuda=torch.version.cuda, capability=f"{p.major}.{p.minor}",
                    bf16_peak_tflops=bf16_peak(p.name), device_count=torch.cuda.device_count())
    else:
        info.update(name=platform.processor() or platform.machine(), threads=torch.get_num_threads())
    return info


def bf16_peak(name: str) -> float | None:
    """The data-sheet dense bf16 peak of the card called ``name`` (longest matching key), or None."""
    hits = [k for k in BF16_PEAK_TFLOPS if k.lower() in name.lower()]
    return BF16_PEAK_TFLOPS[max(hits, key=len)] if hits else None


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


# ---- parts -----------------------------------------------------------------------------------------


def part_cuda_tests(check: Check) -> dict[str, Any]:
    """``pytest -m cuda``; on the CPU every test skips with its reason (counted as skipped)."""
    import xml.etree.ElementTree as ET

    junit = check.out / "cuda_tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", str(REPO / "tests/fullsize/test_cuda.py"), "-q",
           "-p", "no:cacheprovider", f"--junitxml={junit}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=max(60, check.left_s),
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **({"OMP_NUM_THREADS": "1"} if check.tiny else {})})
    suite = ET.parse(junit).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None or c.find("error") is not None]
    return {"returncode": proc.returncode, **counts, "passed": counts["tests"] - counts["failures"]
            - counts["errors"] - counts["skipped"], "failed": failed, "tail": proc.stdout[-1500:]}


def part_matmul_peak(check: Check) -> dict[str, Any]:
    """bf16 matrix product of n^3 (n = 8192; 512 with --tiny), mean of 10 after 3 warm-ups."""
    import torch

    n = 512 if check.tiny else 8192
    a = torch.randn(n, n, device=check.device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=check.device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(check.device)
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    sync(check.device)
    s = (time.perf_counter() - t0) / 10
    tflops = 2 * n**3 / s / 1e12
    peak = check.result["device"].get("bf16_peak_tflops")
    return {"n": n, "tflops": round(tflops, 2), "fraction_of_datasheet": round(tflops / peak, 3) if peak else None}


def _load(check: Check, dtype: str):
    from ix2x.diffusion import loop
    from ix2x.diffusion.loading import load_components

    return loop.Pix2PixModel(load_components(check.model_dir(), device=check.device, dtype=dtype))


def _config(check: Check, variant: str, steps: int | None = None):
    """``rse``: instructx2x's loop (relevance pass, latent blending, compositing); ``plain``:
    instructpix2pix's (pure-noise start, nothing else). Both sample with the folder's scheduler, as
    diffusers' pipeline does."""
    from ix2x.diffusion.editor import DiffusionEditorConfig

    steps = steps or check.steps
    if variant == "plain":
        return DiffusionEditorConfig(model="-", steps=steps, resolution=check.res, tau=0.0, start="noise",
                                     composite=False, latent_blend=False, scheduler="model")
    return DiffusionEditorConfig(model="-", steps=steps, resolution=check.res, scheduler="model")


def _inputs(check: Check, batch: int):
    import torch

    images = [torch.rand(1, check.res, check.res, generator=torch.Generator().manual_seed(i)) for i in range(batch)]
    priors = [torch.ones(1, check.res, check.res)] * batch
    return images, [PROMPT] * batch, list(range(batch)), priors


def unet_flops_per_sample(model, check: Check) -> int:
    """FLOPs of one UNet evaluation of one sample (one CFG branch) at the check's resolution, counted
    by ``FlopCounterMode`` on a batch of 3 (the three branches of one guided step), divided by 3."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    h = check.res // model.latent_factor
    x = torch.randn(3, 8, h, h, device=model.device, dtype=model.dtype)
    emb = torch.randn(3, model.c.tokenizer.model_max_length, model.c.unet.config.cross_attention_dim,
                      device=model.device, dtype=model.dtype)
    t = torch.tensor(500, device=model.device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.c.unet(x, t, encoder_hidden_states=emb, return_dict=False)
    return counter.get_total_flops() // 3


def part_flops(check: Check) -> dict[str, Any]:
    model = _load(check, check.dtypes[-1])
    per_sample = unet_flops_per_sample(model, check)
    evals = 3 * check.steps + 2  # 3 branches per guided step + the relevance pass's 2
    check.result.setdefault("cache", {})["unet_flops_per_sample"] = per_sample
    return {"unet_gflop_per_evaluation": round(per_sample / 1e9, 2), "unet_evals_per_edit": evals,
            "unet_tflop_per_edit": round(per_sample * evals / 1e12, 3),
            "unet_tflop_per_edit_100_steps": round(per_sample * (3 * 100 + 2) / 1e12, 3)}


class UnetTimer:
    """Accumulates device-synchronised seconds inside the model's UNet calls."""

    def __init__(self, model, device: str) -> None:
        self.inside, self.device = 0.0, device
        inner = model.unet

        def timed(*a, **k):
            sync(device)
            t0 = time.perf_counter()
            out = inner(*a, **k)
            sync(device)
            self.inside += time.perf_counter() - t0
            return out
        model.unet = timed


def _time_edit(check: Check, model, cfg, batch: int, rounds: int) -> dict[str, float]:
    """Median seconds of ``rounds`` edits of ``batch`` after the first (returned apart: it includes
    compilation and kernel selection), UNet seconds and peak CUDA memory of the timed edits."""
    import torch

    from ix2x.diffusion.editor import edit_images

    images, prompts, seeds, priors = _inputs(check, batch)
    timer = UnetTimer(model, check.device)
    run = lambda: edit_images(model, images, prompts, seeds, cfg, pseudo_masks=priors)  # noqa: E731
    t0 = time.perf_counter()
    run()
    sync(check.device)
    first = time.perf_counter() - t0
    if check.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    walls, unets = [], []
    for _ in range(rounds):
        timer.inside = 0.0
        t0 = time.perf_counter()
        run()
        sync(check.device)
        walls.append(time.perf_counter() - t0)
        unets.append(timer.inside)
    peak = torch.cuda.max_memory_allocated() / 2**30 if check.device == "cuda" else None
    return {"first_s": first, "edit_s": statistics.median(walls), "unet_s": statistics.median(unets),
            "peak_gb": peak}


def _loop_rows(check: Check, part: str, variants: list[str], batches: list[int]) -> dict[str, Any]:
    """Timed RSE edits per (dtype, variant, batch); rows are written to the JSON as they come."""
    import gc

    import torch

    from ix2x.diffusion.memory import estimate_for_folder

    flops = check.result.get("cache", {}).get("unet_flops_per_sample")
    peak_tflops = check.result["device"].get("bf16_peak_tflops")
    matmul = check.result["parts"].get("matmul_peak", {}).get("tflops")
    eager_first = {(r["dtype"], r["batch"]): r["first_s"]
                   for r in check.result["parts"].get("loop", {}).get("rows", []) if r["variant"] == "eager"}
    rows, skipped = [], []
    dtypes = sorted(check.dtypes, key=lambda d: d != "bfloat16") if part == "compile" else check.dtypes
    for dtype in dtypes:
        model = _load(check, dtype)
        for variant in variants:
            if variant == "channels_last":
                model.optimize(channels_last=True)
            elif variant == "compile" and check.tiny:
                # Dry run: dynamo's graph capture with the eager backend; inductor's C++ code generation
                # takes many minutes on a loaded CPU and says nothing about a GPU.
                model.optimize(channels_last=True)
                model._unet = torch.compile(model.c.unet, backend="eager")
            elif variant == "compile":
                model.optimize(channels_last=True, compile=True)
            for batch in batches:
                if check.left_s < (1 if check.tiny else MIN_S[part]):
                    skipped.append(f"{dtype} {variant} b{batch}: time budget spent")
                    continue
                t = _time_edit(check, model, _config(check, "rse"), batch, check.args.rounds)
                evals = batch * (3 * check.steps + 2)
                row = {"dtype": dtype, "variant": variant, "batch": batch, "steps": check.steps,
                       "edit_s": round(t["edit_s"], 4), "images_per_s": round(batch / t["edit_s"], 3),
                       "unet_fraction": round(t["unet_s"] / t["edit_s"], 3), "first_s": round(t["first_s"], 2)}
                if variant == "compile":  # the first call compiles; an eager first call only selects kernels
                    row["compile_s"] = round(t["first_s"] - eager_first.get((dtype, batch), t["edit_s"]), 1)
                if flops:
                    achieved = flops * evals / t["unet_s"] / 1e12
                    row["unet_tflops"] = round(achieved, 2 if achieved > 1 else 5)
                    row["fraction_of_bf16_peak"] = round(achieved / peak_tflops, 3) if peak_tflops else None
                    row["fraction_of_matmul_peak"] = round(achieved / matmul, 3) if matmul else None
                est = estimate_for_folder(check.model_dir(), batch, dtype, check.res).total / 2**30
                row["estimated_gb"] = round(est, 4)
                if t["peak_gb"] is not None:
                    row["peak_gb"] = round(t["peak_gb"], 4)
                    row["peak_over_estimate"] = round(t["peak_gb"] / est, 3)
                rows.append(row)
                check.result["parts"][part] = {"rows": rows, "skipped": skipped}
                check.write()
        del model
        gc.collect()
        if check.device == "cuda":
            torch.cuda.empty_cache()
        if part == "compile":
            torch._dynamo.reset()
    return {"rows": rows, "skipped": skipped}


def part_loop(check: Check) -> dict[str, Any]:
    """Eager and channels-last, every batch size and dtype."""
    return _loop_rows(check, "loop", ["eager", "channels_last"], check.batches)


def part_compile(check: Check) -> dict[str, Any]:
    """channels-last + ``torch.compile`` of the UNet, bfloat16 first, at ``--compile-batches`` (each new
    batch size may recompile; compile time is the first call's excess over the eager first call)."""
    return _loop_rows(check, "compile", ["compile"], [1, 2] if check.tiny else check.args.compile_batches)


def part_ratios(check: Check) -> dict[str, Any]:
    """RSE / plain and ours / diffusers, the three interleaved round by round (rotating who goes first),
    medians of ``--rounds`` (at least 3); one dtype (float16 on CUDA), channels-last for all."""
    import torch
    from diffusers import StableDiffusionInstructPix2PixPipeline

    from ix2x.diffusion.editor import edit_images

    dtype = check.dtypes[0]
    plain, rse = _load(check, dtype), _load(check, dtype)
    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
        check.model_dir(), safety_checker=None, requires_safety_checker=False,
        torch_dtype=getattr(torch, dtype)).to(check.device)
    pipe.set_progress_bar_config(disable=True)
    if check.device == "cuda":
        for m in (plain, rse):
            m.optimize(channels_last=True)
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    out = {}
    for batch in ([1, 2] if check.tiny else [1, 8]):
        images, prompts, seeds, priors = _inputs(check, batch)
        x = torch.cat(images)[:, None].repeat(1, 3, 1, 1).to(check.device)
        runs = {
            "plain": lambda: edit_images(plain, images, prompts, seeds, _config(check, "plain")),
            "rse": lambda: edit_images(rse, images, prompts, seeds, _config(check, "rse"), pseudo_masks=priors),
            "diffusers": lambda: pipe(prompts, image=x, num_inference_steps=check.steps, output_type="pt",
                                      generator=[torch.Generator().manual_seed(s) for s in seeds]),
        }
        for fn in runs.values():
            fn()
        sync(check.device)
        wall = {k: [] for k in runs}
        order = list(runs)
        for _ in range(max(3, check.args.rounds)):
            if check.left_s < 20:
                break
            order.append(order.pop(0))
            for name in order:
                t0 = time.perf_counter()
                runs[name]()
                sync(check.device)
                wall[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in wall.items() if v}
        if len(med) == 3:
            out[f"b{batch}"] = {"rse_over_plain": round(med["rse"] / med["plain"], 4),
                                "ours_over_diffusers": round(med["plain"] / med["diffusers"], 4),
                                "rounds": len(wall["plain"]), "dtype": dtype,
                                "unet_work_rse_over_plain": round((3 * check.steps + 2) / (3 * check.steps), 4)}
            check.result["parts"]["ratios"] = out
            check.write()
    return out


TORCHRUN_SUITE = """name: gpu_check_shard
data: {{source: phantom, split: test, limit: {limit}, phantom: {{n: 80, seed: 0, size: 128}}}}
editors:
  - name: instructx2x
    args: {{model: "builtin:phantom_ix2x", resolution: 128, steps: {steps}}}
metrics: [{{name: out_of_mask_change}}]
batch_size: 1
device: {device}
"""


def part_torchrun(check: Check) -> dict[str, Any]:
    """The shipped model's RSE edits of 8 phantom pairs, one process vs ``torchrun --nproc_per_node=2``
    (both ranks on the one GPU; batch 1, so both runs hand the editor the same batches)."""
    from ix2x import records

    suite = check.out / "torchrun_suite.yaml"
    suite.write_text(TORCHRUN_SUITE.format(limit=4 if check.tiny else 8, steps=2 if check.tiny else 20,
                                           device=check.device))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "IX2X_CACHE": str(check.out / "cache")}
    dirs, secs = {}, {}
    for name, prefix in (("one", [sys.executable]),
                         ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"])):
        root = check.out / f"torchrun_{name}"
        t0 = time.perf_counter()
        proc = subprocess.run([*prefix, "-m", "ix2x", "run", "--suite", str(suite), "--quiet", "--out", str(root)],
                              cwd=REPO, capture_output=True, text=True, env=env, timeout=max(60, check.left_s))
        secs[name] = round(time.perf_counter() - t0, 1)
        if proc.returncode != 0:
            return {"equal": False, "error": f"{name}: exit {proc.returncode}", "tail": (proc.stdout + proc.stderr)[-2000:]}
        (dirs[name],) = list((root / "gpu_check_shard").iterdir())
    one, two = (records.without_timings(records.RunDir.open(dirs[k]).records()) for k in ("one", "two"))
    diffs = _record_diffs(one, two)
    return {"equal": one == two, "records": len(one), "max_abs_diff": max(diffs, default=0.0), "seconds": secs}


def _record_diffs(a: list, b: list) -> list[float]:
    """Absolute differences of every numeric leaf of two record lists of the same shape."""
    out: list[float] = []

    def walk(x, y):
        if isinstance(x, dict) and isinstance(y, dict):
            for k in x.keys() & y.keys():
                walk(x[k], y[k])
        elif isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
            for u, v in zip(x, y):
                walk(u, v)
        elif isinstance(x, (int, float)) and isinstance(y, (int, float)) and x == x and y == y:
            out.append(abs(float(x) - float(y)))
    walk(a, b)
    return out


TRAIN_CONFIG = """name: gpu_check_train
data:
  source: phantom
  path: {data}
  phantom: {{n: 8, seed: 2000, size: {res}, splits: [0.75, 0.25, 0.0]}}
  resolution: {res}
  preload: true
model: {{init: {model}}}
optim: {{lr: 1.0e-4, schedule: constant}}
validation: {{every: 1000, samples: 1, steps: 2}}
max_steps: 2
per_device_batch_size: {batch}
effective_batch_size: {batch}
ema_decay: 0.9999
mixed_precision: "{precision}"
gradient_checkpointing: true
seed: 0
checkpoint_every: 1
keep_checkpoints: 1
log_every: 1
{threads}"""


def part_train(check: Check) -> dict[str, Any]:
    """Two steps under ``accelerate launch``, uninterrupted (``a``) and as one step + ``--resume``
    (``b``); the exported UNets are compared."""
    import torch
    from safetensors.torch import load_file

    cfg = check.out / "train.yaml"
    cfg.write_text(TRAIN_CONFIG.format(data=check.out / "train_data", res=check.res, model=check.model_dir(),
                                       batch=1 if check.tiny else 2, precision="auto" if check.device == "cuda" else "no",
                                       threads="threads: 1\n" if check.tiny else ""))
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1",
              "--mixed_precision", "no" if check.device == "cpu" else ("bf16" if torch.cuda.is_bf16_supported() else "fp16")]
    if check.device == "cpu":
        launch.append("--cpu")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "IX2X_CACHE": str(check.out / "cache"),
           **({"OMP_NUM_THREADS": "1"} if check.tiny else {})}
    steps = {"a": [["--max-steps", "2"]], "b": [["--max-steps", "1"], ["--max-steps", "2", "--resume", "RUN"]]}
    secs: dict[str, list[float]] = {}
    for name, calls in steps.items():
        run = check.out / f"train_{name}"
        for extra in calls:
            extra = [str(run) if e == "RUN" else e for e in extra]
            t0 = time.perf_counter()
            proc = subprocess.run([*launch, "-m", "ix2x", "train", "--config", str(cfg), "--out", str(run), *extra],
                                  cwd=REPO, capture_output=True, text=True, env=env, timeout=max(60, check.left_s))
            secs.setdefault(name, []).append(round(time.perf_counter() - t0, 1))
            if proc.returncode != 0:
                return {"error": f"{name} {extra}: exit {proc.returncode}", "tail": (proc.stdout + proc.stderr)[-2500:]}
    a, b = (load_file(str(check.out / f"train_{n}/model/unet/diffusion_pytorch_model.safetensors")) for n in "ab")
    init = load_file(str(check.model_dir() / "unet/diffusion_pytorch_model.safetensors"))
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    moved = max((a[k].float() - init[k].float()).abs().max().item() for k in a)
    return {"resumed_equals_uninterrupted": diff == 0.0, "max_abs_diff": diff, "max_change_from_init": moved,
            "seconds": secs}


RUNNERS: dict[str, Callable[[Check], dict[str, Any]]] = {
    "cuda_tests": part_cuda_tests, "matmul_peak": part_matmul_peak, "flops": part_flops, "loop": part_loop,
    "ratios": part_ratios, "torchrun": part_torchrun, "train": part_train, "compile": part_compile}


# ---- report ----------------------------------------------------------------------------------------


def table(result: dict[str, Any]) -> str:
    """The short Markdown table of a gpu_check.json."""
    d = result["device"]
    head = f"gpu-check on {d.get('name')} ({d['kind']}, torch {d['torch']})"
    if result["tiny"]:
        head = "DRY RUN (--tiny: tiny model, CPU; the numbers mean nothing): " + head
    lines = [f"# {head}", "", f"steps per edit: {result['settings']['steps']}, resolution "
             f"{result['settings']['resolution']}", ""]
    parts = result["parts"]
    rows = parts.get("loop", {}).get("rows", []) + parts.get("compile", {}).get("rows", [])
    if rows:
        lines += ["| dtype | variant | batch | s / edit | images/s | UNet TFLOP/s | of bf16 peak | peak GB | "
                  "estimate GB | compile s |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append("| " + " | ".join("-" if r.get(k) is None else str(r[k]) for k in (
                "dtype", "variant", "batch", "edit_s", "images_per_s", "unet_tflops", "fraction_of_bf16_peak",
                "peak_gb", "estimated_gb", "compile_s")) + " |")
        lines.append("")
    for name in PARTS:
        if name not in parts or (name in ("loop", "compile") and "rows" in parts[name] and not parts[name]["skipped"]):
            continue
        value = {k: v for k, v in parts[name].items() if k not in ("tail",)}
        lines.append(f"- **{name}**: {json.dumps(value, default=str)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ix2x.benchmarks.gpu.check", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/gpu_check", help="folder for gpu_check.json, gpu_check.md and the model")
    p.add_argument("--tiny", action="store_true", help="DRY RUN on the CPU with the tiny model: checks that every "
                   "part's code runs; its numbers mean nothing")
    p.add_argument("--budget-s", type=float, default=450.0, help="stop starting new measurements after this "
                   "(default 450 s: the whole check stays under 8 minutes on an H100/H200)")
    p.add_argument("--steps", type=int, default=20, help="sampling steps per timed edit (default 20)")
    p.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8, 16])
    p.add_argument("--rounds", type=int, default=2, help="timed edits per setting after the warm-up (median)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--compile-batches", type=lambda s: [int(x) for x in s.split(",")], default=[8],
                   help="batch sizes of the torch.compile part, in order (default 8; each new size may recompile)")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if not torch.cuda.is_available() and not args.tiny:
        print(NO_CUDA.format(torch=torch.__version__))
        return 0
    parts = [x for x in args.parts.split(",") if x]
    unknown = [x for x in parts if x not in RUNNERS]
    if unknown:
        p.error(f"--parts must name some of {', '.join(PARTS)}, got {', '.join(unknown)}")
    if args.tiny:
        torch.set_num_threads(1)  # a shared CPU: more threads than free cores makes OpenMP spin, not run
        print("gpu-check DRY RUN (--tiny): tiny model on the CPU; this checks the code paths, it measures nothing.")
    check = Check(args)
    for name in parts:
        if check.left_s < (5 if check.tiny else MIN_S[name]):
            check.result["parts"][name] = {"skipped": f"time budget spent ({check.left_s:.0f} s left of --budget-s)"}
            check.write()
            continue
        t0 = time.perf_counter()
        try:
            check.result["parts"][name] = RUNNERS[name](check)
        except Exception as e:  # one broken part must not lose the others' numbers
            import traceback

            check.result["parts"][name] = {"error": f"{type(e).__name__}: {e}",
                                           "traceback": traceback.format_exc()[-2500:]}
        check.result["parts"][name]["part_s"] = round(time.perf_counter() - t0, 1)
        check.write()
        print(f"gpu-check: {name} done in {time.perf_counter() - t0:.1f} s", flush=True)
    check.write()
    print(table(check.result))
    print(f"gpu-check: wrote {check.out / 'gpu_check.json'} and {check.out / 'gpu_check.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
