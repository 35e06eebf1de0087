"""Settings of ``ix2x train`` (InstructPix2Pix-architecture editors). No torch import: the CLI reads
these for ``--help`` and validates a YAML file before anything heavy loads.

A config file is one YAML mapping of :class:`EditorTrainConfig`; unknown keys are errors. The
defaults are the original InstructX2X recipe (``training/configs/instructx2x.yaml`` spells them out).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ix2x.errors import UserError


@dataclass(frozen=True)
class PhantomData:
    """Phantom pairs generated into ``DataConfig.path`` when that folder has no ``instructions.csv``.
    Use a seed the benchmark suites do not use (they use 0) so no held-out pair is a training pair."""

    n: int = 4000
    seed: int = 2000
    size: int = 128
    splits: tuple[float, ...] = (0.98, 0.02, 0.0)


@dataclass(frozen=True)
class DataConfig:
    """``path``: a MIMIC-EDIT-INSTRUCTION folder (``source: dir``) or where phantoms are generated
    (``source: phantom``). Past image = conditioning, current image = target. ``rotation`` (degrees,
    uniform in +-rotation, the same for both images of a pair) and ``hflip`` (probability; "left" and
    "right" are swapped in the instruction when ``swap_laterality``) are the original's augmentations.
    ``preload`` keeps every training image in memory (small data sets)."""

    source: Literal["dir", "phantom"] = "dir"
    path: str = "data/mimic-edit-instruction"
    phantom: PhantomData = PhantomData()
    split: str = "train"
    val_split: str = "val"
    limit: int | None = None
    resolution: int = 512
    rotation: float = 2.0
    hflip: float = 0.5
    swap_laterality: bool = True
    preload: bool = False
    cache_text: bool = False  # cache text embeddings per instruction (the text encoder is frozen)
    cache_latents: bool = False  # encode every pair (and its mirror) once; needs rotation 0


@dataclass(frozen=True)
class SmallModel:
    """A model built from scratch (``model.init: small``): a UNet, a 2**(len(vae_channels)-1)-times
    downsampling AutoencoderKL trained first on the training images (``vae_*``), a frozen random CLIP
    text encoder and a tokenizer whose merges spell the words of the training instructions.

    ``train_timesteps`` < 1000 keeps the first ``train_timesteps`` steps of Stable Diffusion's noise
    schedule (same betas), so samplers built from the saved scheduler start from the input noised to
    about that timestep (better edits than from pure noise for small models, measured on phantoms)."""

    unet_channels: tuple[int, ...] = (32, 64, 128)
    layers_per_block: int = 1
    cross_attention_dim: int = 64
    attention_head_dim: int = 8
    norm_num_groups: int = 16
    vae_channels: tuple[int, ...] = (32, 64, 64)
    latent_channels: int = 4
    text_layers: int = 2
    text_heads: int = 4
    text_intermediate: int = 128
    max_tokens: int = 24
    train_timesteps: int = 1000
    vae_steps: int = 1500
    vae_batch_size: int = 32
    vae_lr: float = 1e-3
    vae_kl_weight: float = 1e-6
    vae_precision: Literal["no", "bf16"] = "bf16"
    vae_crop: int | None = None  # train the (fully convolutional) VAE on random crops of this side


@dataclass(frozen=True)
class ModelConfig:
    """``init``: a diffusers InstructPix2Pix folder or hub id to fine-tune (an original ``.ckpt``
    converts first with ``ix2x convert``), or ``small`` to build :class:`SmallModel` from scratch."""

    init: str = "timbrooks/instruct-pix2pix"
    small: SmallModel = SmallModel()


@dataclass(frozen=True)
class OptimConfig:
    """AdamW. ``kind``: ``adamw`` (torch; ``fused`` "auto" = fused on CUDA) or ``adamw_8bit``
    (bitsandbytes, CUDA only). ``schedule``: a diffusers ``get_scheduler`` name."""

    kind: Literal["adamw", "adamw_8bit"] = "adamw"
    lr: float = 1e-4
    betas: tuple[float, ...] = (0.9, 0.999)
    weight_decay: float = 1e-2
    eps: float = 1e-8
    max_grad_norm: float = 1.0
    schedule: str = "constant"
    warmup_steps: int = 0
    fused: Literal["auto", "on", "off"] = "auto"


@dataclass(frozen=True)
class ValidationConfig:
    """Edits of ``samples`` fixed pairs of ``data.val_split`` (or the training split when it is empty),
    saved as ``validation/step_XXXXXX.png`` (rows: input, edit, target), with the EMA weights."""

    every: int = 500
    samples: int = 4
    steps: int = 20
    text_scale: float = 7.5
    image_scale: float = 1.5
    tau: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class EditorTrainConfig:
    """Everything ``ix2x train`` needs. The effective batch is ``per_device_batch_size x devices x
    grad_accumulation``; with ``effective_batch_size`` set, ``grad_accumulation`` is derived from it
    at launch (an error when it does not divide). ``mixed_precision`` "auto": bf16 on CUDA devices that
    support it, else fp16 on CUDA, none on the CPU. ``conditioning_dropout`` p: text dropped for 2p of
    the samples, image for 2p, both for p (InstructPix2Pix's scheme: p / p / p exclusive)."""

    name: str = "instructx2x"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    validation: ValidationConfig = ValidationConfig()
    max_steps: int = 4500
    per_device_batch_size: int = 4
    grad_accumulation: int = 32
    effective_batch_size: int | None = 1024
    ema_decay: float = 0.9999
    ema_warmup: bool = False
    ema_power: float = 0.6666666666666666
    export: Literal["ema", "raw"] = "ema"
    conditioning_dropout: float = 0.05
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    gradient_checkpointing: bool = True
    allow_tf32: bool = True
    seed: int = 42
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    threads: int | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.max_steps >= 1, "`max_steps` must be >= 1"),
            (self.per_device_batch_size >= 1, "`per_device_batch_size` must be >= 1"),
            (self.grad_accumulation >= 1, "`grad_accumulation` must be >= 1"),
            (0.0 <= self.conditioning_dropout <= 1 / 3, "`conditioning_dropout` must be in [0, 1/3]"),
            (0.0 <= self.ema_decay < 1.0, "`ema_decay` must be in [0, 1)"),
            (self.checkpoint_every >= 1 and self.log_every >= 1, "`checkpoint_every` and `log_every` must be >= 1"),
            (0.0 <= self.data.hflip <= 1.0, "`data.hflip` must be in [0, 1]"),
            (self.data.resolution % 8 == 0, "`data.resolution` must be a multiple of 8"),
            (1 <= self.model.small.train_timesteps <= 1000, "`model.small.train_timesteps` must be in [1, 1000]"),
            (not self.data.cache_latents or self.data.rotation == 0,
             "`data.cache_latents` needs `data.rotation: 0` (latents are cached for the image and its mirror)"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"{message}, got {self!r}.")

    def accumulation(self, world_size: int) -> int:
        """Gradient accumulation steps on ``world_size`` devices."""
        if self.effective_batch_size is None:
            return self.grad_accumulation
        per_step = self.per_device_batch_size * world_size
        if self.effective_batch_size % per_step:
            raise UserError(
                f"`effective_batch_size` must be a multiple of per_device_batch_size x devices = "
                f"{self.per_device_batch_size} x {world_size}, got {self.effective_batch_size}. Change "
                f"per_device_batch_size, or set effective_batch_size: null and grad_accumulation.")
        return self.effective_batch_size // per_step


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> EditorTrainConfig:
    """Read a YAML config; ``overrides`` are top-level keys applied after the file."""
    import yaml

    from ix2x.configs import build

    path = Path(path)
    if not path.is_file():
        raise UserError(f"`--config` must be a YAML file, got {path} (not found). Built-in configs: "
                        f"{', '.join(sorted(p.name for p in configs_dir().glob('*.yaml')))} in {configs_dir()}.")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise UserError(f"`--config` {path} must hold a YAML mapping, got {type(raw).__name__}.")
    raw.update(overrides or {})
    return build(EditorTrainConfig, raw, where=f"training config {path}")


def configs_dir() -> Path:
    return Path(__file__).parent / "configs"


def as_dict(config: EditorTrainConfig) -> dict[str, Any]:
    import dataclasses

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


__all__ = ["EditorTrainConfig", "DataConfig", "PhantomData", "SmallModel", "ModelConfig", "OptimConfig",
           "ValidationConfig", "load_config", "configs_dir", "as_dict"]
