"""Batched on-device BYOL augmentations (docs/algorithm.md §5).

Random draws happen on the CPU for the whole global batch (`ViewAugment.sample`), so every rank
slices the same parameters (`Params.slice`) and the views do not depend on the world size. The
pixel work (`ViewAugment.apply`) runs batched on the device in float32:

  random resized crop + horizontal flip, both folded into one affine grid, resampled with
  grid_sample -> clip [0,1] -> colour jitter gated by one Bernoulli per image, its four ops in a
  random order per image, clip after each -> grayscale (0.2989, 0.5870, 0.1140) -> separable
  Gaussian blur (radius int(size/10/2)) -> solarize (x < 0.5 ? x : 1 - x) -> mean/std normalisation.

Two semantics exist for five of these steps (spec.augment.semantics, docs/augmentations.md):

  | step       | official (tf.image, the paper's code)  | torchvision (solo-learn, lightly)              |
  | crop       | one draw, w and h clipped to the image  | up to 10 draws, first that fits, else centre  |
  | resample   | bicubic                                 | bilinear (lightly) or bicubic (solo-learn)    |
  | brightness | x + delta, delta in [-b, b]             | x * f, f in [1-b, 1+b]                         |
  | contrast   | around each channel's mean              | around the image's grayscale mean             |
  | saturation | HSV saturation scaled                   | blend with the grayscale image                |

Differences from the official code, on purpose: blur pads by reflection (official: zero 'SAME'
padding, which darkens borders); PyTorch's bicubic uses a = -0.75 (TF: -0.5).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F

from .colour import adjust_hsv

SEMANTICS = {  # spec.augment.semantics: each key's allowed values, the official code's first
    "crop": ("single-draw", "rejection"),
    "resample": ("bicubic", "bilinear"),
    "brightness": ("additive", "multiplicative"),
    "contrast": ("channel-mean", "gray-mean"),
    "saturation": ("hsv", "gray-blend"),
}
OFFICIAL = {k: v[0] for k, v in SEMANTICS.items()}
CROP_ATTEMPTS = 10  # torchvision RandomResizedCrop
_VIEW_KEYS = ("cropScale", "cropRatio", "flipProb", "jitterProb", "brightness", "contrast", "saturation",
              "hue", "grayscaleProb", "blurProb", "blurSigma", "solarizeProb")
_GRAY = (0.2989, 0.5870, 0.1140)
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)


@dataclass
class Params:
    """All random draws for n images (one row per image). Jitter params are neutral where the
    Bernoulli gate was off; blur_sigma is 0 where no blur."""

    crop_scale: torch.Tensor   # area fraction; [n] for one draw, [n, attempts] for rejection sampling
    crop_logratio: torch.Tensor
    crop_ux: torch.Tensor      # offsets as uniforms in [0, 1)
    crop_uy: torch.Tensor
    flip: torch.Tensor         # bool
    brightness: torch.Tensor   # additive delta (0 = none) or factor (1 = none), per the semantics
    contrast: torch.Tensor     # factor, 1 = none
    saturation: torch.Tensor   # factor, 1 = none
    hue: torch.Tensor          # shift in turns, 0 = none
    order: torch.Tensor        # [n, 4] op index at each position
    gray: torch.Tensor         # bool
    blur_sigma: torch.Tensor   # 0 = no blur
    solarize: torch.Tensor     # bool

    def __len__(self) -> int:
        return self.crop_scale.shape[0]

    def slice(self, start: int, stop: int) -> "Params":
        return replace(self, **{f.name: getattr(self, f.name)[start:stop] for f in fields(self)})

    def to(self, device: Any) -> "Params":
        return replace(self, **{f.name: getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)})

    def jitter_plan(self, additive_brightness: bool) -> list[tuple[int, torch.Tensor]]:
        """(op, images) in the order the jitter runs them: at each of the 4 positions, each op with the images
        whose own order puts it there and whose parameter is not neutral (the gate off makes all four neutral).
        Read on the CPU, where the draws are made: on a device it would wait for it."""
        order = self.order.cpu()
        active = {BRIGHTNESS: self.brightness.cpu() != (0.0 if additive_brightness else 1.0),
                  CONTRAST: self.contrast.cpu() != 1, SATURATION: self.saturation.cpu() != 1, HUE: self.hue.cpu() != 0}
        plan = []
        for j in range(4):
            for op in range(4):
                images = torch.nonzero((order[:, j] == op) & active[op]).flatten()
                if len(images):
                    plan.append((op, images))
        return plan


def _range(cfg: dict, key: str, lo_min: float = 0.0) -> tuple[float, float]:
    lo, hi = (float(v) for v in cfg[key])
    if not lo_min <= lo <= hi:
        raise ValueError(f"augment view: {key} must be [lo, hi] with {lo_min} <= lo <= hi, got {cfg[key]}")
    return lo, hi


class ViewAugment:
    """One view's augmentation (spec.augment.view1 or view2) to `image_size` square outputs."""

    def __init__(self, view_cfg: dict[str, Any], image_size: int, normalize: dict[str, Any], name: str = "view",
                 semantics: dict[str, str] | None = None):
        missing = [k for k in _VIEW_KEYS if k not in view_cfg]
        if missing:
            raise ValueError(f"augment.{name}: missing {', '.join(missing)} (resolve the spec with its presets first)")
        if image_size < 1:
            raise ValueError(f"data.imageSize: must be >= 1, got {image_size}")
        c = view_cfg
        self.size = int(image_size)
        self.scale = _range(c, "cropScale")
        if self.scale[1] > 1.0 or self.scale[0] <= 0:
            raise ValueError(f"augment.{name}.cropScale: must lie in (0, 1], got {c['cropScale']}")
        r = _range(c, "cropRatio", 1e-6)
        self.ratio, self.logratio = r, (math.log(r[0]), math.log(r[1]))
        self.sigma = _range(c, "blurSigma", 1e-6)
        self.p = {k: float(c[k]) for k in ("flipProb", "jitterProb", "grayscaleProb", "blurProb", "solarizeProb")}
        for k, v in self.p.items():
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"augment.{name}.{k}: must be in [0, 1], got {v}")
        self.jitter = tuple(float(c[k]) for k in ("brightness", "contrast", "saturation", "hue"))
        if min(self.jitter) < 0 or self.jitter[3] > 0.5:
            raise ValueError(f"augment.{name}: brightness/contrast/saturation must be >= 0 and hue in [0, 0.5]")
        self.mean = torch.tensor([float(v) for v in normalize["mean"]]).view(1, 3, 1, 1)
        self.std = torch.tensor([float(v) for v in normalize["std"]]).view(1, 3, 1, 1)
        self._consts: dict[torch.device, tuple[torch.Tensor, ...]] = {}  # per-device copies
        if (self.std <= 0).any():
            raise ValueError(f"augment.normalize.std: must be > 0, got {normalize['std']}")
        self.blur_radius = int(self.size / 10 / 2)  # kernel size = size/10 [DM augmentations.py]
        self.sem = dict(OFFICIAL, **(semantics or {}))
        for k, v in self.sem.items():
            if k not in SEMANTICS or v not in SEMANTICS[k]:
                allowed = ", ".join(f"{key}: {'|'.join(vals)}" for key, vals in SEMANTICS.items())
                raise ValueError(f"augment.semantics.{k}: {v!r} is not one of ({allowed})")

    def sample(self, n: int, generator: torch.Generator) -> Params:
        """Draw every random number for n images on the CPU, in a fixed order."""
        g = generator

        def u(lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(n, generator=g)

        def bern(p: float) -> torch.Tensor:
            return torch.rand(n, generator=g) < p

        b, c, s, h = self.jitter
        if self.sem["crop"] == "rejection":
            shape = (n, CROP_ATTEMPTS)
            crop_scale, crop_logratio = (lo + (hi - lo) * torch.rand(shape, generator=g)
                                         for lo, hi in (self.scale, self.logratio))
            crop_ux, crop_uy = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
        else:
            crop_scale, crop_logratio = u(*self.scale), u(*self.logratio)
            crop_ux, crop_uy = u(), u()
        flip = bern(self.p["flipProb"])
        gate = bern(self.p["jitterProb"])
        additive = self.sem["brightness"] == "additive"
        brightness = u(-b, b) if additive else u(max(0.0, 1 - b), 1 + b)
        contrast, saturation, hue = u(max(0.0, 1 - c), 1 + c), u(max(0.0, 1 - s), 1 + s), u(-h, h)
        order = torch.argsort(torch.rand(n, 4, generator=g), dim=1)
        gray = bern(self.p["grayscaleProb"])
        blur = bern(self.p["blurProb"])
        sigma = u(*self.sigma)
        solarize = bern(self.p["solarizeProb"])
        return Params(
            crop_scale, crop_logratio, crop_ux, crop_uy, flip,
            torch.where(gate, brightness, 0.0 if additive else 1.0), torch.where(gate, contrast, 1.0),
            torch.where(gate, saturation, 1.0), torch.where(gate, hue, 0.0), order,
            gray, torch.where(blur, sigma, 0.0), solarize,
        )

    def apply(self, x: torch.Tensor, p: Params) -> torch.Tensor:
        """uint8 NHWC batch (on the device) -> normalised float32 NCHW [n, 3, size, size]."""
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[-1] != 3:
            raise ValueError(f"augment: expected a uint8 NHWC batch with 3 channels, got {x.dtype} {tuple(x.shape)}")
        if x.shape[0] != len(p):
            raise ValueError(f"augment: batch has {x.shape[0]} images but params were drawn for {len(p)}")
        plan = p.jitter_plan(self.sem["brightness"] == "additive")
        p = p.to(x.device)
        img = x.permute(0, 3, 1, 2).float().div_(255.0)
        out = self._crop_flip(img, p)
        out = self._jitter(out, p, plan)
        gray_w, mean, std = self._on(out.device)
        luma = (out * gray_w).sum(1, keepdim=True)
        out = torch.where(p.gray.view(-1, 1, 1, 1), luma.expand_as(out), out)
        out = self._blur(out, p.blur_sigma)
        out = torch.where(p.solarize.view(-1, 1, 1, 1) & (out >= 0.5), 1.0 - out, out)
        return (out - mean) / std

    def _on(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        if device not in self._consts:
            gray = torch.tensor(_GRAY).view(1, 3, 1, 1)
            self._consts[device] = tuple(t.to(device) for t in (gray, self.mean, self.std))
        return self._consts[device]

    def _crop_flip(self, img: torch.Tensor, p: Params) -> torch.Tensor:
        n, _, H, W = img.shape
        x0, y0, w, h = crop_boxes(p, H, W, self.ratio)
        # align_corners=False: normalised -1..1 spans pixel edges 0..W, so output centres land at
        # x0 + (i + 0.5) * w / size; a negative x-scale mirrors the crop (the flip)
        sx = torch.where(p.flip, -w / W, w / W)
        theta = torch.zeros(n, 2, 3, device=img.device)
        theta[:, 0, 0], theta[:, 0, 2] = sx, (2 * x0 + w) / W - 1
        theta[:, 1, 1], theta[:, 1, 2] = h / H, (2 * y0 + h) / H - 1
        grid = F.affine_grid(theta, [n, 3, self.size, self.size], align_corners=False)
        out = F.grid_sample(img, grid, mode=self.sem["resample"], padding_mode="border", align_corners=False)
        return out.clamp_(0.0, 1.0)

    def _jitter(self, x: torch.Tensor, p: Params, plan: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
        # Each image runs its four ops in its own order. Each op runs once per position, on the images whose op
        # it is there (jitter_plan): a quarter of the pixel work of running every op on the whole batch with
        # neutral parameters for the rest, which matters at 224 px (BENCHMARKS.md §1, augment only).
        if not plan:
            return x
        where = torch.cat([images for _, images in plan]).to(x.device, non_blocking=True).split(
            [len(images) for _, images in plan])
        for (op, _), idx in zip(plan, where):
            x.index_copy_(0, idx, self._jitter_op(op, x.index_select(0, idx), p, idx))
        return x

    def _jitter_op(self, op: int, x: torch.Tensor, p: Params, idx: torch.Tensor) -> torch.Tensor:
        gray_w = self._on(x.device)[0]
        if op == BRIGHTNESS:
            b = p.brightness.index_select(0, idx).view(-1, 1, 1, 1)
            return (x + b if self.sem["brightness"] == "additive" else x * b).clamp_(0.0, 1.0)
        if op == CONTRAST:
            c = p.contrast.index_select(0, idx).view(-1, 1, 1, 1)
            if self.sem["contrast"] == "channel-mean":
                mean = x.mean(dim=(2, 3), keepdim=True)
            else:
                mean = (x * gray_w).sum(1, keepdim=True).mean(dim=(2, 3), keepdim=True)
            return ((x - mean) * c + mean).clamp_(0.0, 1.0)
        if op == SATURATION and self.sem["saturation"] == "gray-blend":
            s = p.saturation.index_select(0, idx).view(-1, 1, 1, 1)
            luma = (x * gray_w).sum(1, keepdim=True)
            return ((x - luma) * s + luma).clamp_(0.0, 1.0)
        if op == SATURATION:
            return adjust_hsv(x, p.saturation.index_select(0, idx), torch.zeros(len(idx), device=x.device))
        return adjust_hsv(x, torch.ones(len(idx), device=x.device), p.hue.index_select(0, idx))

    def _blur(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        r = self.blur_radius
        if r < 1 or r >= min(x.shape[-2:]):
            return x
        n, ch, H, W = x.shape
        k = gaussian_kernels(sigma, r).repeat_interleave(ch, dim=0)  # [n*3, 2r+1]
        y = x.reshape(1, n * ch, H, W)
        y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="reflect"), k.view(n * ch, 1, 1, -1), groups=n * ch)
        y = F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(n * ch, 1, -1, 1), groups=n * ch)
        return y.view(n, ch, H, W)


def crop_boxes(p: Params, H: int, W: int, ratio_range: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[torch.Tensor, ...]:
    """Pixel boxes (x0, y0, w, h) as float tensors, w = round(sqrt(area*r)), h = round(sqrt(area/r)) with
    area = scale*H*W and offsets uniform over the valid integer positions.

    One draw per image (1-D params) is the official code's: w and h clipped to the image [DM dataset.py].
    Several draws (2-D params) are torchvision's RandomResizedCrop: the first draw that fits the image, else
    the whole image cut to the nearest aspect ratio in `ratio_range`, centred."""
    area = p.crop_scale * (H * W)
    ratio = torch.exp(p.crop_logratio)
    w, h = torch.round(torch.sqrt(area * ratio)), torch.round(torch.sqrt(area / ratio))
    if p.crop_scale.dim() == 1:
        w, h = w.clamp(1, W), h.clamp(1, H)
        ux, uy = p.crop_ux, p.crop_uy
    else:
        fits = (w >= 1) & (w <= W) & (h >= 1) & (h <= H)
        first = torch.argmax(fits.to(torch.uint8), dim=1, keepdim=True)  # index of the first True (0 if none)
        w, h, ux, uy = (t.gather(1, first).squeeze(1) for t in (w, h, p.crop_ux, p.crop_uy))
        fallback = ~fits.any(dim=1)
    x0 = torch.minimum(torch.floor(ux * (W - w + 1)), W - w)
    y0 = torch.minimum(torch.floor(uy * (H - h + 1)), H - h)
    if p.crop_scale.dim() == 2:  # no `if fallback.any()`: on a GPU that would wait for the device every step
        fw, fh = _centre_crop(H, W, *ratio_range)
        w, h = torch.where(fallback, fw, w), torch.where(fallback, fh, h)
        x0, y0 = torch.where(fallback, float((W - fw) // 2), x0), torch.where(fallback, float((H - fh) // 2), y0)
    return x0, y0, w, h


def _centre_crop(H: int, W: int, ratio_lo: float, ratio_hi: float) -> tuple[float, float]:
    """torchvision's fallback box: the whole image, cut to the nearest aspect ratio in [lo, hi]."""
    if W / H < ratio_lo:
        return float(W), float(round(W / ratio_lo))
    if W / H > ratio_hi:
        return float(round(H * ratio_hi)), float(H)
    return float(W), float(H)


def gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """[n, 2r+1] normalised 1-D Gaussian taps per image; sigma 0 gives the identity [0.., 1, ..0]."""
    taps = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float32)
    s = torch.where(sigma > 0, sigma, 1e-6).view(-1, 1).float()  # exp(-x^2/2e-12) = 0 exactly for x != 0
    k = torch.exp(-taps.view(1, -1) ** 2 / (2 * s * s))
    return k / k.sum(dim=1, keepdim=True)
