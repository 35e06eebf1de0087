"""An independent implementation of RadEdit's released editing algorithm, written from its public
description, the reference of tests/editors/test_radedit_released.py. Not package code.

Sources: the edit-friendly DDPM inversion of Huberman-Spiegelglas et al. (CVPR 2024; the
``inversion_forward_process`` / ``reverse_step`` functions of their public code, which RadEdit's Hub
``pipeline.py`` reuses), RadEdit's ``inversion_reverse_process_two_masks`` as discussion #12 on
huggingface.co/microsoft/radedit describes it, and the released call (empty inversion prompt, eta 1,
``skip_ratio``). Everything is written out from the formulas: x_t ~ q(x_t | x0) independently per step; the
DDPM mean mu_t = sqrt(a_prev) x0_pred + sqrt(1 - a_prev - var_t) eps with var_t = (1 - a_prev) / (1 - a_t)
(1 - a_t / a_prev); z_t = (x_{t-1} - mu_t) / sqrt(var_t); reverse x_{t-1} = mu_t + sqrt(var_t) z_t.
Random draws (one CPU generator): the VAE posterior sample, then x_t from the least noisy.
"""

from __future__ import annotations

import torch


def encode(tokenizer, text_encoder, prompt: str) -> torch.Tensor:
    ids = tokenizer([prompt], padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return text_encoder(ids)[0]


class Schedule:
    def __init__(self, scheduler, steps: int) -> None:
        scheduler.set_timesteps(steps)
        self.timesteps = [int(t) for t in scheduler.timesteps]
        self.a = scheduler.alphas_cumprod
        self.final = scheduler.final_alpha_cumprod
        self.gap = scheduler.config.num_train_timesteps // steps

    def a_prev(self, t: int):
        return self.a[t - self.gap] if t - self.gap >= 0 else self.final

    def var(self, t: int):
        a_t, a_prev = self.a[t], self.a_prev(t)
        return (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)

    def mean(self, x, eps, t: int):
        a_t, a_prev = self.a[t], self.a_prev(t)
        x0_pred = (x - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
        return a_prev ** 0.5 * x0_pred + (1 - a_prev - self.var(t)) ** 0.5 * eps


@torch.no_grad()
def invert(unet, schedule: Schedule, x0, uncond, g):
    ts, n = schedule.timesteps, len(schedule.timesteps)
    xts = [x0] + [None] * n
    for t in reversed(ts):  # least noisy first
        j = n - ts.index(t)
        xts[j] = x0 * schedule.a[t] ** 0.5 + torch.randn(x0.shape, generator=g) * (1 - schedule.a[t]) ** 0.5
    zs = [None] * n
    for t in ts:
        idx = n - ts.index(t) - 1
        eps = unet(xts[idx + 1], t, encoder_hidden_states=uncond).sample
        mu = schedule.mean(xts[idx + 1], eps, t)
        zs[idx] = (xts[idx] - mu) / schedule.var(t) ** 0.5
        xts[idx] = mu + schedule.var(t) ** 0.5 * zs[idx]
    zs[0] = torch.zeros_like(zs[0])
    return xts, zs


@torch.no_grad()
def radedit(unet, vae, tokenizer, text_encoder, scheduler, image, prompt: str, seed: int, *, steps: int,
            skip_ratio: float, guidance: float, edit, keep, release_quirks: bool) -> torch.Tensor:
    """``image`` (1, H, W) in [0, 1]; ``edit`` / ``keep`` (1, 1, h, w) latent masks (``keep`` None: no paste).
    Returns the edited image (1, H, W) in [0, 1] (channel mean of the decoded RGB)."""
    g = torch.Generator().manual_seed(seed)
    sf = vae.config.scaling_factor
    x = (image * 2 - 1).repeat(3, 1, 1)[None]
    x0 = vae.encode(x).latent_dist.sample(generator=g) * sf
    schedule = Schedule(scheduler, steps)
    uncond, cond = encode(tokenizer, text_encoder, ""), encode(tokenizer, text_encoder, prompt)
    xts, zs = invert(unet, schedule, x0, uncond, g)
    if not release_quirks:
        xts[0] = x0  # the fix keeps x0's slot (the released correction can write NaN there)
    n = len(zs)
    skip = int(n * skip_ratio)
    xt = xts[n - skip]
    for t in schedule.timesteps[skip:]:
        idx = n - schedule.timesteps.index(t) - 1
        e_u = unet(xt, t, encoder_hidden_states=uncond).sample
        e_c = unet(xt, t, encoder_hidden_states=cond).sample
        eps = e_u + guidance * edit * (e_c - e_u)
        xt = schedule.mean(xt, eps, t) + schedule.var(t) ** 0.5 * zs[idx]
        if keep is not None:
            paste = xts[idx + 1] if release_quirks else xts[idx]
            xt = keep * paste + (1 - keep) * xt
            if release_quirks:
                xt = edit * xt + (1 - edit) * xts[idx + 1]
    out = vae.decode(xt / sf).sample
    return (out / 2 + 0.5).clamp(0, 1).mean(dim=1)
