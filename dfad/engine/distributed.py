"""Data-parallel training with torch.distributed, as launched by `torchrun`.

Every rank runs the same loop on its own noise; after each backward pass the gradients of the
model being updated (and only that model) are averaged across ranks, so parameters stay
identical. After each iteration the BatchNorm running statistics are averaged too, and a NaN/Inf
loss on any rank stops every rank. Rank 0 alone validates, logs and writes checkpoints; the others
wait for it.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

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
        if self.enabled:
            self._average([p.grad for p in parameters if p.grad is not None])

    def average_buffers(self, module: torch.nn.Module) -> None:
        """Average the floating-point buffers (BatchNorm running_mean / running_var) across ranks
        as one flat buffer: each rank normalises its own batch, so its statistics drift from the
        others'. Integer buffers (num_batches_tracked) advance alike on every rank and are kept."""
        if self.enabled:
            self._average([b for b in module.buffers() if b.is_floating_point()])

    def _average(self, tensors: list[torch.Tensor]) -> None:
        """In place: the mean over ranks of each tensor, with one all-reduce for all of them."""
        if not tensors:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for t in tensors:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()

    def first_non_finite(self, values: Mapping[str, float]) -> Optional[tuple[str, float, int]]:
        """(name, value, rank) of the first NaN/Inf among `values` on the lowest rank holding one,
        the same answer on every rank (None when all are finite): the ranks stop together instead
        of one raising while the others wait at the next collective. One small all-reduce; every
        rank must pass the same names in the same order."""
        names = list(values)
        local = next(((i, v) for i, v in enumerate(values.values()) if not math.isfinite(v)), None)
        if not self.enabled:
            return None if local is None else (names[local[0]], local[1], self.rank)
        # Row r: rank r's (1 + index of the name, value), zeros elsewhere; summing with zeros keeps NaN/Inf.
        table = torch.zeros(self.world_size, 2, dtype=torch.float64)
        if local is not None:
            table[self.rank] = torch.tensor([local[0] + 1, local[1]], dtype=torch.float64)
        table = table.to(_collective_device())
        dist.all_reduce(table)
        for rank, (index, value) in enumerate(table.tolist()):
            if index:
                return names[int(index) - 1], value, rank
        return None

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers everywhere (same start, whatever the local init)."""
        if self.enabled:
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def any_flag(self, *flags: bool) -> list[bool]:
        """Element-wise OR of boolean flags over ranks (every rank gets the same answer)."""
        if not self.enabled:
            return list(flags)
        t = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=_collective_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [bool(v) for v in t.tolist()]

    def main_flags(self, *flags: bool) -> list[bool]:
        """Rank 0's flags on every rank."""
        if not self.enabled:
            return list(flags)
        t = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=_collective_device())
        dist.broadcast(t, src=0)
        return [bool(v) for v in t.tolist()]

    def gather_objects(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


SINGLE = Distributed()


def _collective_device() -> torch.device:
    """Where small control tensors must live: NCCL only reduces CUDA tensors, gloo CPU ones."""
    if dist.get_backend() == dist.Backend.NCCL:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


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
