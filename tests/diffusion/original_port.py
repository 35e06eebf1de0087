"""A port of the original InstructX2X inference, ``InstructPix2Pix.edit_image`` and the methods it calls,
written from ``inference/rse_x2x.py`` of github.com/hgminn/InstructX2X (commit b31bc7f3). It is the
reference that ``original: true`` is tested against, so it is kept out of the package and follows the
original line by line; the method names are the original's.

Adaptations, each needed to run it on a CPU with explicit random draws and a small model:
- Random draws: the original calls ``posterior.sample()`` and ``torch.randn_like`` on the global CUDA
  generator; here the same calls take a CPU generator. The start latents and the start noise come from
  ``gen`` (in that order), ``original_latents`` and the relevance noise from ``rel_gen`` (in that order):
  the order of the original's calls within each stream.
- Sizes: the original hard-codes 512 px, 64 latents, ``CONST_SCALE = 0.18215`` (Stable Diffusion's VAE
  factor) and ``num_train_timesteps = 1000``; here they are the model's image size, latent size, VAE
  ``scaling_factor`` and the scheduler's ``num_train_timesteps``. A 512 x 512 mask file is resized
  (nearest) to the image size.
- fp32, no autocast, no CPU offload; the mask folder is a parameter (the original: ``masks`` relative to
  the working directory).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# Verbatim from integrate_masks.
VALID_CATEGORIES = ['fracture', 'thymoma', 'tortuosity of the descending aorta ', 'blunting of the costophrenic angle',
                    'atelectasis', 'hilar congestion', 'hernia', 'cardiomegaly', 'consolidation', 'Effusion',
                    'tortuosity of the thoracic aorta ', 'vascular congestion', 'pleural thickening', 'granuloma',
                    'lung opacity', 'contusion', 'hypertensive heart disease', 'heart failure', 'gastric distention',
                    'pneumomediastinum', 'calcification', 'infection', 'air collection', 'pneumonia',
                    'enlargement of the cardiac silhouette', 'edema', 'emphysema', 'scoliosis', 'hypoxemia',
                    'hematoma', 'pneumothorax']

# CompVis/stable-diffusion-v1-4 scheduler/scheduler_config.json, which the original loads into DDIM.
SD14_SCHEDULER = {"beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                  "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True,
                  "steps_offset": 1, "trained_betas": None, "clip_sample": False}


class OriginalInstructPix2Pix:
    def __init__(self, unet, vae, scheduler, masks_source: str | Path, gen: torch.Generator,
                 rel_gen: torch.Generator) -> None:
        self.unet, self.auto_encoder, self.scheduler = unet, vae, scheduler
        self.num_train_timesteps = scheduler.config.num_train_timesteps
        self.const_scale = vae.config.scaling_factor
        self.masks_source = Path(masks_source)
        self.gen, self.rel_gen = gen, rel_gen
        self.device = torch.device("cpu")

    @torch.no_grad()
    def edit_image(self, cond_embedding, uncond_embedding, image, image_cond, edit: str, mask_threshold=0.5,
                   guidance_scale: float = 7.5, image_guidance_scale: float = 1.5, diffusion_steps: int = 100,
                   wys_noise_level: float = 0.8):
        image, image_cond = (image + 1) / 2, (image_cond + 1) / 2
        self.scheduler.set_timesteps(diffusion_steps)

        latents = self.imgs_to_latent(image, self.gen)
        image_cond_latents = self.prepare_image_latents(image_cond)
        noise = torch.randn(latents.shape, generator=self.gen)  # randn_like(latents)

        original_latents = self.imgs_to_latent(image_cond, self.rel_gen)
        heatmap, heatmap_hq, diff_map_hq = self.predict_mask(original_latents, cond_embedding, uncond_embedding,
                                                             image, noise_level=wys_noise_level, edit=edit)
        mask_latent = (heatmap >= mask_threshold).float()
        mask = (heatmap_hq >= mask_threshold).float()
        filtered_heatmap_hq = torch.where(heatmap_hq >= mask_threshold, heatmap_hq, torch.zeros_like(heatmap_hq))
        text_embedding = torch.cat([cond_embedding, uncond_embedding, uncond_embedding], dim=0)
        latents = self.scheduler.add_noise(latents, noise, self.scheduler.timesteps[0])

        for i, t in enumerate(self.scheduler.timesteps):
            latent_model_input = torch.cat([latents] * 3)
            latent_model_input = torch.cat([latent_model_input, image_cond_latents], dim=1)
            outputs = self.unet(latent_model_input, t, encoder_hidden_states=text_embedding).sample
            noise_pred_text, noise_pred_image, noise_pred_uncond = outputs.chunk(3)
            noise_pred = (noise_pred_uncond
                          + guidance_scale * (noise_pred_text - noise_pred_image)
                          + image_guidance_scale * (noise_pred_image - noise_pred_uncond))
            latents = self.scheduler.step(noise_pred, t, latents).prev_sample
            tmp = self.scheduler.add_noise(original_latents, noise, self.scheduler.timesteps[i])
            latents = latents * mask_latent + tmp * (1 - mask_latent)

        decoded_img = self.latents_to_img(latents)
        assert decoded_img.shape[2:] == image_cond.shape[2:]  # the original's Resize is then the identity
        decoded_img = decoded_img * mask + image_cond * (1 - mask)
        # The original returns the red overlay of filtered_heatmap_hq; its G is what is compared.
        return decoded_img * 2 - 1, filtered_heatmap_hq

    def get_noise_diff(self, noise_cond, noise_uncond):
        diff = (noise_cond - noise_uncond).abs()[0].sum(dim=0).detach().cpu().numpy()
        # np.percentile(..., interpolation='midpoint') in the original; `method` is its current name.
        Q1 = np.percentile(diff, 25, method='midpoint')
        Q3 = np.percentile(diff, 75, method='midpoint')
        IQR = Q3 - Q1
        up_lim = Q3 + 1.5 * IQR
        diff = np.clip(diff, 0, up_lim)
        diff = (diff - diff.min()) / (diff.max() - diff.min())
        return diff

    def get_noise_preds(self, latents, image_cond_latents, text_embedding, noise_level):
        t = torch.tensor([int(noise_level * self.num_train_timesteps)])
        noisy_latents = self.scheduler.add_noise(latents, torch.randn(latents.shape, generator=self.rel_gen), t)
        latent_model_input = torch.cat([noisy_latents] * 3)
        latent_model_input = torch.cat([latent_model_input, image_cond_latents], dim=1)
        outputs = self.unet(latent_model_input, t.item(), encoder_hidden_states=text_embedding).sample
        return outputs.chunk(3)

    def predict_mask(self, latents, cond_embedding, uncond_embedding, image, noise_level, edit):
        image_cond_latents = self.prepare_image_latents(image)
        text_embedding = torch.cat([cond_embedding, uncond_embedding, uncond_embedding], dim=0)
        noise_pred_text, noise_pred_image, _ = self.get_noise_preds(latents, image_cond_latents, text_embedding,
                                                                    noise_level)
        diff = self.get_noise_diff(noise_pred_text, noise_pred_image)
        diff_map = torch.from_numpy(diff[None, None, ...])
        diff_map_hq = F.interpolate(diff_map, size=image.size()[2:], mode="bilinear")
        heatmap, heatmap_hq = self.integrate_masks(edit, diff_map.squeeze(0).squeeze(0),
                                                   diff_map_hq.squeeze(0).squeeze(0), image.shape[-1],
                                                   latents.shape[-1])
        return heatmap[None, None], heatmap_hq[None, None], diff_map_hq

    def integrate_masks(self, edit_text, diff_map, diff_map_hq, size, latent_size):
        found_categories = []
        for category in VALID_CATEGORIES:
            if category.lower() in edit_text.lower():
                found_categories.append(category)

        combined_pseudo_mask = torch.zeros((size, size))
        if not found_categories:
            combined_pseudo_mask = torch.ones((size, size))
        else:
            for category in found_categories:
                try:
                    formatted_category = category.title()
                    pseudo_mask = self.load_mask(self.masks_source / f'pseudo_mask_{formatted_category}.npy', size)
                    combined_pseudo_mask = torch.maximum(combined_pseudo_mask, pseudo_mask)
                except FileNotFoundError:
                    combined_pseudo_mask = torch.ones((size, size))

        combined_pseudo_mask_latent = F.interpolate(combined_pseudo_mask[None, None], size=(latent_size, latent_size),
                                                    mode='bilinear').squeeze()
        final_mask_hq = combined_pseudo_mask * diff_map_hq
        final_mask = combined_pseudo_mask_latent * diff_map
        return final_mask, final_mask_hq

    @staticmethod
    def load_mask(path: Path, size: int) -> torch.Tensor:
        m = torch.from_numpy(np.load(path))  # raises FileNotFoundError as the original's np.load does
        return F.interpolate(m[None, None].float(), size=(size, size), mode="nearest")[0, 0]

    def latents_to_img(self, latents):
        latents = 1 / self.const_scale * latents
        imgs = self.auto_encoder.decode(latents).sample
        return (imgs / 2 + 0.5).clamp(0, 1)

    def imgs_to_latent(self, imgs, generator):
        imgs = 2 * imgs - 1
        posterior = self.auto_encoder.encode(imgs).latent_dist
        return posterior.sample(generator=generator) * self.const_scale

    def prepare_image_latents(self, imgs):
        imgs = 2 * imgs - 1
        image_latents = self.auto_encoder.encode(imgs).latent_dist.mode()
        uncond_image_latent = torch.zeros_like(image_latents)
        return torch.cat([image_latents, image_latents, uncond_image_latent], dim=0)


def encode_prompt(tokenizer, text_encoder, edit: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(cond, uncond) embeddings as the original's ``pipe._encode_prompt(edit, negative_prompt="")``: both
    padded to the tokenizer's max length."""
    def enc(text):
        ids = tokenizer([text], padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids
        return text_encoder(ids)[0]

    with torch.no_grad():
        return enc(edit), enc("")
