"""Scores are the same bytes whatever the batch they were computed in and whatever the caches
held: the networks behind the metrics run in fixed chunks (ix2x.classifiers.base.fixed_chunks)."""

import json

import torch
import torch.nn.functional as F
from metric_helpers import phantom_samples

from ix2x import registry
from ix2x.classifiers import lpips_net
from ix2x.classifiers.base import CHUNK
from ix2x.classifiers.scoring import Scoring
from ix2x.configs import build
from ix2x.types import EditResult

METRICS = {"classifier_shift": {}, "demographic_preservation": {}, "cmig": {}, "guidance_localization": {},
           "out_of_mask_change": {"lpips_random_backbone": True},
           "gt_fidelity": {"lpips_random_backbone": True}, "lpips": {"random_backbone": True},
           "anatomy_preservation": {}}


def _edits(samples):
    """A plausible, imperfect editor: half the true change, a blur, a guidance map."""
    out = []
    for s in samples:
        half = s.image + 0.5 * (s.target - s.image)
        blurred = F.avg_pool2d(half[None], 3, 1, 1, count_include_pad=False)[0]
        out.append(EditResult(image=blurred.clamp(0, 1), guidance_map=(0.3 + 0.5 * s.region).clamp(0, 1),
                              edit_mask=s.region.clone()))
    return out


def _scores(samples, results, batch, state):
    """Every metric's values, the metrics sharing one run's scoring state ``state``."""
    out = {s.sample_id: {} for s in samples}
    for name, args in METRICS.items():
        cls = registry.load("metric", name)
        metric = cls(build(cls.Config, args, where=name))
        metric.scoring = state
        for i in range(0, len(samples), batch):
            for s, v in zip(samples[i:i + batch], metric.compute(samples[i:i + batch], results[i:i + batch])):
                out[s.sample_id][name] = v
    return json.dumps(out, sort_keys=True)  # NaN-safe exact comparison


def test_scores_do_not_depend_on_batch_or_cache():
    samples = phantom_samples(n=11, size=64)
    results = _edits(samples)
    together = _scores(samples, results, batch=11, state=Scoring())
    alone = _scores(samples, results, batch=1, state=Scoring())
    # Warm caches: the same inputs seen before with other edits, samples in another order and batch.
    warm = Scoring()
    _scores(samples, [EditResult(image=s.image.flip(-1)) for s in samples], batch=4, state=warm)
    order = list(range(len(samples)))[::-1]
    reordered = _scores([samples[i] for i in order], [results[i] for i in order], batch=3, state=warm)
    assert together == alone
    assert json.loads(together) == json.loads(reordered)


def test_a_network_output_ignores_its_neighbours_in_a_fixed_chunk():
    """What fixed chunks rely on: within a chunk of CHUNK images, an image's outputs depend neither on
    the other images nor on its position (only the chunk's shape picks the kernels)."""
    from ix2x.classifiers.phantom import PhantomClassifier

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2 * CHUNK, 1, 128, 128, generator=g)
    alex = lpips_net.get_lpips("alex", random_backbone=True)
    clf = PhantomClassifier()

    def nets(chunk):  # the calls lpips_features and Classifier.predict make on each chunk
        with torch.no_grad():
            x = alex.scaling_layer(chunk.repeat(1, 3, 1, 1) * 2 - 1).contiguous(memory_format=torch.channels_last)
            out = clf._predict(chunk)
            return list(alex.net(x)) + [out.probs, out.levels, out.sex, out.age, out.group]

    reference = [t[0] for t in nets(x[:CHUNK])]
    for pos in (1, CHUNK - 1):
        chunk = torch.cat([x[CHUNK:CHUNK + pos], x[:1], x[CHUNK + pos + 1:]])
        assert all(torch.equal(t[pos], r) for t, r in zip(nets(chunk), reference))
