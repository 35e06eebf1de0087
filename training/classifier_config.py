"""Settings of ``ix2x train-classifier`` (no torch import: the CLI reads the defaults for --help)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    n: int = 3000            # phantom pairs generated (80 % train, 10 % val, 10 % test)
    data_seed: int = 1000    # benchmark suites use seed 0: keep training pairs out of them
    data_size: int = 128     # phantom render size
    size: int = 96           # network input size
    width: int = 16
    hidden: int = 128
    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 1          # 1 beats 2 on a shared 2-core machine (no oversubscription stalls)
