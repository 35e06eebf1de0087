"""Fine-tune (or train from scratch) an InstructPix2Pix-architecture editor: ``ix2x train``.

The loop follows diffusers' ``train_instruct_pix2pix.py``: the past image's VAE posterior mode (not
scaled) is concatenated to the noisy latents of the current image (posterior sample x scaling factor);
epsilon-prediction MSE; conditioning dropout (text -> the empty prompt's embedding, image -> zeros);
frozen VAE and text encoder; EMA of the UNet. One process or many through ``accelerate launch``.

Output folder ``OUT``::

    init/                 the model the run starts from (small models: built here, VAE trained first)
    model/                diffusers folder (EMA weights by default): what the editors load
    checkpoints/step_N/   accelerate state (UNet, optimiser, LR schedule, EMA, RNG) + state.json
    validation/step_N.png rows: input, edit, target of fixed samples
    log.csv               step, loss, lr, seconds per step, images per second, elapsed seconds
    config.yaml           the resolved config
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ix2x import resize
from ix2x.errors import UserError
from ix2x.seeding import validation_seed
from ix2x.training.editor_config import EditorTrainConfig, as_dict
from ix2x.training.editor_data import EditPairs, batch_indices, dropout_masks, step_generator, swap_laterality

LOG_COLUMNS = ("step", "loss", "lr", "seconds_per_step", "images_per_second", "elapsed_s")
_SUBFOLDERS = ("vae", "text_encoder", "tokenizer", "scheduler")


# ------------------------------------------------------------------------------------------ setup
def prepare_data(config: EditorTrainConfig, log: Callable[[str], None] = print) -> Path:
    """The data folder; phantoms are generated there first when ``data.source`` is phantom and the
    folder has no ``instructions.csv``."""
    root = Path(config.data.path).expanduser()
    if (root / "instructions.csv").is_file():
        return root
    if config.data.source != "phantom":
        raise UserError(f"`data.path` must be a MIMIC-EDIT-INSTRUCTION folder (with instructions.csv), got "
                        f"{root}. Build one with `ix2x dataset build`, or set data.source: phantom.")
    from ix2x.data.phantom import generate

    spec = config.data.phantom
    log(f"generating {spec.n} phantom pairs ({spec.size} px, seed {spec.seed}) in {root}")
    generate(root, spec.n, seed=spec.seed, size=spec.size, splits=tuple(spec.splits), progress=False)
    return root


def build_init_model(config: EditorTrainConfig, data: EditPairs, out: Path, log: Callable[[str], None]) -> Path:
    """``model.init`` as a local folder; for ``small``, build it (tokenizer, random UNet and text
    encoder, VAE trained on the training images) into ``out`` unless it is already there."""
    from ix2x.diffusion.loading import missing_files, resolve_model
    from ix2x.training import small_model

    if config.model.init != "small":
        return resolve_model(config.model.init)
    if out.is_dir() and not missing_files(out):
        return out
    cfg = config.model.small
    unet, vae, text_encoder, tokenizer, scheduler = small_model.build(
        cfg, data.instructions, config.data.resolution, config.seed)
    log(f"small model: UNet {small_model.count_parameters(unet) / 1e6:.2f} M, VAE "
        f"{small_model.count_parameters(vae) / 1e6:.2f} M, text encoder {small_model.count_parameters(text_encoder) / 1e3:.0f} k "
        f"parameters, {len(tokenizer)} tokens")
    n = len(data)

    def images(step: int, gen: torch.Generator) -> torch.Tensor:
        idx = batch_indices(n, config.seed, step * cfg.vae_batch_size // 2, cfg.vae_batch_size // 2,
                            stream="vae")
        b = data.batch(idx, gen, rotation=config.data.rotation, hflip=config.data.hflip)
        x = torch.cat([b.past, b.current])
        crop = cfg.vae_crop
        if crop and crop < x.shape[-1] and step < 10**6:
            i, j = (int(v) for v in torch.randint(0, x.shape[-1] - crop + 1, (2,), generator=gen))
            x = x[..., i:i + crop, j:j + crop]
        return x

    stats = small_model.train_vae(vae, images, cfg, config.seed, log)
    probe = images(10**6, torch.Generator("cpu").manual_seed(config.seed))
    stats["scaling_factor"] = small_model.set_scaling_factor(vae, probe)
    log(f"vae done: {stats}")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    small_model.save_folder(tmp, unet, vae, text_encoder, tokenizer, scheduler)
    (tmp / "vae_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _mixed_precision(choice: str) -> str:
    if choice != "auto":
        if choice == "fp16" and not torch.cuda.is_available():
            raise UserError("`mixed_precision` fp16 needs a CUDA device; use bf16 or no on the CPU, or auto.")
        return choice
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _optimizer(config: EditorTrainConfig, params, cuda: bool):
    o = config.optim
    if o.kind == "adamw_8bit":
        if not cuda:
            raise UserError("`optim.kind` adamw_8bit needs a CUDA device (bitsandbytes); use adamw on the CPU.")
        try:
            import bitsandbytes as bnb
        except ImportError as e:
            raise UserError("`optim.kind` adamw_8bit needs bitsandbytes: `pip install bitsandbytes`.") from e
        return bnb.optim.AdamW8bit(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay, eps=o.eps)
    fused = cuda if o.fused == "auto" else o.fused == "on"
    return torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay, eps=o.eps,
                             fused=fused or None)


# ------------------------------------------------------------------------------------------- loss
class TextEncoder:
    """Frozen text encoder + tokenizer, with an optional per-instruction cache."""

    def __init__(self, text_encoder, tokenizer, cache: bool) -> None:
        self.te, self.tok, self.cache = text_encoder, tokenizer, {} if cache else None

    @torch.no_grad()
    def __call__(self, prompts: list[str]) -> torch.Tensor:
        if self.cache is not None:
            todo = [p for p in dict.fromkeys(prompts) if p not in self.cache]
            if todo:
                for p, e in zip(todo, self._encode(todo)):
                    self.cache[p] = e
            return torch.stack([self.cache[p] for p in prompts])
        return self._encode(prompts)

    def _encode(self, prompts: list[str]) -> torch.Tensor:
        ids = self.tok(prompts, padding="max_length", max_length=self.tok.model_max_length, truncation=True,
                       return_tensors="pt").input_ids.to(self.te.device)
        return self.te(ids)[0]


@torch.no_grad()
def encode_pixels(vae, batch, gen: torch.Generator, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(target latents: posterior sample x scaling factor, image latents: posterior mode, unscaled)."""
    target = vae.encode(batch.current.to(device, dtype)).latent_dist.sample(generator=gen)
    image = vae.encode(batch.past.to(device, dtype)).latent_dist.mode()
    return target.float() * vae.config.scaling_factor, image.float()


class LatentCache:
    """VAE posteriors of every pair, as is and mirrored: the past image's mode and the current image's
    mean and std. Exact for a frozen VAE when the only augmentation is the horizontal flip."""

    def __init__(self, vae, data: EditPairs, device, dtype, batch_size: int = 32) -> None:
        self.data, self.scale = data, float(vae.config.scaling_factor)
        n = len(data)
        self.past, self.mean, self.std = {}, {}, {}
        for flip in (False, True):
            chunks = []
            for start in range(0, n, batch_size):
                pairs = [data.pair(i) for i in range(start, min(n, start + batch_size))]
                x = torch.stack([p[0] for p in pairs] + [p[1] for p in pairs])
                if flip:
                    x = x.flip(-1)
                with torch.no_grad():
                    dist = vae.encode((x * 2 - 1).repeat(1, 3, 1, 1).to(device, dtype)).latent_dist
                k = len(pairs)
                chunks.append((dist.mode()[:k].float().cpu(), dist.mean[k:].float().cpu(), dist.std[k:].float().cpu()))
            self.past[flip], self.mean[flip], self.std[flip] = (torch.cat(c) for c in zip(*chunks))

    def batch(self, indices, gen: torch.Generator, *, hflip: float, swap: bool):
        """(target latents, image latents, prompts) with the same draws as :meth:`EditPairs.batch`
        would make for flips (rotation is 0)."""
        b = len(indices)
        flipped = (torch.rand(b, generator=gen) < hflip).tolist()
        torch.rand(b, generator=gen)  # the rotation draw of EditPairs.batch, unused at rotation 0
        idx = torch.tensor(list(indices))
        pick = lambda table: torch.stack([table[f][i] for f, i in zip(flipped, idx.tolist())])  # noqa: E731
        mean, std = pick(self.mean), pick(self.std)
        target = (mean + std * torch.randn(mean.shape, generator=gen)) * self.scale
        texts = [self.data.instructions[i] for i in indices]
        prompts = [swap_laterality(t) if (f and swap) else t for t, f in zip(texts, flipped)]
        return target, pick(self.past), prompts


def micro_loss(unet, noise_scheduler, target_lat: torch.Tensor, image_lat: torch.Tensor, emb: torch.Tensor,
               gen: torch.Generator, p_drop: float, null_text: torch.Tensor, max_t: int) -> torch.Tensor:
    """Epsilon-prediction MSE of one micro-batch (all randomness from ``gen``). ``target_lat``: scaled
    latents of the current images; ``image_lat``: unscaled posterior modes of the past images;
    ``emb``: text embeddings (B, L, D)."""
    device = null_text.device
    target_lat, image_lat, emb = target_lat.to(device), image_lat.to(device), emb.to(device).float()
    b = target_lat.shape[0]
    noise = torch.randn(target_lat.shape, generator=gen).to(device)
    t = torch.randint(0, max_t, (b,), generator=gen).to(device)
    noisy = noise_scheduler.add_noise(target_lat, noise, t)
    drop_text, drop_image = dropout_masks(torch.rand(b, generator=gen), p_drop)
    emb = torch.where(drop_text.to(device).view(-1, 1, 1), null_text.float().expand_as(emb), emb)
    image_lat = image_lat * (~drop_image).to(device).view(-1, 1, 1, 1).float()
    pred = unet(torch.cat([noisy, image_lat], dim=1), t, encoder_hidden_states=emb, return_dict=False)[0]
    return F.mse_loss(pred.float(), noise.float())


# ------------------------------------------------------------------------------------------- main
def train(config: EditorTrainConfig, out: str | Path, *, resume: str | Path | None = None,
          max_steps: int | None = None, log: Callable[[str], None] = print) -> Path:
    """Train; returns the exported diffusers folder ``out/model``. ``resume``: a checkpoint folder
    (``out/checkpoints/step_N``) or a run folder (its latest checkpoint). ``max_steps`` replaces
    ``config.max_steps`` (the run stops there; LR schedules use it too)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    from ix2x.diffusion.loading import load_components

    if max_steps is not None:
        config = replace(config, max_steps=max_steps)
    out = Path(out)
    ckpt = _find_checkpoint(Path(resume)) if resume is not None else None  # fail before any work
    if config.threads:
        torch.set_num_threads(config.threads)
    accelerator = Accelerator(mixed_precision=_mixed_precision(config.mixed_precision))
    cuda = accelerator.device.type == "cuda"
    if cuda and config.allow_tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    accum = config.accumulation(accelerator.num_processes)
    rank, world = accelerator.process_index, accelerator.num_processes
    say = log if accelerator.is_main_process else (lambda _m: None)
    set_seed(config.seed)

    data_root = prepare_data(config, say) if accelerator.is_main_process else Path(config.data.path)
    accelerator.wait_for_everyone()
    dcfg = config.data
    data = EditPairs(data_root, dcfg.split, dcfg.resolution, limit=dcfg.limit, preload=dcfg.preload)
    if len(data) == 0:
        raise UserError(f"split {dcfg.split!r} of {data_root} is empty.")
    out.mkdir(parents=True, exist_ok=True)
    if accelerator.is_main_process:
        build_init_model(config, data, out / "init", say)
    accelerator.wait_for_everyone()
    init = build_init_model(config, data, out / "init", say)  # built above: this only resolves it

    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
    frozen_dtype = weight_dtype if cuda else torch.float32
    comps = load_components(init, device=str(accelerator.device), dtype="float32")
    if cuda:  # the frozen parts run in the mixed-precision dtype; the trained UNet keeps fp32 weights
        comps.vae.to(dtype=weight_dtype)
        comps.text_encoder.to(dtype=weight_dtype)
    unet = comps.unet
    unet.train().requires_grad_(True)
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    noise_scheduler = DDPMScheduler.from_config(comps.scheduler_config)
    max_t = int(noise_scheduler.config.num_train_timesteps)
    text = TextEncoder(comps.text_encoder, comps.tokenizer, dcfg.cache_text)
    null_text = text([""])
    cache = None
    if dcfg.cache_latents:
        t0 = time.time()
        cache = LatentCache(comps.vae, data, accelerator.device, frozen_dtype)
        say(f"cached latents of {len(data)} pairs (and mirrors) in {time.time() - t0:.0f} s")

    ema = EMAModel(unet.parameters(), decay=config.ema_decay, use_ema_warmup=config.ema_warmup,
                   power=config.ema_power, model_cls=UNet2DConditionModel, model_config=unet.config)
    optimizer = _optimizer(config, unet.parameters(), cuda)
    lr_scheduler = get_scheduler(config.optim.schedule, optimizer=optimizer,
                                 num_warmup_steps=config.optim.warmup_steps, num_training_steps=config.max_steps)
    unet, optimizer, lr_scheduler = accelerator.prepare(unet, optimizer, lr_scheduler)
    ema.to(accelerator.device)
    accelerator.register_for_checkpointing(ema)

    start = 0
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        start = json.loads((ckpt / "state.json").read_text())["step"]
        say(f"resumed from {ckpt} at step {start}")
    if accelerator.is_main_process:
        import yaml

        (out / "config.yaml").write_text(yaml.safe_dump(as_dict(config), sort_keys=False))
    val = _validation_set(config, data_root, data)
    per_device = config.per_device_batch_size
    say(f"training {config.name}: steps {start}..{config.max_steps}, batch {per_device} x {world} devices x "
        f"{accum} accumulation = {per_device * world * accum}, {len(data)} pairs, precision "
        f"{accelerator.mixed_precision}, device {accelerator.device}")

    t_run, t_last, logged = time.time(), time.time(), start
    losses: list[float] = []
    for step in range(start, config.max_steps):
        total = torch.zeros((), device=accelerator.device)
        for micro in range(accum):
            gen = step_generator(config.seed, step, micro, rank)
            first = ((step * accum + micro) * world + rank) * per_device
            indices = batch_indices(len(data), config.seed, first, per_device)
            if cache is not None:
                target_lat, image_lat, prompts = cache.batch(indices, gen, hflip=dcfg.hflip, swap=dcfg.swap_laterality)
            else:
                batch = data.batch(indices, gen, rotation=dcfg.rotation, hflip=dcfg.hflip, swap=dcfg.swap_laterality)
                target_lat, image_lat = encode_pixels(comps.vae, batch, gen, accelerator.device, frozen_dtype)
                prompts = batch.prompts
            sync = micro == accum - 1
            ctx = accelerator.no_sync(unet) if (not sync and world > 1) else _null()
            with ctx, accelerator.autocast():
                loss = micro_loss(unet, noise_scheduler, target_lat, image_lat, text(prompts), gen,
                                  config.conditioning_dropout, null_text, max_t)
            accelerator.backward(loss / accum)
            total += loss.detach() / accum
        if config.optim.max_grad_norm > 0:
            accelerator.clip_grad_norm_(unet.parameters(), config.optim.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(accelerator.unwrap_model(unet).parameters())
        step_loss = float(accelerator.reduce(total, reduction="mean"))
        losses.append(step_loss)
        done = step + 1
        if accelerator.is_main_process and (done % config.log_every == 0 or done == config.max_steps):
            now = time.time()
            sps = (now - t_last) / max(1, done - logged)
            _append_log(out / "log.csv", [done, f"{step_loss:.6f}", f"{lr_scheduler.get_last_lr()[0]:.3e}",
                                          f"{sps:.4f}", f"{per_device * world * accum / sps:.2f}",
                                          f"{now - t_run:.1f}"])
            say(f"step {done}: loss {step_loss:.4f} ({sps:.2f} s/step)")
            t_last, logged = now, done
        if done % config.checkpoint_every == 0 or done == config.max_steps:
            _checkpoint(accelerator, out, done, config, init, unet, ema)
        if val is not None and config.validation.every > 0 and (done % config.validation.every == 0
                                                                 or done == config.max_steps):
            if accelerator.is_main_process:
                _validate(accelerator.unwrap_model(unet), ema, comps, val, config, out / "validation" / f"step_{done:06d}.png")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return out / "model"


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _append_log(path: Path, row: list) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(LOG_COLUMNS)
        w.writerow(row)


def _find_checkpoint(path: Path) -> Path:
    if (path / "state.json").is_file():
        return path
    found = sorted((path / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1])) \
        if (path / "checkpoints").is_dir() else []
    found = [p for p in found if (p / "state.json").is_file()]
    if not found:
        raise UserError(f"`--resume` must be a checkpoint folder (with state.json) or a run folder with "
                        f"checkpoints/step_N, got {path}.")
    return found[-1]


def _checkpoint(accelerator, out: Path, step: int, config: EditorTrainConfig, init: Path, unet, ema) -> None:
    ckpt = out / "checkpoints" / f"step_{step:06d}"
    accelerator.save_state(str(ckpt))
    if accelerator.is_main_process:
        (ckpt / "state.json").write_text(json.dumps({"step": step, "config": config.name}) + "\n")
        export(accelerator.unwrap_model(unet), ema, init, out / "model", use_ema=config.export == "ema",
               info={"step": step, "config": config.name})
        old = sorted((out / "checkpoints").glob("step_*"))[:-config.keep_checkpoints]
        for p in old:
            shutil.rmtree(p, ignore_errors=True)
    accelerator.wait_for_everyone()


def export(unet, ema, init: Path, dest: Path, *, use_ema: bool, info: dict | None = None) -> Path:
    """Write a diffusers folder: the UNet (EMA weights when ``use_ema``) plus the frozen parts of
    ``init``, copied byte for byte. Written beside ``dest`` and renamed, so ``dest`` is always whole."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if use_ema:
        ema.store(unet.parameters())
        ema.copy_to(unet.parameters())
    try:
        unet.save_pretrained(tmp / "unet", safe_serialization=True)
    finally:
        if use_ema:
            ema.restore(unet.parameters())
    for sub in _SUBFOLDERS:
        shutil.copytree(Path(init) / sub, tmp / sub)
    index = json.loads((Path(init) / "model_index.json").read_text())
    for key in ("safety_checker", "feature_extractor", "image_encoder"):
        if key in index:
            index[key] = [None, None]
    index["requires_safety_checker"] = False
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    if info:
        (tmp / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


# ------------------------------------------------------------------------------------- validation
def _validation_set(config: EditorTrainConfig, root: Path, train_data: EditPairs):
    v = config.validation
    if v.samples <= 0 or v.every <= 0:
        return None
    from ix2x.data.mimic import MimicEditDataset

    try:
        ds = MimicEditDataset(root, config.data.val_split, v.samples)
    except Exception:  # no such split: fall back to the first training pairs
        ds = train_data.data
    samples = [ds[i] for i in range(min(v.samples, len(ds)))]
    return samples or None


@torch.no_grad()
def _validate(unet, ema, comps, samples, config: EditorTrainConfig, path: Path) -> None:
    from ix2x.diffusion import loop
    from ix2x.diffusion.editor import DiffusionEditorConfig, edit_images
    from ix2x.diffusion.loading import Components

    v = config.validation
    ecfg = DiffusionEditorConfig(model="(training)", steps=v.steps, text_scale=v.text_scale,
                                 image_scale=v.image_scale, tau=v.tau, resolution=config.data.resolution)
    was_training = unet.training
    unet.eval()
    ema.store(unet.parameters())
    ema.copy_to(unet.parameters())
    try:
        model = loop.Pix2PixModel(Components(unet, comps.vae, comps.text_encoder, comps.tokenizer,
                                             comps.scheduler_config, "training"))
        edits = edit_images(model, [s.image for s in samples], [s.instruction for s in samples],
                            [validation_seed(v.seed, i) for i in range(len(samples))], ecfg)
    finally:
        ema.restore(unet.parameters())
        unet.train(was_training)
    save_grid(path, [[s.image for s in samples], [e.image for e in edits],
                     [s.target if s.target is not None else s.image for s in samples]])


def save_grid(path: Path, rows: list[list[torch.Tensor]]) -> None:
    """PNG of (1, H, W) images in [0, 1], one list per row (resized to the first image's size)."""
    from PIL import Image

    size = tuple(rows[0][0].shape[-2:])
    fit = lambda x: resize.bilinear(x.float(), size)  # noqa: E731
    grid = torch.cat([torch.cat([fit(x) for x in row], dim=-1) for row in rows], dim=-2)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((grid[0].clamp(0, 1) * 255).round().byte().numpy(), mode="L").save(path)
