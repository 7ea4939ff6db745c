"""Random flips and shifts of generated samples, differentiable: in the generation step the
generator's gradient flows through them, so it is trained for the student's augmented view
(augmented imitation, as in data-free KD since DeepInversion and CMI)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def flip_and_shift(images: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Each image flipped horizontally with probability 1/2 and shifted by up to `max_shift`
    pixels each way (zero padding: the mean colour of normalised images). Draws from the global
    RNG on the images' device, as the generator's noise does."""
    n, c, h, w = images.shape
    device = images.device
    flips = torch.rand(n, device=device) < 0.5
    images = torch.where(flips.view(n, 1, 1, 1), images.flip(-1), images)
    if max_shift <= 0:
        return images
    padded = F.pad(images, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), device=device)
    rows = (dy.view(n, 1) + torch.arange(h, device=device)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w, device=device)).view(n, 1, 1, w)
    samples = torch.arange(n, device=device).view(n, 1, 1, 1)
    channels = torch.arange(c, device=device).view(1, c, 1, 1)
    return padded[samples, channels, rows, cols]
