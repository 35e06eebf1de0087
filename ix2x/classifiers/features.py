"""Image feature extractors for distribution-level metrics (FID, KID: the ``realism`` metric).

A spec string names one, as classifier specs do::

    phantom                              the shipped phantom classifier's penultimate layer (128-d)
    phantom:PATH.safetensors             the same layer of a phantom CNN trained by ``ix2x train-classifier``
    xrv:densenet121-res224-all[=PATH]    torchxrayvision's DenseNet, pooled features before the
                                         classifier (1024-d; ``DenseNet.features2``), xrv's cache or PATH
    inception[=PATH]                     torchvision's Inception-v3 pool features (2048-d), weights from
                                         ``$TORCH_HOME/hub/checkpoints/inception_v3_google-0cc3c7bd.pth`` or PATH

Why chest-X-ray features are the default: Inception was trained on ImageNet photographs; on
radiographs most of its 2048 channels respond to texture statistics no reader cares about, and
FID on them ranks medical generators differently from readers (CheXGenBench and others report FID on
XRV-DenseNet features for that reason). A chest-X-ray network's features move with findings and
anatomy. Inception is here only to put a number beside papers that report it; note that torchvision's
Inception weights are not the TF-ported "FID Inception" of pytorch-fid / torch-fidelity, so values
are comparable in kind, not digit for digit.

Every extractor runs its network in fixed chunks of :data:`~ix2x.classifiers.base.CHUNK` images
(:func:`~ix2x.classifiers.base.fixed_chunks`), so an image's features do not depend on the batch it
came in. Weights load as the classifiers' do (restricted unpickling, no download).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ix2x.classifiers.base import fixed_chunks, sha256_of, square_resize
from ix2x.errors import MissingWeightsError, UserError

INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"
INCEPTION_URL = "https://download.pytorch.org/models/" + INCEPTION_FILE
FORMS = "phantom[:PATH.safetensors], xrv:densenet121-res224-*[=PATH] or inception[=PATH]"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class FeatureExtractor:
    """A frozen network that maps harness images ``(B, 1, H, W)`` in [0, 1] to float32 features
    ``(B, dim)``. Subclasses set ``name``, ``dim``, ``weight_files`` and implement ``_features``."""

    name: str = ""
    dim: int = 0

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.weight_files: dict[str, str] = {}

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, dim)`` float32 CPU features of ``images`` ``(B, 1, H, W)`` in [0, 1]."""
        if images.dim() != 4 or images.shape[1] != 1:
            raise ValueError(f"`images` must have shape (B, 1, H, W), got {tuple(images.shape)}.")
        parts = [self._features(chunk)[:n].float().cpu()
                 for chunk, n in fixed_chunks(images.to(self.device).float())]
        return torch.cat(parts) if parts else torch.zeros(0, self.dim)


class PhantomFeatures(FeatureExtractor):
    """The phantom classifier's hidden layer (after its ReLU): what its heads read."""

    def __init__(self, path: str | None = None, device: str | torch.device = "cpu") -> None:
        from ix2x.classifiers.phantom import PhantomClassifier

        super().__init__(device)
        clf = PhantomClassifier(path, device=device)
        self.name, self.net, self.config = clf.name, clf.net, clf.config
        self.weight_files = dict(clf.weight_files)
        self.dim = int(self.config["hidden"])

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        from ix2x.classifiers.phantom import prepare

        x = prepare(images, self.config).contiguous(memory_format=torch.channels_last)
        return self.net.hidden(self.net.features(x))


class XrvFeatures(FeatureExtractor):
    """torchxrayvision's DenseNet pooled features (``features2``: ReLU, global average pool) on
    xrv's documented input (see :mod:`ix2x.classifiers.xrv`)."""

    dim = 1024

    def __init__(self, weights: str = "densenet121-res224-all", path: str | None = None,
                 device: str | torch.device = "cpu") -> None:
        from ix2x.classifiers.xrv import XrvPathology

        super().__init__(device)
        self.clf = XrvPathology(weights, path, device=device)
        self.name, self.weight_files = f"xrv:{weights}", dict(self.clf.weight_files)

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        return self.clf.model.features2(self.clf.preprocess(images))


def inception_path(path: str | None = None) -> Path:
    """Where torchvision keeps Inception-v3's weights (``$TORCH_HOME/hub/checkpoints``), or ``path``."""
    if path:
        return Path(path)
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


class InceptionFeatures(FeatureExtractor):
    """torchvision's Inception-v3 (ImageNet weights) pool features: the grayscale image repeated to
    three channels, centre-cropped and resized to 299 px, ImageNet-normalised (torchvision's input
    contract for these weights)."""

    dim = 2048

    def __init__(self, path: str | None = None, device: str | torch.device = "cpu") -> None:
        import torchvision

        super().__init__(device)
        file = inception_path(path)
        if not file.is_file():
            raise MissingWeightsError(
                f"Inception-v3 weights not found: {file}. On a machine with internet: `wget {INCEPTION_URL} "
                f"-O {file}` (torchvision's cache, under $TORCH_HOME), then copy the file here, or pass its path "
                "as `inception=PATH`.")
        # transform_input=True, as torchvision sets it for these weights: they were ported from
        # Google's model, which expects [-1, 1]; the flag maps ImageNet-normalised input to that.
        net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False,
                                              transform_input=True)
        net.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
        net.fc = torch.nn.Identity()
        self.net = net.eval().to(self.device)
        self.name, self.weight_files = "inception", {str(file): sha256_of(file)}
        self.mean = torch.tensor(_IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(_IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        x = square_resize(images, 299).repeat(1, 3, 1, 1)
        return self.net((x - self.mean) / self.std)


def _split(spec: str) -> tuple[str, str | None]:
    if not isinstance(spec, str) or not spec:
        raise UserError(f"`features` must be one of {FORMS}, got {spec!r}.")
    if spec == "phantom" or spec.startswith("phantom:"):
        return "phantom", spec.partition(":")[2] or None
    if spec.startswith("xrv:"):
        return "xrv", spec[4:]
    if spec == "inception" or spec.startswith("inception="):
        return "inception", spec.partition("=")[2] or None
    raise UserError(f"`features` must be one of {FORMS}, got {spec!r}.")


def check_features_spec(spec: str) -> None:
    """Raise a UserError if ``spec`` is not a feature-extractor spec (nothing loaded)."""
    kind, arg = _split(spec)
    if kind == "phantom":
        from ix2x.classifiers.phantom import PhantomClassifier

        PhantomClassifier.check_arg(arg)
    elif kind == "xrv" and not arg.partition("=")[0].startswith("densenet"):
        raise UserError(f"`features` xrv:<weights> must name a densenet121-res224-* model, got {spec!r}.")


def problems(spec: str) -> list[str]:
    """The weight file ``spec`` reads, if missing (one line; nothing loaded)."""
    kind, arg = _split(spec)
    if kind == "inception":
        file = inception_path(arg)
        return [] if file.is_file() else [f"Inception-v3 weights not found: {file} (`wget {INCEPTION_URL} "
                                          f"-O {file}` on a machine with internet)."]
    from ix2x.classifiers import problems as classifier_problems

    return classifier_problems(spec)


def build_features(spec: str, device: str | torch.device = "cpu") -> FeatureExtractor:
    """A new feature extractor for ``spec`` (see module doc) on ``device``."""
    check_features_spec(spec)
    kind, arg = _split(spec)
    if kind == "phantom":
        return PhantomFeatures(arg, device)
    if kind == "xrv":
        name, _, path = arg.partition("=")
        return XrvFeatures(name, path or None, device)
    return InceptionFeatures(arg, device)

