"""Train the phantom text-to-image model (``ix2x/models/phantom_t2i``) that the text-to-image baselines
(``roentgen``, ``diffedit``, ``radedit``) run on in the ``phantom_baselines`` suite.

It reuses the shipped ``phantom_ix2x`` model's VAE, tokenizer, frozen text encoder and noise schedule, and
initialises its UNet from ``phantom_ix2x``'s UNet without the image-conditioning input channels (the
first ``latent_channels`` input channels of ``conv_in`` are the noisy latents'). Training images are
both sides of the phantom training pairs, captioned (``--captions``) with the dataset's report of each study
(``source_report`` / ``target_report``: every finding present, with level and side; what the
``phantom_baselines`` suite prompts with, ``prompt: dataset``), or with the sentence the instruction converts
to (:mod:`ix2x.data.prompts`, ``prompt: report``), or either at random.

A caption check runs before and after training (and every 1,000 steps): the denoising error of the default
suites' held-out test phantoms with each study's own caption, its pair partner's and the empty one, inside
the change mask, where only the caption says which study to draw. The first and last go to ``training.json``
(``caption_check_init``, ``caption_check_final``), the others to the console.

Run (seeded, CPU, one thread; generates the training phantoms on first use); the shipped model's stages
are in its model card::

    nice -n 10 python -m training.t2i_train --out runs/phantom_t2i --captions dataset --lr 3e-4 --max-minutes 55
    cp -r runs/phantom_t2i/model/. ix2x/models/phantom_t2i/
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F

SOURCE_MODEL = "builtin:phantom_ix2x"
# The default suites' data (held-out test split), for the caption check.
EVAL_DATA = {"n": 640, "seed": 0, "size": 128}
DATA = {"path": "data/phantom-train-s2000-128", "n": 4000, "seed": 2000, "size": 128, "splits": (0.98, 0.02, 0.0)}


CAPTIONS = ("dataset", "instruction", "mix")


def captions(instruction: str) -> tuple[str, str]:
    """(past caption, current caption): the source and target report prompts of the instruction."""
    from ix2x.data.prompts import prompts_for

    p = prompts_for(instruction, "report")
    return p.source, p.target


def t2i_unet_from(ip2p_unet, latent_channels: int):
    """A text-to-image UNet with ``ip2p_unet``'s weights, ``conv_in`` cut to the noisy-latent channels."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_config(ip2p_unet.config, in_channels=latent_channels)
    state = dict(ip2p_unet.state_dict())
    state["conv_in.weight"] = state["conv_in.weight"][:, :latent_channels].clone()
    unet.load_state_dict(state)
    return unet


ENCODE_BATCH = 64  # pairs per VAE batch: fixes the image order that partner() inverts


@torch.no_grad()
def encode_split(comps, root: Path, split: str, batch: int = ENCODE_BATCH, limit: int | None = None):
    """Both images of the first ``limit`` pairs of ``split``, per image: latent means, stds, captions
    (``{"dataset": ..., "instruction": ...}``: the dataset's report of the study, and the sentence the
    instruction converts to) and change masks at latent size. Past images come first, then current, per
    batch of pairs. Each pair is read once."""
    from ix2x.data.mimic import MimicEditDataset
    from ix2x import resize

    data = MimicEditDataset(root, split, limit)
    size = DATA["size"]
    means, stds, texts, masks = [], [], [], []
    for start in range(0, len(data), batch):
        samples = [data[i] for i in range(start, min(len(data), start + batch))]
        x = torch.stack([resize.antialiased(im.float(), (size, size), clamp=True)
                         for im in [s.image for s in samples] + [s.target for s in samples]])
        dist = comps.vae.encode((x * 2 - 1).repeat(1, 3, 1, 1)).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
        region = F.adaptive_max_pool2d(torch.stack([s.region for s in samples]).float(), dist.mean.shape[-2:])
        masks.append(torch.cat([region, region]))
        for study, report in ((0, "source_report"), (1, "target_report")):
            texts += [{"dataset": s.labels[report], "instruction": captions(s.instruction)[study]} for s in samples]
    return torch.cat(means), torch.cat(stds), texts, torch.cat(masks)


def partner(n_images: int, batch: int = ENCODE_BATCH) -> torch.Tensor:
    """Index of each image's pair partner (past <-> current) in :func:`encode_split`'s order."""
    out = torch.empty(n_images, dtype=torch.long)
    n_pairs = n_images // 2
    for start in range(0, n_pairs, batch):
        k = min(batch, n_pairs - start)
        base = 2 * start
        out[base:base + k] = torch.arange(base + k, base + 2 * k)
        out[base + k:base + 2 * k] = torch.arange(base, base + k)
    return out


@torch.no_grad()
def encode_texts(comps, texts: list[str]) -> tuple[torch.Tensor, dict[str, int], int]:
    """(embedding table of the distinct texts and the empty one, row of each text, row of the empty one)."""
    unique = sorted(set(texts) | {""})
    tok = comps.tokenizer
    ids = tok(unique, padding="max_length", max_length=tok.model_max_length, truncation=True,
              return_tensors="pt").input_ids
    emb = comps.text_encoder(ids)[0]
    index = {t: i for i, t in enumerate(unique)}
    return emb, index, index[""]


def loss_on(unet, sched, scale, mean, std, emb, gen, max_t):
    latents = (mean + std * torch.randn(mean.shape, generator=gen)) * scale
    noise = torch.randn(latents.shape, generator=gen)
    t = torch.randint(0, max_t, (latents.shape[0],), generator=gen)
    pred = unet(sched.add_noise(latents, noise, t), t, encoder_hidden_states=emb, return_dict=False)[0]
    return F.mse_loss(pred, noise)


@torch.no_grad()
def caption_check(unet, sched, scale, mean, std, masks, emb_by_caption: dict[str, torch.Tensor],
                  seed: int = 7, draws: int = 4) -> dict[str, dict[str, float]]:
    """Does the model follow its captions? Denoising error (epsilon MSE; the same noise and timesteps for
    every caption) of each image with each caption set in ``emb_by_caption`` (e.g. its own, its pair
    partner's, the empty one), over the whole latent and inside the change mask, where the two studies of a
    pair differ and so where only the caption can tell the model which one to draw."""
    max_t = int(sched.config.num_train_timesteps)
    g = torch.Generator().manual_seed(seed)
    sums = {k: [0.0, 0.0] for k in emb_by_caption}
    for _ in range(draws):
        latents = (mean + std * torch.randn(mean.shape, generator=g)) * scale
        noise = torch.randn(latents.shape, generator=g)
        t = torch.randint(0, max_t, (latents.shape[0],), generator=g)
        noisy = sched.add_noise(latents, noise, t)
        for name, emb in emb_by_caption.items():
            err = (unet(noisy, t, encoder_hidden_states=emb, return_dict=False)[0] - noise) ** 2
            sums[name][0] += float(err.mean())
            sums[name][1] += float((err * masks).sum() / (masks.sum() * err.shape[1]))
    return {k: {"whole": round(v[0] / draws, 5), "in_mask": round(v[1] / draws, 5)} for k, v in sums.items()}


def init_unet(comps, latent: int, init: str | None):
    """The UNet training starts from: ``phantom_ix2x``'s cut to text-to-image, or a text-to-image folder's."""
    if init is None:
        return t2i_unet_from(comps.unet, latent)
    from diffusers import UNet2DConditionModel

    from ix2x.diffusion.loading import builtin_model_path

    folder = builtin_model_path(init) if init.startswith("builtin:") else Path(init)
    return UNet2DConditionModel.from_pretrained(folder / "unet", use_safetensors=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/phantom_t2i")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--caption-dropout", type=float, default=0.1)
    ap.add_argument("--captions", choices=CAPTIONS, default="mix",
                    help="dataset: each study's report (its findings); instruction: the sentence the instruction "
                         "converts to; mix: either, half the time each (default)")
    ap.add_argument("--init", default=None,
                    help="start from this text-to-image folder's UNet (e.g. builtin:phantom_t2i to continue); "
                         "default: phantom_ix2x's UNet cut to text-to-image")
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", type=int, default=None, help="train on the first N training pairs (default all)")
    ap.add_argument("--max-minutes", type=float, default=22.0, help="stop the training loop early (and say so) after this wall time")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from diffusers import DDPMScheduler

    from ix2x.data.phantom import generate
    from ix2x.data.sources import phantom_dir
    from ix2x.diffusion.loading import builtin_model_path, load_components
    from ix2x.suite import PhantomSpec

    t0 = time.time()
    root = Path(DATA["path"])
    if not (root / "instructions.csv").is_file() or \
            "target_report" not in (root / "instructions.csv").read_text().split("\n", 1)[0]:
        generate(root, DATA["n"], seed=DATA["seed"], size=DATA["size"], splits=DATA["splits"], progress=False)
    comps = load_components(SOURCE_MODEL)
    scale = float(comps.vae.config.scaling_factor)
    latent = int(comps.vae.config.latent_channels)
    mean, std, texts, _ = encode_split(comps, root, "train", limit=args.pairs)
    vmean, vstd, vtexts, _ = encode_split(comps, root, "val")
    # Held out: the default suites' test pairs (generator seed 0), never trained on.
    test_root = phantom_dir(PhantomSpec(**EVAL_DATA))
    emean, estd, etexts, emasks = encode_split(comps, test_root, "test")
    kinds = ("dataset", "instruction")
    every = [t[k] for t in texts + vtexts + etexts for k in kinds]
    emb_table, index, empty = encode_texts(comps, every)
    ids = lambda ts, k: torch.tensor([index[t[k]] for t in ts])  # noqa: E731
    tidx = torch.stack([ids(texts, k) for k in kinds])          # (2, n): caption kind x image
    vcap = "instruction" if args.captions == "instruction" else "dataset"
    vidx = ids(vtexts, vcap)
    sched = DDPMScheduler.from_config(comps.scheduler_config)
    max_t = int(sched.config.num_train_timesteps)
    print(f"encoded {len(texts)} train / {len(vtexts)} val / {len(etexts)} test images, {len(emb_table)} captions "
          f"in {time.time() - t0:.0f} s", flush=True)

    def check(model) -> dict:
        pt = partner(len(etexts))
        out = {}
        for k in kinds:
            own = ids(etexts, k)
            out[k] = caption_check(model, sched, scale, emean, estd, emasks,
                                   {"own": emb_table[own], "partner": emb_table[own[pt]],
                                    "empty": emb_table[torch.full_like(own, empty)]})
        return out

    unet = init_unet(comps, latent, args.init).train()
    unet.requires_grad_(True)
    ema = copy.deepcopy(unet).requires_grad_(False).eval()
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(args.seed)

    def val_loss(model) -> float:
        g = torch.Generator().manual_seed(1234)
        with torch.no_grad():
            return float(loss_on(model, sched, scale, vmean, vstd, emb_table[vidx], g, max_t))

    init_check = check(ema)
    print({"caption_check_init": init_check}, flush=True)
    t_train = time.time()
    log = [{"step": 0, "val_loss_ema": val_loss(ema)}]
    print(log[-1], flush=True)
    step = 0
    for step in range(1, args.steps + 1):
        pick = torch.randint(0, len(texts), (args.batch,), generator=gen)
        if args.captions == "mix":
            kind = (torch.rand(args.batch, generator=gen) < 0.5).long()
        else:
            kind = torch.full((args.batch,), kinds.index(args.captions))
        cap = tidx[kind, pick].clone()
        cap[torch.rand(args.batch, generator=gen) < args.caption_dropout] = empty
        loss = loss_on(unet, sched, scale, mean[pick], std[pick], emb_table[cap], gen, max_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.lerp_(p, 1 - args.ema)
        if step % 100 == 0:
            log.append({"step": step, "train_loss": float(loss), "val_loss_ema": val_loss(ema),
                        "minutes": round((time.time() - t0) / 60, 1)})
            print(log[-1], flush=True)
        if step % 1000 == 0:
            print({"step": step, "caption_check": check(ema)}, flush=True)
        if (time.time() - t_train) / 60 > args.max_minutes:
            print(f"stopping at step {step}: wall-time limit {args.max_minutes} min", flush=True)
            break
    out = Path(args.out) / "model"
    export(ema, builtin_model_path(SOURCE_MODEL), out)
    info = {"steps": step, "args": vars(args), "data": {k: str(v) for k, v in DATA.items()},
            "eval_data": EVAL_DATA, "log": log, "minutes": round((time.time() - t0) / 60, 1),
            "caption_check_init": init_check, "caption_check_final": check(ema), "val_loss_final_ema": val_loss(ema)}
    (out / "training.json").write_text(json.dumps(info, indent=1))
    print(json.dumps({k: v for k, v in info.items() if k != "log"}), flush=True)


def export(unet, source: Path, out: Path) -> Path:
    """A StableDiffusionPipeline folder: the trained UNet plus ``source``'s VAE, text encoder, tokenizer and
    scheduler."""
    out.mkdir(parents=True, exist_ok=True)
    for part in ("vae", "text_encoder", "tokenizer", "scheduler"):
        shutil.copytree(source / part, out / part, dirs_exist_ok=True)
    unet.save_pretrained(out / "unet", safe_serialization=True)
    index = json.loads((source / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionPipeline"
    (out / "model_index.json").write_text(json.dumps(index, indent=2))
    return out


if __name__ == "__main__":
    main()
