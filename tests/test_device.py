import pytest
import torch

from gan.device import autocast_dtype, match_parameter_layouts, pick_device
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


def test_optimizer_moments_take_their_parameters_memory_layout():
    # A CPU checkpoint's moments are contiguous; on CUDA the parameters are channels_last and fused Adam
    # refuses the mix (seen on an H200), so loading re-lays them out.
    param = torch.nn.Parameter(torch.randn(2, 3, 4, 4).contiguous(memory_format=torch.channels_last))
    opt = torch.optim.Adam([param])
    param.grad = torch.ones_like(param)
    opt.step()
    opt.state[param]["exp_avg"] = opt.state[param]["exp_avg"].contiguous()
    before = opt.state[param]["exp_avg"].clone()
    match_parameter_layouts(opt)
    assert opt.state[param]["exp_avg"].stride() == param.stride()
    assert torch.equal(opt.state[param]["exp_avg"], before)
