"""Training-time augmentations, named by import string in a model's ``train_defaults["augment"]``
and called as ``augment(x, y, generator) -> (x, y)`` on a CPU batch, so that augmentations that
move pixels can move boxes in ``y`` with them."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None, *, degrees: float = 12.0,
                  shift: float = 0.1, scale: tuple[float, float] = (0.9, 1.1), elastic: float = 0.0,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Small random rotations, shifts and scalings, the usual remedy for a small digit set;
    ``elastic`` adds a smooth random displacement field (Simard et al., 2003) of about that many
    pixels."""
    n = x.shape[0]
    rand = lambda: torch.rand(n, generator=generator, device="cpu")  # noqa: E731
    angle = (rand() * 2 - 1) * math.radians(degrees)
    s = scale[0] + rand() * (scale[1] - scale[0])
    tx, ty = (rand() * 2 - 1) * shift * 2, (rand() * 2 - 1) * shift * 2
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    if elastic:
        h, w = x.shape[2:]
        coarse = torch.rand(n, 2, max(2, h // 8), max(2, w // 8), generator=generator) * 2 - 1
        field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
        field = field * torch.tensor([2 * elastic / w, 2 * elastic / h]).view(1, 2, 1, 1)
        grid = grid + field.permute(0, 2, 3, 1).to(grid)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False), y


def random_elastic(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``random_affine`` with a 2-pixel elastic distortion on top."""
    return random_affine(x, y, generator, elastic=2.0)


def mirror_crop_colour(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None, *, pad: int = 4,
                       jitter: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """The seed's augmentations for natural images: horizontal mirroring, random cropping (pad
    and crop back) and colour shifting (a random offset per channel)."""
    n, c, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1).to(x.device), x.flip(3), x)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    x = torch.stack([padded[i, :, dy[i]: dy[i] + h, dx[i]: dx[i] + w] for i in range(n)])
    shift = (torch.rand(n, c, 1, 1, generator=generator) * 2 - 1) * jitter
    return x + shift.to(x), y
