"""BYOL loss against hand-computed values."""
import math

import torch

from byol_worker.core.loss import byol_loss, l2_normalize, regression_loss, z_std


def test_regression_loss_hand_values():
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    z = torch.tensor([[2.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # same direction 0; opposite 4; cos = 4/5 -> 2 - 1.6; zero vector -> cos 0 -> 2 (no NaN)
    torch.testing.assert_close(regression_loss(p, z), torch.tensor([0.0, 4.0, 0.4, 2.0]))


def test_symmetric_loss_sums_directions_and_crosses_views():
    p1 = torch.tensor([[1.0, 0.0]])
    p2 = torch.tensor([[0.0, 1.0]])
    t1 = torch.tensor([[0.0, 1.0]])
    t2 = torch.tensor([[1.0, 1.0]])
    # p1 vs t2: cos = 1/sqrt2 -> 2 - sqrt2; p2 vs t1: cos 1 -> 0; sum
    assert byol_loss(p1, p2, t1, t2).item() == torch.tensor(2 - math.sqrt(2)).item()


def test_loss_is_fp32_from_bf16_and_mean_over_batch():
    p = torch.randn(8, 16).bfloat16()
    z = torch.randn(8, 16).bfloat16()
    out = byol_loss(p, p, z, z)
    assert out.dtype == torch.float32
    expected = 2 * regression_loss(p.float(), z.float()).mean()
    torch.testing.assert_close(out, expected)


def test_l2_normalize_and_z_std():
    x = torch.tensor([[3.0, 4.0]])
    torch.testing.assert_close(l2_normalize(x), torch.tensor([[0.6, 0.8]]))
    collapsed = torch.ones(5, 4)
    assert z_std(collapsed).item() == 0.0
    spread = torch.eye(4)  # rows are unit vectors; per-feature std over 4 rows of one-hot = 0.5
    torch.testing.assert_close(z_std(spread), torch.tensor(0.5))
