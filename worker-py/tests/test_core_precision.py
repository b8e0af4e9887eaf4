"""Precision/channels-last choice from device capabilities."""
import logging

import pytest
import torch

from byol_worker.core.precision import cpu_bf16_flags, resolve


def _cpuinfo(tmp_path, flags):
    f = tmp_path / "cpuinfo"
    f.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx512f {flags}\n\n")
    return str(f)


def test_auto_on_cpu_follows_flags(tmp_path):
    amx = _cpuinfo(tmp_path, "amx_bf16 amx_tile")
    assert cpu_bf16_flags(amx) == {"amx_bf16"}
    p = resolve("auto", "auto", "cpu", cpuinfo_path=amx)
    assert p.dtype == torch.bfloat16 and p.name == "bf16" and p.channels_last
    plain = tmp_path / "plain"
    plain.write_text("flags\t: fpu sse2 avx2\n")
    p = resolve("auto", False, "cpu", cpuinfo_path=str(plain))
    assert p.dtype is None and p.name == "fp32" and not p.channels_last
    assert resolve("auto", "auto", "cpu", cpuinfo_path=str(tmp_path / "missing")).dtype is None


def test_explicit_values_win(tmp_path, caplog):
    plain = _cpuinfo(tmp_path, "")
    with caplog.at_level(logging.WARNING, logger="byol_worker.core.precision"):
        p = resolve("bf16", True, "cpu", cpuinfo_path=plain)
    assert p.dtype == torch.bfloat16 and p.channels_last
    assert "spec.train.precision" in caplog.text
    assert resolve("fp32", "auto", "cpu", cpuinfo_path=_cpuinfo(tmp_path, "amx_bf16")).dtype is None


def test_bad_values_name_the_field():
    with pytest.raises(ValueError, match="spec.train.precision"):
        resolve("fp16")
    with pytest.raises(ValueError, match="spec.train.channelsLast"):
        resolve("auto", "yes")


def test_autocast_and_channels_last_helpers(tmp_path):
    p = resolve("bf16", True, "cpu", cpuinfo_path=_cpuinfo(tmp_path, "amx_bf16"))
    with p.autocast():
        y = torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4))
    assert y.dtype == torch.bfloat16
    conv = p.prepare_model(torch.nn.Conv2d(3, 4, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert p.prepare_input(torch.randn(1, 3, 5, 5)).is_contiguous(memory_format=torch.channels_last)
    with resolve("fp32", False, "cpu").autocast():
        assert torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4)).dtype == torch.float32
