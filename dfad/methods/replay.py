"""A bounded memory of past generated samples and the teacher's outputs on them, mixed into the
imitation steps (as CMI's memory bank, Fang et al. 2021): the student keeps seeing what the
generator made before it moved on. Replayed samples cost neither a generator nor a teacher
forward pass."""
from __future__ import annotations

import torch


class ReplayMemory:
    """A ring buffer of `capacity` samples on `device`: images in `image_dtype` (bf16 halves the
    memory; images are inputs, not targets), teacher outputs in fp32 (the targets, kept exact).
    Draws come from its own seeded generator, saved with the run's state."""

    def __init__(self, capacity: int, device: torch.device, seed: int, image_dtype: torch.dtype = torch.bfloat16):
        self.capacity, self.device, self.image_dtype = capacity, device, image_dtype
        self.images: torch.Tensor | None = None
        self.outputs: torch.Tensor | None = None
        self.size = self.position = 0
        self.generator = torch.Generator().manual_seed(seed)

    def add(self, images: torch.Tensor, outputs: torch.Tensor) -> None:
        images, outputs = images.detach()[: self.capacity], outputs.detach()[: self.capacity]
        if self.images is None:
            self.images = torch.empty(self.capacity, *images.shape[1:], dtype=self.image_dtype, device=self.device)
            self.outputs = torch.empty(self.capacity, *outputs.shape[1:], dtype=torch.float32, device=self.device)
        slots = (self.position + torch.arange(len(images), device=self.device)) % self.capacity
        self.images[slots] = images.to(self.image_dtype)
        self.outputs[slots] = outputs.float()
        self.position = (self.position + len(images)) % self.capacity
        self.size = min(self.capacity, self.size + len(images))

    def sample(self, count: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` stored samples drawn uniformly (with replacement): images in `dtype`, outputs."""
        index = torch.randint(0, self.size, (count,), generator=self.generator).to(self.device)
        return self.images[index].to(dtype), self.outputs[index]

    def state_dict(self) -> dict:
        return {"images": self.images, "outputs": self.outputs, "size": self.size, "position": self.position,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.images, self.outputs = state["images"], state["outputs"]
        self.size, self.position = state["size"], state["position"]
        self.generator.set_state(state["generator"])
