import pytest
import torch

from gan import device as devices
from gan.device import autocast_dtype, cpu_has_native_bf16, match_parameter_layouts, pick_device
from gan.errors import GanError


def test_auto_is_cpu_here_and_explicit_cpu_works():
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert pick_device("auto").type == "cpu"
    assert pick_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_a_clear_error():
    with pytest.raises(GanError, match="--device cuda: no CUDA GPU"):
        pick_device("cuda")


@pytest.mark.parametrize("native", [True, False])
def test_cpu_trains_in_bf16_only_where_the_cpu_computes_it_natively(monkeypatch, native):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, "auto") is (torch.bfloat16 if native else None)
    assert autocast_dtype(cpu, "fp32") is None
    assert autocast_dtype(cpu, "bf16") is torch.bfloat16  # asked for: emulated where not native


@pytest.mark.parametrize("flags, native", [
    ("flags\t\t: fpu avx512f avx512_bf16 avx512_vnni", True),  # AMD Zen 4, Intel Cooper Lake
    ("flags\t\t: fpu avx512f amx_bf16 amx_tile", True),  # Intel Sapphire Rapids
    ("Features\t: fp asimd bf16 i8mm", True),  # Arm v8.6+
    ("flags\t\t: fpu avx2 avx512f avx512bw", False),  # AVX-512 without bf16: emulated, slower than fp32
])
def test_native_bf16_is_read_from_cpuinfo(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\n{flags}\n")
    assert cpu_has_native_bf16(str(cpuinfo)) is native
    assert cpu_has_native_bf16(str(tmp_path / "missing")) is False


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
