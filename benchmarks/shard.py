"""Sharding a run over processes launched by torchrun or ``accelerate launch`` (one or many nodes).

Both launchers set ``RANK`` and ``WORLD_SIZE``; we use torch.distributed only for a barrier and to
share the run directory's path. Sample ``i`` of the dataset goes to rank ``i % WORLD_SIZE``; each
rank appends to its own ``samples.rank<R>.jsonl``; rank 0 merges after a barrier and only then
computes distribution-level statistics (AUROC, correlations, CIs) over all samples.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def owns(self, index: int) -> bool:
        return index % self.world_size == self.rank


def current() -> Shard:
    return Shard(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))


def init(shard: Shard) -> None:
    """Join the process group (gloo: metadata only, works on CPU and GPU machines alike)."""
    import torch
    import torch.distributed as dist

    if shard.distributed and not dist.is_initialized():
        dist.init_process_group(backend="gloo", rank=shard.rank, world_size=shard.world_size)
    local = os.environ.get("LOCAL_RANK")
    if shard.distributed and local is not None and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        # `--device cuda` means the current device: each rank of a node its own GPU, not all on cuda:0
        torch.cuda.set_device(int(local) % torch.cuda.device_count())


def barrier(shard: Shard) -> None:
    if shard.distributed:
        import torch.distributed as dist

        dist.barrier()


def broadcast_text(shard: Shard, text: str | None) -> str:
    """Rank 0's ``text`` on every rank."""
    if not shard.distributed:
        assert text is not None
        return text
    import torch.distributed as dist

    box = [text]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def finish(shard: Shard) -> None:
    if shard.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
