"""Each sample is decoded and hashed once per run, whatever the number of editors, in process and
in editor processes (benchmarks/sample_cache.py), and the run's records are those of a run that
decodes every sample for every editor."""

import pytest

from ix2x import records


def _suite(isolation):
    from ix2x.suite import suite_from_dict

    return suite_from_dict({
        "name": "decode", "isolation": isolation, "batch_size": 4, "threads": 1,
        "editors": [{"name": "identity"}, {"name": "oracle"}, {"name": "oracle", "label": "oracle_again"}],
        "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}}]})


def _records(run_dir):
    out = {}
    for r in records.RunDir.open(run_dir).records():
        image = (run_dir / r["image"]).read_bytes() if r.get("image") else None
        out[r["editor"], r["sample_id"]] = (r["status"], r["data_hash"], r["metrics"], image)
    return out


@pytest.mark.parametrize("isolation", ["none", "process"])
def test_each_sample_is_decoded_and_hashed_once_per_run(tmp_path, samples, monkeypatch, isolation):
    from samples_for_tests import CountingDataset

    from ix2x.benchmarks import rundir, runner, sample_cache

    hashed = []
    sample_hash = rundir.sample_hash
    monkeypatch.setattr(rundir, "sample_hash", lambda s: hashed.append(s.sample_id) or sample_hash(s))
    dataset = CountingDataset(samples, tmp_path / "decodes.txt")
    run_dir = runner.start_run(_suite(isolation), tmp_path / "cached")
    outcome = runner.execute(run_dir, dataset, progress=False)
    assert outcome.ok and outcome.n_records == 3 * len(samples)
    # Three editors (and the report's inputs), each sample decoded once: without the cache, 3 times
    # each, and the report's 6 once more.
    assert dataset.decodes() == list(range(len(samples)))
    if isolation == "none":  # in editor processes the children hash (test_warm_up counts what they are given)
        assert sorted(hashed) == sorted(s.sample_id for s in samples)
    assert not (run_dir / sample_cache.FOLDER).exists()  # removed when the editing ends

    # The same records as a run that hands every editor the samples themselves.
    plain_dir = runner.start_run(_suite(isolation), tmp_path / "plain")
    assert runner.execute(plain_dir, samples, progress=False).ok
    cached, plain = _records(run_dir), _records(plain_dir)
    assert cached == plain
    assert {h for _, h, _, _ in cached.values()} == {sample_hash(s) for s in samples}


def test_a_read_back_sample_has_the_decoded_bytes(tmp_path):
    """8-bit, 16-bit, mask and arbitrary float32 images, and labels, through the cache: identical
    tensors (dtype, shape, bits) and fields; a sample whose fields JSON cannot keep is not kept."""
    import torch

    from ix2x.benchmarks.sample_cache import DecodedSamples
    from ix2x.types import Sample

    g = torch.Generator().manual_seed(0)
    image16 = (torch.randint(0, 65536, (1, 9, 7), generator=g).double() / 65535).float()
    image8 = (torch.randint(0, 256, (1, 9, 7), generator=g).double() / 255).float()
    anyfloat = torch.rand(1, 9, 7, generator=g)
    region = (torch.rand(1, 9, 7, generator=g) > 0.5).float()
    base = [Sample("a", image16, "Add effusion.", target=anyfloat, region=region, target_aligned=True,
                   labels={"source_report": "x", "findings": {"effusion": [0, 1]}, "age": 61.5}, patient_id="p"),
            Sample("b", image8, "Remove edema.", labels={"pair": (1, 2)}),  # a tuple reads back as a list
            Sample("c", anyfloat, "Add edema.", split="val")]
    writer = DecodedSamples(base, tmp_path / "c", write=True, budget=10**9)
    assert [s.sample_id for s in writer] == ["a", "b", "c"] and writer.decoded == 3
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["0.safetensors", "2.safetensors"]
    reader = DecodedSamples(base, tmp_path / "c", write=False, budget=0)
    for original, back in zip(base, reader):
        for name in ("image", "target", "region"):
            a, b = getattr(original, name), getattr(back, name)
            assert (a is None and b is None) or (a.dtype == b.dtype and torch.equal(a, b)), name
        for name in ("sample_id", "instruction", "target_aligned", "labels", "patient_id", "split"):
            assert repr(getattr(back, name)) == repr(getattr(original, name))
    assert reader.decoded == 1  # "b" only
    # 16-bit and 8-bit images are kept as their integers (2 and 1 byte per pixel), other floats as float32
    from safetensors import safe_open

    with safe_open(str(tmp_path / "c" / "0.safetensors"), framework="pt") as f:
        assert {k: f.get_tensor(k).dtype for k in f.keys()} == {
            "image": torch.uint16, "target": torch.float32, "region": torch.uint8}


def test_the_cache_stays_within_its_budget(tmp_path, samples):
    from ix2x.benchmarks.sample_cache import DecodedSamples

    first = DecodedSamples(samples, tmp_path / "c", write=True, budget=1)
    list(first)
    assert len(list((tmp_path / "c").iterdir())) == 1  # the first entry crosses the bound: no more


def test_a_read_back_sample_keeps_its_ops_and_large_integer_pixels(tmp_path):
    """The reader's parse (ops the instruction does not say) and a region of integer values above
    255 (scale 1) come back as they went in: before, later editors got ops=None and the region
    wrapped around in uint8."""
    import torch

    from ix2x.benchmarks.sample_cache import DecodedSamples
    from ix2x.data.instructions import EditOp
    from ix2x.types import Sample

    ops = (EditOp("add", "Effusion", to_level="moderate", side="left"),)
    region = torch.tensor([[[0.0, 1.0, 300.0], [255.0, 256.0, 65535.0]]])
    base = [Sample("a", torch.rand(1, 2, 3), "make it look worse", region=region, ops=ops)]
    list(DecodedSamples(base, tmp_path / "c", write=True, budget=10**9))
    (back,) = list(DecodedSamples(base, tmp_path / "c", write=False, budget=0))
    assert back.ops == ops and torch.equal(back.region, region)
