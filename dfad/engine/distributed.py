"""Data-parallel training with torch.distributed, as launched by `torchrun`.

Every rank runs the same loop on its own noise; after each backward pass the gradients of the
model being updated (and only that model) are averaged across ranks, so parameters stay
identical. Rank 0 alone validates, logs and writes checkpoints; the others wait for it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.distributed as dist

from ..errors import DfadError


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """All-reduce the gradients as one flat buffer, then divide by the number of ranks."""
        if not self.enabled:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers everywhere (same start, whatever the local init)."""
        if self.enabled:
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def any_flag(self, *flags: bool) -> list[bool]:
        """Element-wise OR of boolean flags over ranks (every rank gets the same answer)."""
        if not self.enabled:
            return list(flags)
        t = torch.tensor([int(f) for f in flags], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [bool(v) for v in t.tolist()]

    def main_flags(self, *flags: bool) -> list[bool]:
        """Rank 0's flags on every rank."""
        if not self.enabled:
            return list(flags)
        t = torch.tensor([int(f) for f in flags], dtype=torch.int32)
        dist.broadcast(t, src=0)
        return [bool(v) for v in t.tolist()]

    def gather_objects(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


SINGLE = Distributed()


def from_environment(device: str) -> Distributed:
    """Join the process group torchrun describes (WORLD_SIZE > 1), or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend=backend)
        except Exception as exc:  # rendezvous problems: say what torchrun needs
            raise DfadError(f"cannot join the {backend} process group (rank {rank} of {world_size}): {exc}; "
                            f"check torchrun's --rdzv-endpoint / --master-addr and --master-port") from exc
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
    return Distributed(rank, world_size, local_rank)
