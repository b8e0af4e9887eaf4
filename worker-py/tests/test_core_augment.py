"""Batched augmentations on constant and patterned images (docs/algorithm.md §5)."""
from dataclasses import replace

import pytest
import torch

import colorsys
import math

from byol_worker.core.augment import ViewAugment, crop_boxes, gaussian_kernels
from byol_worker.core.colour import adjust_hsv, hsv_to_rgb, rgb_to_hsv

torch.set_num_threads(1)

OFF = {"cropScale": [1.0, 1.0], "cropRatio": [1.0, 1.0], "flipProb": 0.0, "jitterProb": 0.0, "brightness": 0.0,
       "contrast": 0.0, "saturation": 0.0, "hue": 0.0, "grayscaleProb": 0.0, "blurProb": 0.0,
       "blurSigma": [0.1, 2.0], "solarizeProb": 0.0}
PAPER_VIEW2 = {"cropScale": [0.08, 1.0], "cropRatio": [0.75, 4 / 3], "flipProb": 0.5, "jitterProb": 0.8,
               "brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1, "grayscaleProb": 0.2,
               "blurProb": 0.5, "blurSigma": [0.1, 2.0], "solarizeProb": 0.2}
IDENTITY_NORM = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}


def _aug(size=32, norm=IDENTITY_NORM, **over):
    return ViewAugment({**OFF, **over}, size, norm)


def _run(aug, x, seed=0):
    return aug.apply(x, aug.sample(x.shape[0], torch.Generator().manual_seed(seed)))


def _const(rgb, n=4, hw=32):
    return torch.tensor(rgb, dtype=torch.uint8).view(1, 1, 1, 3).expand(n, hw, hw, 3).contiguous()


def _rand(n=4, hw=32, seed=1):
    return torch.randint(0, 256, (n, hw, hw, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _nchw(x):
    return x.permute(0, 3, 1, 2).float() / 255


def test_full_crop_at_scale_one_is_identity():
    x = _rand()
    out = _run(_aug(), x)
    assert out.shape == (4, 3, 32, 32) and out.dtype == torch.float32
    torch.testing.assert_close(out, _nchw(x), atol=1e-5, rtol=0)


def test_crop_box_pixels_and_resize():
    aug = _aug()
    x = _rand(n=2, hw=64)
    p = aug.sample(2, torch.Generator().manual_seed(0))
    # area 0.25*64*64 at ratio 1 -> 32x32 box; offset floor(0.5 * (64-32+1)) = 16, 0
    p = replace(p, crop_scale=torch.full((2,), 0.25), crop_logratio=torch.zeros(2),
                crop_ux=torch.full((2,), 0.5), crop_uy=torch.zeros(2))
    out = aug.apply(x, p)  # 32 px output from a 32 px box: an exact copy
    torch.testing.assert_close(out, _nchw(x)[:, :, 0:32, 16:48], atol=1e-5, rtol=0)
    big = ViewAugment(OFF, 64, IDENTITY_NORM).apply(x, replace(p, crop_ux=torch.zeros(2)))
    assert big.shape == (2, 3, 64, 64)  # upsampled 2x from the top-left 32x32 box
    torch.testing.assert_close(big[:, :, 1:63:2, 1:63:2].mean(), _nchw(x)[:, :, :32, :32].mean(), atol=0.02, rtol=0)


def test_crop_boxes_hand_values():
    p = _aug().sample(4, torch.Generator())
    p = replace(p, crop_scale=torch.tensor([0.5, 1.0, 0.08, 1.0]),
                crop_logratio=torch.tensor([math.log(2.0), math.log(4 / 3), 0.0, 0.0]),
                crop_ux=torch.tensor([0.999, 0.3, 0.0, 0.7]), crop_uy=torch.tensor([0.5, 0.0, 0.999, 0.7]))
    x0, y0, w, h = crop_boxes(p, 100, 100)
    # 0.5*1e4 area at r=2: w = round(sqrt(1e4)) = 100, h = round(sqrt(2500)) = 50; y0 = floor(0.5*51) = 25
    # scale 1 at r=4/3: w = round(115.47) -> clipped to 100, h = round(86.60) = 87
    # 0.08*1e4 = 800 at r=1: w = h = round(28.28) = 28; offsets floor(0.999*73) = 72
    assert w.tolist() == [100, 100, 28, 100] and h.tolist() == [50, 87, 28, 100]
    assert x0.tolist() == [0, 0, 0, 0] and y0.tolist() == [25, 0, 72, 0]


def test_gaussian_kernel_hand_values():
    k = gaussian_kernels(torch.tensor([1.0, 0.0]), 1)
    e = math.exp(-0.5)
    torch.testing.assert_close(k[0], torch.tensor([e, 1.0, e]) / (1 + 2 * e))
    assert k[1].tolist() == [0.0, 1.0, 0.0]  # sigma 0 = no blur, exactly
    impulse = torch.zeros(1, 5, 5, 3, dtype=torch.uint8)
    impulse[0, 2, 2] = 255
    aug = _aug(size=5, blurProb=1.0, blurSigma=[1.0, 1.0])
    aug.blur_radius = 1  # 5 px would give radius 0; force the 3-tap kernel
    out = _run(aug, impulse)[0, 0]
    torch.testing.assert_close(out[1:4, 1:4], torch.outer(k[0], k[0]), atol=1e-5, rtol=0)


def test_hsv_matches_colorsys():
    x = torch.rand(1, 3, 4, 5, generator=torch.Generator().manual_seed(11))
    x[0, :, 0, 0] = torch.tensor([0.2, 0.2, 0.2])  # grey: hue 0, saturation 0
    x[0, :, 0, 1] = torch.tensor([0.9, 0.1, 0.9])  # max shared by r and b
    h, s, v = rgb_to_hsv(x)
    for i in range(4):
        for j in range(5):
            ref = colorsys.rgb_to_hsv(*x[0, :, i, j].tolist())
            got = (h[0, i, j].item(), s[0, i, j].item(), v[0, i, j].item())
            assert got == pytest.approx(ref, abs=1e-6), (i, j)


def test_flip():
    x = _rand()
    torch.testing.assert_close(_run(_aug(flipProb=1.0), x), _nchw(x).flip(-1), atol=1e-5, rtol=0)


def test_solarize_constant():
    hi, lo = _const([204, 204, 204]), _const([51, 51, 51])  # 0.8, 0.2
    torch.testing.assert_close(_run(_aug(solarizeProb=1.0), hi), torch.full((4, 3, 32, 32), 0.2), atol=1e-5, rtol=0)
    torch.testing.assert_close(_run(_aug(solarizeProb=1.0), lo), torch.full((4, 3, 32, 32), 0.2), atol=1e-5, rtol=0)


def test_grayscale_constant():
    out = _run(_aug(grayscaleProb=1.0), _const([255, 0, 102]))
    luma = 0.2989 * 1.0 + 0.1140 * 0.4
    torch.testing.assert_close(out, torch.full((4, 3, 32, 32), luma), atol=1e-5, rtol=0)


def test_brightness_is_additive():
    aug = _aug(jitterProb=1.0, brightness=0.4)
    x = _const([128, 128, 128], n=64)
    p = aug.sample(64, torch.Generator().manual_seed(3))
    out = aug.apply(x, p)
    expected = (128 / 255 + p.brightness).clamp(0, 1).view(-1, 1, 1, 1).expand_as(out)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert p.brightness.min() < -0.2 and p.brightness.max() > 0.2  # U[-0.4, 0.4]
    assert torch.all(p.contrast == 1) and torch.all(p.saturation == 1)  # disabled ops stay neutral


def test_jitter_gate_and_contrast_around_channel_mean():
    aug = _aug(jitterProb=0.5, contrast=0.4)
    x = _rand(n=32)
    p = aug.sample(32, torch.Generator().manual_seed(4))
    out = aug.apply(x, p)
    src = _nchw(x)
    off = p.contrast == 1
    assert 4 < int(off.sum()) < 28  # roughly half gated off
    torch.testing.assert_close(out[off], src[off], atol=1e-5, rtol=0)
    mean = src.mean(dim=(2, 3), keepdim=True)
    expected = ((src - mean) * p.contrast.view(-1, 1, 1, 1) + mean).clamp(0, 1)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    # contrast of a constant image changes nothing
    torch.testing.assert_close(_run(aug, _const([10, 200, 90])), _nchw(_const([10, 200, 90])), atol=1e-5, rtol=0)


@pytest.mark.parametrize("semantics", [None, "torchvision"])
def test_each_image_runs_its_own_four_jitter_ops_in_its_own_order(semantics):
    """The batched jitter against a loop over images that applies each image's ops one by one, in its order."""
    sem = TV if semantics else None
    aug = ViewAugment({**OFF, "jitterProb": 0.8, "brightness": 0.4, "contrast": 0.4, "saturation": 0.2,
                       "hue": 0.1}, 32, IDENTITY_NORM, semantics=sem)
    x = _rand(n=24)
    p = aug.sample(24, torch.Generator().manual_seed(6))
    assert len({tuple(o) for o in p.order.tolist()}) > 8  # many different orders in the batch
    gray_w = torch.tensor([0.2989, 0.5870, 0.1140]).view(1, 3, 1, 1)
    expected = []
    for i, img in enumerate(_nchw(x).split(1)):
        for op in p.order[i].tolist():
            if op == 0:
                img = (img * p.brightness[i] if semantics else img + p.brightness[i]).clamp(0, 1)
            elif op == 1:
                mean = ((img * gray_w).sum(1, keepdim=True) if semantics else img).mean(dim=(2, 3), keepdim=True)
                img = ((img - mean) * p.contrast[i] + mean).clamp(0, 1)
            elif op == 2 and semantics:
                luma = (img * gray_w).sum(1, keepdim=True)
                img = ((img - luma) * p.saturation[i] + luma).clamp(0, 1)
            else:
                sat, hue = (p.saturation[i:i + 1], torch.zeros(1)) if op == 2 else (torch.ones(1), p.hue[i:i + 1])
                img = adjust_hsv(img, sat, hue)
        expected.append(img)
    torch.testing.assert_close(aug.apply(x, p), torch.cat(expected), atol=1e-5, rtol=0)


def test_hsv_round_trip_and_hue_saturation():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(hsv_to_rgb(*rgb_to_hsv(x)), x, atol=1e-5, rtol=0)
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(adjust_hsv(red, torch.tensor([1.0]), torch.tensor([1 / 3])),
                               torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(adjust_hsv(red, torch.tensor([0.0]), torch.tensor([0.0])),
                               torch.ones(1, 3, 1, 1), atol=1e-6, rtol=0)  # s = 0 -> grey at v = 1
    half = torch.tensor([0.8, 0.4, 0.4]).view(1, 3, 1, 1)  # s = 0.5, v = 0.8
    torch.testing.assert_close(adjust_hsv(half, torch.tensor([1.2]), torch.tensor([0.0])),
                               torch.tensor([0.8, 0.32, 0.32]).view(1, 3, 1, 1), atol=1e-6, rtol=0)
    gray = _const([90, 90, 90])  # saturation and hue leave a grey image alone
    torch.testing.assert_close(_run(_aug(jitterProb=1.0, saturation=0.2, hue=0.1), gray), _nchw(gray),
                               atol=1e-5, rtol=0)


def test_blur_constant_stays_constant_and_blurs_edges():
    aug = _aug(size=64, blurProb=1.0)
    assert aug.blur_radius == 3 and _aug(size=224).blur_radius == 11 and _aug().blur_radius == 1
    x = _const([30, 120, 250], hw=64)
    torch.testing.assert_close(_run(aug, x), _nchw(x), atol=1e-5, rtol=0)
    checker = ((torch.arange(64).view(-1, 1) + torch.arange(64)) % 2 * 255).to(torch.uint8)
    checker = checker.view(1, 64, 64, 1).expand(2, 64, 64, 3).contiguous()
    out = _run(aug, checker)
    assert out.std() < 0.5 * _nchw(checker).std()
    torch.testing.assert_close(out.mean(), torch.tensor(0.5), atol=0.01, rtol=0)


def test_normalisation():
    norm = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.5, 1.0]}
    out = _run(_aug(norm=norm), _const([255, 255, 255]))
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([2.0, 1.0, 0.5]), atol=1e-5, rtol=0)


def test_slices_match_whole_batch_and_draws_are_deterministic():
    aug = ViewAugment(PAPER_VIEW2, 32, {"mean": [0.4914, 0.4822, 0.4465], "std": [0.247, 0.2435, 0.2616]})
    x = _rand(n=12, hw=40)
    p = aug.sample(12, torch.Generator().manual_seed(7))
    whole = aug.apply(x, p)
    parts = torch.cat([aug.apply(x[a:b], p.slice(a, b)) for a, b in ((0, 3), (3, 8), (8, 12))])
    torch.testing.assert_close(parts, whole, atol=1e-5, rtol=0)
    again = aug.sample(12, torch.Generator().manual_seed(7))
    assert all(torch.equal(getattr(p, f), getattr(again, f)) for f in ("crop_scale", "order", "hue", "blur_sigma"))
    assert torch.isfinite(whole).all()
    assert sorted(p.order[0].tolist()) == [0, 1, 2, 3]


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="missing cropScale"):
        ViewAugment({k: v for k, v in OFF.items() if k != "cropScale"}, 32, IDENTITY_NORM, name="view1")
    with pytest.raises(ValueError, match="flipProb"):
        _aug(flipProb=1.5)
    with pytest.raises(ValueError, match="uint8 NHWC"):
        _aug().apply(torch.zeros(2, 3, 32, 32), _aug().sample(2, torch.Generator()))
    with pytest.raises(ValueError, match="params were drawn for 3"):
        _aug().apply(_rand(n=2), _aug().sample(3, torch.Generator()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    aug = ViewAugment(PAPER_VIEW2, 32, IDENTITY_NORM)
    x = _rand(n=8, hw=40)
    p = aug.sample(8, torch.Generator().manual_seed(9))
    torch.testing.assert_close(aug.apply(x.cuda(), p.to("cuda")).cpu(), aug.apply(x, p), atol=1e-4, rtol=0)


# ---------------------------------------------------------------- torchvision semantics (solo-learn, lightly)

TV = {"crop": "rejection", "resample": "bilinear", "brightness": "multiplicative", "contrast": "gray-mean",
      "saturation": "gray-blend"}


def _tv(size=32, **over):
    return ViewAugment({**OFF, **over}, size, IDENTITY_NORM, semantics=TV)


def test_brightness_is_a_factor_in_torchvision_semantics():
    aug = _tv(jitterProb=1.0, brightness=0.4)
    x = _const([128, 128, 128], n=64)
    p = aug.sample(64, torch.Generator().manual_seed(3))
    out = aug.apply(x, p)
    assert p.brightness.min() >= 0.6 and p.brightness.max() <= 1.4 and p.brightness.min() < 0.8
    expected = (128 / 255 * p.brightness).clamp(0, 1).view(-1, 1, 1, 1).expand_as(out)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    off = _tv(jitterProb=0.0, brightness=0.4)  # gated off: factor 1, the image unchanged
    torch.testing.assert_close(_run(off, x), _nchw(x), atol=1e-6, rtol=0)


def test_contrast_around_the_grayscale_mean_and_saturation_as_a_grey_blend():
    x = _rand(n=16)
    src = _nchw(x)
    gray_w = torch.tensor([0.2989, 0.5870, 0.1140]).view(1, 3, 1, 1)
    aug = _tv(jitterProb=1.0, contrast=0.4)
    p = aug.sample(16, torch.Generator().manual_seed(4))
    mean = (src * gray_w).sum(1, keepdim=True).mean(dim=(2, 3), keepdim=True)  # one scalar per image
    expected = ((src - mean) * p.contrast.view(-1, 1, 1, 1) + mean).clamp(0, 1)
    torch.testing.assert_close(aug.apply(x, p), expected, atol=1e-5, rtol=0)
    aug = _tv(jitterProb=1.0, saturation=0.5)
    p = aug.sample(16, torch.Generator().manual_seed(5))
    luma = (src * gray_w).sum(1, keepdim=True)
    expected = ((src - luma) * p.saturation.view(-1, 1, 1, 1) + luma).clamp(0, 1)
    torch.testing.assert_close(aug.apply(x, p), expected, atol=1e-5, rtol=0)


def test_rejection_crop_takes_the_first_draw_that_fits_else_the_centre():
    p = _tv().sample(3, torch.Generator())
    s, r, u = torch.ones(3, 10), torch.zeros(3, 10), torch.zeros(3, 10)
    # image 0: draw 0 (area 1, r = 4/3 -> w = 115 > 100) does not fit; draw 1 (area 0.25, r = 1 -> 50x50) does
    r[0, 0], s[0, 1], u[0, 1] = math.log(4 / 3), 0.25, 0.999
    # image 1: no draw fits (all 115 x 87): torchvision's fallback is the whole (square) image, centred
    r[1] = math.log(4 / 3)
    # image 2: draw 0 fits at once
    s[2, 0] = 0.09
    p = replace(p, crop_scale=s, crop_logratio=r, crop_ux=u, crop_uy=u.clone())
    x0, y0, w, h = crop_boxes(p, 100, 100, (3 / 4, 4 / 3))
    assert w.tolist() == [50, 100, 30] and h.tolist() == [50, 100, 30]
    assert x0.tolist() == [50, 0, 0] and y0.tolist() == [50, 0, 0]  # floor(0.999 * 51) = 50
    # a wide image with no fitting draw: cut to the widest allowed ratio (4/3), centred
    p = replace(p, crop_scale=torch.ones(1, 10), crop_logratio=torch.full((1, 10), math.log(4 / 3)) + 1,
                crop_ux=torch.zeros(1, 10), crop_uy=torch.zeros(1, 10))
    x0, y0, w, h = crop_boxes(p, 30, 90, (3 / 4, 4 / 3))
    assert (w.item(), h.item(), x0.item(), y0.item()) == (40, 30, 25, 0)


def test_bilinear_resampling_of_a_crop_is_plain_bilinear_interpolation():
    import torch.nn.functional as F
    aug = _tv(size=32)
    x = _rand(n=2, hw=32)
    p = aug.sample(2, torch.Generator().manual_seed(0))
    p = replace(p, crop_scale=torch.full((2, 10), 0.25), crop_logratio=torch.zeros(2, 10),
                crop_ux=torch.zeros(2, 10), crop_uy=torch.zeros(2, 10))  # the top-left 16x16 box
    expected = F.interpolate(_nchw(x)[:, :, :16, :16], size=(32, 32), mode="bilinear", align_corners=False)
    # the last row and column sample half a pixel past the box, which grid_sample takes from the image
    torch.testing.assert_close(aug.apply(x, p)[..., :31, :31], expected[..., :31, :31], atol=1e-5, rtol=0)


def test_unknown_semantics_name_the_field():
    with pytest.raises(ValueError, match=r"augment.semantics.crop: 'random'.*crop: single-draw\|rejection"):
        ViewAugment(OFF, 32, IDENTITY_NORM, semantics={"crop": "random"})
