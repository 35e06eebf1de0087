"""Small word-level tokenizers for models built here (tiny test models, the shipped phantom model).

A CLIPTokenizer (byte-level BPE, CLIP's ``</w>`` suffix) whose merges make each given word one token,
so ``len(tokenizer) > 2`` and every instruction word is seen as itself. Built by hand, not trained:
``tokenizers``' trainer breaks frequency ties differently across processes, and a model must be the
same for the same seed.
"""

from __future__ import annotations

from typing import Sequence


def word_tokenizer(words: Sequence[str], max_length: int):
    """A CLIPTokenizer (byte-level BPE, CLIP's ``</w>`` suffix) whose merges make each of ``words``
    one token. Built by hand, not trained: ``tokenizers``' trainer breaks ties differently across
    processes. Each word gets merges appended that join the pieces the merges so far leave; merges
    added later rank lower, so they never change how an earlier word splits."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for token in ["<|startoftext|>", "<|endoftext|>", *alphabet, *(c + "</w>" for c in alphabet)]:
        vocab.setdefault(token, len(vocab))
    ranks: dict[tuple[str, str], int] = {}
    for word in sorted(set(words)):
        while len(pieces := _bpe(word, ranks)) > 1:
            left = pieces[0]
            for right in pieces[1:]:
                ranks.setdefault((left, right), len(ranks))
                vocab.setdefault(left + right, len(vocab))
                left += right
    merges = sorted(ranks, key=ranks.get)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """BPE as CLIP applies it: merge the lowest-ranked adjacent pair until none is known."""
    pieces = list(word[:-1]) + [word[-1] + "</w>"]
    while len(pieces) > 1:
        pairs = [(ranks.get((a, b), len(ranks) + 1), i) for i, (a, b) in enumerate(zip(pieces, pieces[1:]))]
        rank, i = min(pairs)
        if rank > len(ranks):
            break
        pieces[i:i + 2] = [pieces[i] + pieces[i + 1]]
    return pieces
