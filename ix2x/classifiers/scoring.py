"""The scoring state of one run, passed to its metrics: models built once, per-image caches, and
the evaluation size.

The runner makes one :class:`Scoring` per run and hands it to every metric (``metric.scoring``);
nothing of it lives at module level, so two runs in one process (or a test and the next) share
nothing. A metric used outside a run gets a private ``Scoring`` of its own on first use (see
``metrics._shared.scoring``).

Evaluation size. Pixel metrics compare images at the run's ``eval_size`` (the suite setting,
recorded in run.json): an image whose longer side exceeds it is downscaled, aspect kept, with the
antialiased bilinear resize torchxrayvision uses, so a 3,000 px radiograph costs about what a 512 px
one costs. Masks are resampled the same way and a low-resolution pixel belongs to a mask when any
full-resolution pixel it is computed from does (so "outside the region" stays strictly outside).
Classifiers see images at their own input size (``Classifier.input_size``), resized once from the
original here before the prediction cache keys them.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any, Mapping, Sequence

import torch

from ix2x import resize
from ix2x.classifiers.base import Classifier, Outputs, square_resize
from ix2x.images import content_key

PREDICTIONS_MAX = 8192  # per-image classifier outputs kept (a few hundred bytes each)


def eval_shape(h: int, w: int, size: int | None) -> tuple[int, int]:
    """``(h, w)`` scaled so that the longer side is at most ``size`` (None: unchanged)."""
    if size is None or max(h, w) <= size:
        return h, w
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_image(image: torch.Tensor, size: int | None) -> torch.Tensor:
    """``(1, H, W)`` image (or guidance map) in [0, 1] at the evaluation size."""
    shape = eval_shape(*image.shape[-2:], size)
    if tuple(image.shape[-2:]) == shape:
        return image
    return resize.antialiased(image.float(), shape, clamp=True)


def resize_mask(mask: torch.Tensor, size: int | None) -> torch.Tensor:
    """``(1, H, W)`` {0, 1} mask at the evaluation size: 1 where any source pixel is 1."""
    shape = eval_shape(*mask.shape[-2:], size)
    if tuple(mask.shape[-2:]) == shape:
        return mask
    # Antialiased: each low-resolution pixel averages its whole footprint, so > 0 means "any".
    return (resize.antialiased((mask >= 0.5).float(), shape) > 0).float()


class Scoring:
    """Per-run scoring state (see module doc).

    ``classifiers`` maps spec strings to ready classifier objects (tests, notebooks); other specs
    are built on first use from the ``ix2x.classifiers`` entry points
    (:func:`ix2x.classifiers.build_classifier`)."""

    def __init__(self, device: str | torch.device = "cpu", *, eval_size: int | None = None,
                 classifiers: Mapping[str, Classifier] | None = None, batch_size: int = 1) -> None:
        if eval_size is not None and (not isinstance(eval_size, int) or eval_size < 16):
            raise ValueError(f"`eval_size` must be an integer >= 16 or None, got {eval_size!r}.")
        self.device = torch.device(device)
        self.eval_size = eval_size
        self._classifiers: dict[str, Classifier] = dict(classifiers or {})
        self._tokens: dict[int, tuple[Any, int]] = {}  # id(model) -> (model kept alive, token)
        self._predictions: "OrderedDict[tuple[int, bytes], Outputs]" = OrderedDict()
        self._lpips: dict[tuple[str, bool], torch.nn.Module] = {}
        self._extractors: dict[str, Any] = {}
        self._segmenters: dict[str, Any] = {}
        self._resized: dict[tuple[int, str], tuple[weakref.ref, torch.Tensor]] = {}
        from ix2x.classifiers.lpips_net import FEATURE_CACHE_BYTES, WORKING_SET, TensorLRU

        # At least a batch's inputs, edits and targets: the metrics of a batch compare each of them
        # more than once, and a cache smaller than that sent them through the backbone again.
        self.features = TensorLRU(FEATURE_CACHE_BYTES, min_items=WORKING_SET * batch_size)

    # ------------------------------------------------------------------------------ models
    def classifier(self, spec: str) -> Classifier:
        """The classifier named by ``spec``, built on first use."""
        if spec not in self._classifiers:
            from ix2x.classifiers import build_classifier

            self._classifiers[spec] = build_classifier(spec, self.device)
        return self._classifiers[spec]

    def lpips(self, net: str = "alex", *, random_backbone: bool = False) -> torch.nn.Module:
        key = (net, random_backbone)
        if key not in self._lpips:
            from ix2x.classifiers.lpips_net import get_lpips

            self._lpips[key] = get_lpips(net, random_backbone=random_backbone, device=self.device)
        return self._lpips[key]

    def feature_extractor(self, spec: str) -> Any:
        """The feature extractor named by ``spec`` (:mod:`ix2x.classifiers.features`), built on first use."""
        if spec not in self._extractors:
            from ix2x.classifiers.features import build_features

            self._extractors[spec] = build_features(spec, self.device)
        return self._extractors[spec]

    def segmenter(self, spec: str) -> Any:
        """The chest segmenter named by ``spec`` (:mod:`ix2x.classifiers.segmentation`), built on first use."""
        if spec not in self._segmenters:
            from ix2x.classifiers.segmentation import build_segmenter

            self._segmenters[spec] = build_segmenter(spec, self.device)
        return self._segmenters[spec]

    def weight_files(self) -> dict[str, str]:
        """{weights file: SHA-256} of every model this run loaded (for run.json)."""
        out: dict[str, str] = {}
        for model in [*self._classifiers.values(), *self._lpips.values(), *self._extractors.values(),
                      *self._segmenters.values()]:
            out.update(getattr(model, "weight_files", None) or {})
        return dict(sorted(out.items()))

    def _token(self, model: Any) -> int:
        if id(model) not in self._tokens:  # the model is kept alive, so its id is never reused
            self._tokens[id(model)] = (model, len(self._tokens))
        return self._tokens[id(model)][1]

    # ------------------------------------------------------------------------- predictions
    def predict(self, classifier: Classifier, images: Sequence[torch.Tensor]) -> Outputs:
        """One ``Outputs`` for a list of ``(1, H, W)`` images, in order.

        Predictions are remembered per (classifier, image content): classifier_shift,
        demographic_preservation and cmig see the same inputs and edits, and every editor of a run
        sees the same inputs, so each image goes through each classifier once. Images not yet seen
        are predicted in one batch per shape."""
        size = getattr(classifier, "input_size", None)
        if size:
            images = [square_resize(im[None], size)[0] for im in images]
        token = self._token(classifier)
        keys = [(token, content_key(im)) for im in images]
        todo: dict[tuple, list[int]] = {}
        for i, key in enumerate(keys):
            if key not in self._predictions and all(keys[j] != key for j in todo.get(tuple(images[i].shape), [])):
                todo.setdefault(tuple(images[i].shape), []).append(i)
        for idx in todo.values():
            outs = classifier.predict(torch.stack([images[i] for i in idx]))
            for k, i in enumerate(idx):
                self._predictions[keys[i]] = outs.rows(k, k + 1)
        rows = [self._predictions[key] for key in keys]
        for key in keys:
            self._predictions.move_to_end(key)
        while len(self._predictions) > PREDICTIONS_MAX:
            self._predictions.popitem(last=False)
        return Outputs.concat(rows)

    # ----------------------------------------------------------------------- evaluation size
    def at_eval_size(self, t: torch.Tensor | None, kind: str = "image") -> torch.Tensor | None:
        """``t`` (an image, guidance map or mask: ``kind`` "image" or "mask") at the evaluation
        size; resized once per tensor for as long as the tensor lives (the metrics of a batch share
        the same inputs and edits)."""
        if t is None or eval_shape(*t.shape[-2:], self.eval_size) == tuple(t.shape[-2:]):
            return t
        key = (id(t), kind)
        hit = self._resized.get(key)
        if hit is not None and hit[0]() is t:
            return hit[1]
        out = resize_mask(t, self.eval_size) if kind == "mask" else resize_image(t, self.eval_size)
        self._resized[key] = (weakref.ref(t), out)
        weakref.finalize(t, self._resized.pop, key, None)
        return out
