"""Settings of ``ix2x train-classifier`` (no torch import: the CLI reads the defaults for --help)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    n: int = 3000            # phantom pairs generated (80 % train, 10 % val, 10 % test)
    data_seed: int = 1000    # benchmark suites use seed 0: keep training pairs out of them
    data_size: int = 128     # phantom render size
    size: int = 128          # network input size: the render size, so no detail is resampled away
                             # (at 96 px small pneumonia's patchy texture blurs into consolidation)
    width: int = 16
    hidden: int = 128
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    # extra weight on a finding's presence loss: Pneumonia (patchy nodules where Consolidation sits)
    # is the one the net learns last
    finding_weights: tuple[tuple[str, float], ...] = (("Pneumonia", 3.0),)
    threads: int = 1          # 1 beats 2 on a shared 2-core machine (no oversubscription stalls)
