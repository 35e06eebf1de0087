"""Training data: conditioning dropout rates, laterality swap under flips, data order, tokenizer,
schedule, configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ix2x.training.editor_data import augment, batch_indices, dropout_masks, step_generator, swap_laterality


def test_conditioning_dropout_rates_are_5_5_5():
    u = (torch.arange(100_000) + 0.5) / 100_000  # exact quantiles of the uniform
    text, image = dropout_masks(u, 0.05)
    only_text = (text & ~image).float().mean().item()
    only_image = (image & ~text).float().mean().item()
    both = (text & image).float().mean().item()
    assert (only_text, only_image, both) == pytest.approx((0.05, 0.05, 0.05), abs=1e-4)
    assert (~text & ~image).float().mean().item() == pytest.approx(0.85, abs=1e-4)
    # With random draws as the loop makes them.
    u = torch.rand(200_000, generator=torch.Generator().manual_seed(0))
    text, image = dropout_masks(u, 0.05)
    assert text.float().mean().item() == pytest.approx(0.10, abs=0.003)
    assert image.float().mean().item() == pytest.approx(0.10, abs=0.003)


@pytest.mark.parametrize("text, expected", [
    ("Add the finding of left pleural effusion.", "Add the finding of right pleural effusion."),
    ("Remove the findings of right lung opacity and left pneumothorax.",
     "Remove the findings of left lung opacity and right pneumothorax."),
    ("Left and RIGHT; bilateral stays.", "Right and LEFT; bilateral stays."),
    ("Change the level of edema from mild to moderate.", "Change the level of edema from mild to moderate."),
    ("cleft rightward", "cleft rightward"),  # whole words only
])
def test_swap_laterality(text, expected):
    assert swap_laterality(text) == expected
    assert swap_laterality(swap_laterality(text)) == text


def test_flipped_pairs_get_mirrored_images_and_swapped_sides(tmp_path):
    from ix2x.data.phantom import generate
    from ix2x.training.editor_data import EditPairs

    generate(tmp_path, 40, seed=5, size=32, splits=(1.0, 0.0, 0.0), progress=False)
    data = EditPairs(tmp_path, "train", 32, preload=True)
    idx = list(range(len(data)))
    b = data.batch(idx, torch.Generator().manual_seed(0), rotation=0.0, hflip=0.5)
    assert 5 < int(b.flipped.sum()) < 35
    for k, i in enumerate(idx):
        past, cur, text = data.pair(i)
        want = past.flip(-1) if b.flipped[k] else past
        assert torch.allclose((b.past[k, :1] + 1) / 2, want, atol=1e-6)
        assert b.prompts[k] == (swap_laterality(text) if b.flipped[k] else text)
    sided = [k for k, i in enumerate(idx) if " left " in data.instructions[i] or " right " in data.instructions[i]]
    assert any(b.flipped[k] and b.prompts[k] != data.instructions[idx[k]] for k in sided)
    # The truth moves with the image: a mirrored phantom's left finding is on the other side.
    assert not any(b.flipped[k] and b.prompts[k] == data.instructions[idx[k]] for k in sided)


def test_rotation_is_shared_by_both_images_and_zero_is_identity():
    x = torch.rand(3, 1, 16, 16)
    flipped = torch.tensor([False, True, False])
    angles = torch.tensor([0.0, 0.0, 2.0])
    p, c = augment(x, x.clone(), flipped, angles)
    assert torch.equal(p, c)
    assert torch.equal(p[0], x[0]) and torch.equal(p[1], x[1].flip(-1))
    assert not torch.equal(p[2], x[2]) and (p[2] - x[2]).abs().mean() < 0.2


def test_batch_indices_are_epoch_permutations_and_resumable():
    stream = batch_indices(10, 3, 0, 30)
    for e in range(3):
        assert sorted(stream[10 * e:10 * e + 10]) == list(range(10))
    assert stream[10:20] != stream[:10]
    assert batch_indices(10, 3, 7, 9) == stream[7:16]
    g1, g2 = step_generator(0, 5, 1, 0), step_generator(0, 5, 1, 0)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))
    assert not torch.equal(torch.rand(4, generator=step_generator(0, 5, 1, 0)),
                           torch.rand(4, generator=step_generator(0, 5, 2, 0)))


def test_tokenizer_makes_every_instruction_word_one_token():
    from ix2x.diffusion.tokenizer import word_tokenizer as make_tokenizer
    from ix2x.training.small_model import instruction_words

    texts = ["Add the findings of left pleural effusion and right lung opacity.",
             "Change the level of cardiomegaly from mild to severe.",
             "Remove the finding of atelectasis, consolidation, pneumonia, edema and pneumothorax."]
    words = instruction_words(texts)
    tok = make_tokenizer(words, 24)
    assert all(len(tok(w).input_ids) == 3 for w in words), [w for w in words if len(tok(w).input_ids) != 3]
    assert make_tokenizer(words, 24).get_vocab() == tok.get_vocab()  # deterministic


def test_truncated_schedule_matches_stable_diffusion():
    from diffusers import DDPMScheduler

    from ix2x.training.small_model import truncated_schedule

    sd = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    short = DDPMScheduler(**{k: v for k, v in truncated_schedule(700).items() if k != "set_alpha_to_one"})
    np.testing.assert_allclose(short.alphas_cumprod.numpy(), sd.alphas_cumprod[:700].numpy(), rtol=1e-5)


def test_configs_load_and_check_the_batch_arithmetic():
    from ix2x.errors import UserError
    from ix2x.training.editor_config import configs_dir, load_config

    for name in ("instructx2x", "phantom_small", "tiny"):
        load_config(configs_dir() / f"{name}.yaml")
    cfg = load_config(configs_dir() / "instructx2x.yaml")
    assert (cfg.optim.lr, cfg.ema_decay, cfg.conditioning_dropout, cfg.data.resolution) == (1e-4, 0.9999, 0.05, 512)
    assert cfg.accumulation(8) == 32 and cfg.accumulation(1) == 256
    with pytest.raises(UserError, match="effective_batch_size"):
        cfg.accumulation(3)
    with pytest.raises(Exception, match="Unknown setting"):
        load_config(configs_dir() / "tiny.yaml", {"learning_rate": 1})
