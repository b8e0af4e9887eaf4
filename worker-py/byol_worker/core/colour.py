"""HSV colour helpers for the batched augmentation (augment.py): the official code's saturation and hue
jitter work in HSV space (tf.image semantics), batched per image on the device."""
from __future__ import annotations

import torch


def rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[n,3,H,W] in [0,1] -> h (turns, [0,1)), s, v, each [n,H,W] (colorsys semantics)."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, 1.0), 0.0)
    d = torch.where(delta > 0, delta, 1.0)
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, torch.remainder(h / 6.0, 1.0), 0.0)
    return h, s, maxc


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Inverse of rgb_to_hsv: channel c = v - v*s*clamp(min(k, 4-k), 0, 1), k = (n + 6h) mod 6."""
    n = torch.tensor([5.0, 3.0, 1.0], device=h.device).view(1, 3, 1, 1)
    k = torch.remainder(n + 6.0 * h.unsqueeze(1), 6.0)
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)


def adjust_hsv(x: torch.Tensor, sat_factor: torch.Tensor, hue_shift: torch.Tensor) -> torch.Tensor:
    """Per image: saturation *= factor (clipped to [0,1]), hue += shift (mod 1); result clipped."""
    h, s, v = rgb_to_hsv(x)
    s = (s * sat_factor.view(-1, 1, 1)).clamp_(0.0, 1.0)
    h = torch.remainder(h + hue_shift.view(-1, 1, 1), 1.0)
    return hsv_to_rgb(h, s, v).clamp_(0.0, 1.0)
