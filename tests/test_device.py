import pytest
import torch

from gan.device import autocast_dtype, pick_device
from gan.errors import GanError


def test_auto_is_cpu_here_and_explicit_cpu_works():
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert pick_device("auto").type == "cpu"
    assert pick_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_a_clear_error():
    with pytest.raises(GanError, match="--device cuda: no CUDA GPU"):
        pick_device("cuda")


def test_cpu_trains_in_fp32_unless_bf16_is_asked_for():
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, "auto") is None
    assert autocast_dtype(cpu, "fp32") is None
    assert autocast_dtype(cpu, "bf16") is torch.bfloat16
