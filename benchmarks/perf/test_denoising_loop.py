"""Denoising-loop benchmarks: our plain loop, our RSE loop and diffusers' StableDiffusionInstructPix2PixPipeline
on the same model, batch 1 and 8. Tiny random model on the CPU; full size (SD 1.5 InstructPix2Pix
architecture, random weights) on a GPU when CUDA is available.

    pytest benchmarks/perf --benchmark-only            # ratios are printed at the end
    IX2X_BENCH_STEPS=20 pytest benchmarks/perf --benchmark-only   # quicker, same ratios' definitions

The CPU runs use one thread so that numbers from a shared machine are comparable within one run.
"""

import os
import time

import pytest
import torch

STEPS = int(os.environ.get("IX2X_BENCH_STEPS", "100"))
ROUNDS = int(os.environ.get("IX2X_BENCH_ROUNDS", "3"))
PROMPT = "Add the finding of pleural effusion."


class Timed:
    """Wraps the model's UNet and VAE calls to measure the time spent in them (device-synchronised)."""

    def __init__(self, model):
        self.model, self.inside = model, 0.0
        for name in ("unet", "encode_image", "decode"):
            setattr(model, name, self._wrap(getattr(model, name)))

    def _wrap(self, fn):
        def timed(*args, **kwargs):
            _sync()
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            _sync()
            self.inside += time.perf_counter() - t0
            return out
        return timed


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _full_size_model_dir(root):
    """SD 1.5 InstructPix2Pix architecture with random weights (no download), saved as a diffusers folder."""
    from diffusers import (AutoencoderKL, DDIMScheduler, StableDiffusionInstructPix2PixPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel

    from ix2x.diffusion.tiny import make_tokenizer

    tok = make_tokenizer(max_length=77)
    unet = UNet2DConditionModel(sample_size=64, in_channels=8, out_channels=4, cross_attention_dim=768)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        sample_size=512)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=768, intermediate_size=3072,
                                        num_attention_heads=12, num_hidden_layers=12, max_position_embeddings=77))
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionInstructPix2PixPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                                  scheduler=sched, safety_checker=None, feature_extractor=None,
                                                  requires_safety_checker=False)
    pipe.save_pretrained(root, safe_serialization=True)
    return root


@pytest.fixture(scope="module")
def setups(tiny_model_dir, tmp_path_factory):
    """(model folder, resolution, device, dtype) per size."""
    out = {"tiny": (tiny_model_dir, 64, "cpu", "float32")}
    if torch.cuda.is_available():
        out["full"] = (_full_size_model_dir(tmp_path_factory.mktemp("full") / "sd15_ip2p"), 512, "cuda", "float16")
    return out


def _ours(folder, resolution, device, dtype, variant):
    from ix2x.diffusion import loop
    from ix2x.diffusion.editor import DiffusionEditorConfig
    from ix2x.diffusion.loading import load_components

    model = loop.Pix2PixModel(load_components(folder, device=device, dtype=dtype))
    if device == "cuda":
        model.optimize(channels_last=True)
    if variant == "plain":  # instructpix2pix semantics
        cfg = DiffusionEditorConfig(model="-", steps=STEPS, resolution=resolution, tau=0.0, start="noise",
                                    composite=False, latent_blend=False, scheduler="model")
    else:  # instructx2x defaults: relevance pass, latent blending, compositing
        cfg = DiffusionEditorConfig(model="-", steps=STEPS, resolution=resolution, scheduler="model")
    return model, cfg


@pytest.mark.parametrize("batch", [1, 8], ids=lambda b: f"b{b}")
@pytest.mark.parametrize("variant", ["plain", "rse", "diffusers"])
@pytest.mark.parametrize("size", ["tiny", "full"])
def test_loop(benchmark, setups, size, variant, batch):
    if size not in setups:
        pytest.skip("full size needs CUDA")
    folder, res, device, dtype = setups[size]
    images = [torch.rand(1, res, res, generator=torch.Generator().manual_seed(i)) for i in range(batch)]
    seeds = list(range(batch))
    if variant == "diffusers":
        from diffusers import StableDiffusionInstructPix2PixPipeline

        pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
            folder, safety_checker=None, requires_safety_checker=False,
            dtype=torch.float16 if dtype == "float16" else torch.float32).to(device)
        pipe.set_progress_bar_config(disable=True)
        x = torch.cat(images)[:, None].repeat(1, 3, 1, 1).to(device)

        def run():
            out = pipe([PROMPT] * batch, image=x, num_inference_steps=STEPS,
                       generator=[torch.Generator().manual_seed(s) for s in seeds], output_type="pt")
            _sync()
            return out
    else:
        from ix2x.diffusion.editor import edit_images

        model, cfg = _ours(folder, res, device, dtype, variant)
        timer = Timed(model)
        priors = [torch.ones(1, res, res)] * batch if variant == "rse" else None

        def run():
            out = edit_images(model, images, [PROMPT] * batch, seeds, cfg, pseudo_masks=priors)
            _sync()
            return out
    run()  # warm-up (kernel selection, caches)
    if variant != "diffusers":
        timer.inside = 0.0
    t0 = time.perf_counter()
    benchmark.pedantic(run, rounds=2 if size == "tiny" else 3, iterations=1)
    total = time.perf_counter() - t0
    if variant != "diffusers":
        benchmark.extra_info["outside_unet_vae_fraction"] = max(0.0, 1 - timer.inside / total)
    benchmark.extra_info.update(steps=STEPS, batch=batch, device=device, dtype=dtype)


@pytest.mark.parametrize("batch", [1, 8], ids=lambda b: f"b{b}")
def test_paired_ratios(benchmark, setups, batch):
    """plain, RSE and diffusers interleaved round by round on the tiny model, so that load from other
    processes hits all three alike; CPU time (one thread) alongside wall time. The ratios go to
    extra_info and the terminal summary."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    from ix2x.diffusion.editor import edit_images

    folder, res, device, dtype = setups["tiny"]
    images = [torch.rand(1, res, res, generator=torch.Generator().manual_seed(i)) for i in range(batch)]
    seeds, prompts = list(range(batch)), [PROMPT] * batch
    plain, plain_cfg = _ours(folder, res, device, dtype, "plain")
    rse_model, rse_cfg = _ours(folder, res, device, dtype, "rse")
    priors = [torch.ones(1, res, res)] * batch
    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(folder, safety_checker=None,
                                                                  requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    x = torch.cat(images)[:, None].repeat(1, 3, 1, 1)
    runs = {
        "plain": lambda: edit_images(plain, images, prompts, seeds, plain_cfg),
        "rse": lambda: edit_images(rse_model, images, prompts, seeds, rse_cfg, pseudo_masks=priors),
        "diffusers": lambda: pipe(prompts, image=x, num_inference_steps=STEPS, output_type="pt",
                                  generator=[torch.Generator().manual_seed(s) for s in seeds]),
    }
    wall = {k: [] for k in runs}
    cpu = {k: [] for k in runs}

    order = list(runs)

    def one_round():
        order.append(order.pop(0))  # rotate: no variant always runs first (cache and clock effects)
        for name in order:
            fn = runs[name]
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)

    for fn in runs.values():
        fn()  # warm-up
    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    for clock, table in (("wall", wall), ("cpu", cpu)):
        # Paired: each round's ratio, from runs made back to back.
        benchmark.extra_info[f"rse_over_plain_{clock}"] = [r / p for r, p in zip(table["rse"], table["plain"])]
        benchmark.extra_info[f"ours_over_diffusers_{clock}"] = [p / d for p, d in zip(table["plain"],
                                                                                     table["diffusers"])]
    benchmark.extra_info["unet_work_rse_over_plain"] = (3 * STEPS + 2) / (3 * STEPS)
    benchmark.extra_info.update(steps=STEPS, batch=batch)
