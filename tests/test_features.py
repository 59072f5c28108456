import hashlib
import http.server
import io
import pickle
import socket
import threading

import pytest
import torch
from torch import nn

import gan.features as features_module
from gan.config import MetricsConfig
from gan.errors import GanError
from gan.features import RandomFeatures, embed, load_feature_space

CPU = torch.device("cpu")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # deprecated in torch, still supported


class ChannelMeans(nn.Module):
    """A tiny deterministic feature extractor: each channel's mean and spread."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([images.mean((2, 3)), images.std((2, 3))], 1)


def scripted(tmp_path, module: nn.Module = ChannelMeans()) -> str:
    path = tmp_path / "features.pt"
    torch.jit.save(torch.jit.script(module), str(path))
    return str(path)


def images(n: int, seed: int = 0, channels: int = 3) -> torch.Tensor:
    return torch.randint(0, 256, (n, channels, 16, 16), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_the_random_space_is_fixed_and_sees_content():
    a, b = RandomFeatures(), RandomFeatures()
    batch = images(4)
    assert torch.equal(embed(a, batch, CPU, 3), embed(b, batch, CPU, 3))  # same weights every time, any batching
    features = embed(a, batch, CPU, 4)
    assert features.shape == (4, 480) and not torch.allclose(features[0], features[1])
    assert embed(a, images(2, channels=1), CPU, 2).shape == (2, 480)  # grayscale runs too


def test_auto_without_inception_weights_falls_back_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    lines = []
    space = load_feature_space(MetricsConfig(), CPU, lines.append)
    assert space.name == "random" and not space.comparable
    assert "no Inception weights at" in lines[0] and "not with published FIDs" in lines[0]


def test_missing_inception_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(GanError, match="no Inception weights at .*missing.pth"):
        load_feature_space(MetricsConfig(inception_weights=str(tmp_path / "missing.pth")), CPU)


def stand_in_inception_weights(path):
    """Real FID weights are a download; randomly initialised ones of the same architecture stand in for them."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    original = FeatureExtractorInceptionV3.load_state_dict
    FeatureExtractorInceptionV3.load_state_dict = lambda self, state: None
    try:
        empty = io.BytesIO()
        torch.save({}, empty)
        empty.seek(0)
        weights = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], empty).state_dict()
    finally:
        FeatureExtractorInceptionV3.load_state_dict = original
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(weights, path)
    return path


@pytest.fixture
def weights_server(tmp_path, monkeypatch):
    """An HTTP server on 127.0.0.1 serving stand-in weights; it counts the requests."""
    served = stand_in_inception_weights(tmp_path / "served" / features_module.INCEPTION_FILES[0])
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served.parent), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    monkeypatch.setattr(features_module, "fetch_url", torch.hub.download_url_to_file)  # to 127.0.0.1 only
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/{served.name}", hashlib.sha256(served.read_bytes()).hexdigest(), \
        requests
    server.shutdown()


def test_inception_asked_for_by_name_is_downloaded_once_into_the_hub_cache(tmp_path, monkeypatch, weights_server):
    url, sha256, requests = weights_server
    monkeypatch.setattr(features_module, "INCEPTION_URL", url)
    monkeypatch.setattr(features_module, "INCEPTION_SHA256", sha256)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    lines = []
    space = load_feature_space(MetricsConfig(features="inception"), CPU, lines.append)
    cached = tmp_path / "torch" / "hub" / "checkpoints" / features_module.INCEPTION_FILES[0]
    assert space.name == "inception" and cached.is_file() and len(requests) == 1
    assert lines == [f"downloading the FID Inception-v3 weights (92 MB, once) from {url} to {cached}"]
    assert embed(space, images(2), CPU, 2).shape == (2, 2048)
    load_feature_space(MetricsConfig(features="inception"), CPU, lines.append)
    load_feature_space(MetricsConfig(), CPU, lines.append)  # auto now finds them too
    assert len(requests) == 1 and len(lines) == 1


def test_a_download_that_is_not_the_published_file_is_refused_and_not_kept(tmp_path, monkeypatch, weights_server):
    url, sha256, requests = weights_server
    monkeypatch.setattr(features_module, "INCEPTION_URL", url)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # the real hash: the stand-in does not match it
    with pytest.raises(GanError, match=r"^cannot download the Inception weights \(RuntimeError: invalid hash value"):
        load_feature_space(MetricsConfig(features="inception"), CPU, lambda _: None)
    assert list((tmp_path / "torch" / "hub" / "checkpoints").iterdir()) == []


def test_offline_the_download_fails_with_the_url_and_where_to_put_the_file(tmp_path, monkeypatch):
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{features_module.INCEPTION_FILES[0]}"
    monkeypatch.setattr(features_module, "INCEPTION_URL", url)
    monkeypatch.setattr(features_module, "fetch_url", torch.hub.download_url_to_file)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / features_module.INCEPTION_FILES[0]
    with pytest.raises(GanError) as error:
        load_feature_space(MetricsConfig(features="inception"), CPU, lambda _: None)
    message = str(error.value)
    assert message.startswith("cannot download the Inception weights (URLError: ")
    assert message.endswith(f"Download {url} to {cached} (or anywhere, and pass --inception-weights FILE), or use "
                            f"--features random")


def test_auto_never_downloads(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("auto must not download")

    monkeypatch.setattr(features_module, "fetch_url", no_download)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert load_feature_space(MetricsConfig(features="auto"), CPU, lambda _: None).name == "random"


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_bad_or_unsafe_inception_weights_are_refused(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(GanError, match="cannot use .*garbage.pth as Inception-v3 FID weights"):
        load_feature_space(MetricsConfig(inception_weights=str(garbage)), CPU)
    unsafe = tmp_path / "unsafe.pth"
    with unsafe.open("wb") as f:
        pickle.dump({"weights": io.StringIO("arbitrary object")}, f)  # weights_only=True must refuse to unpickle it
    with pytest.raises(GanError, match="cannot use .*unsafe.pth"):
        load_feature_space(MetricsConfig(inception_weights=str(unsafe)), CPU)
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)  # a real state dict, of another network
    with pytest.raises(GanError, match="cannot use .*other.pth"):
        load_feature_space(MetricsConfig(inception_weights=str(other)), CPU)


def test_inception_weights_load_safely_and_give_2048_features(tmp_path):
    path = stand_in_inception_weights(tmp_path / "inception.pth")
    space = load_feature_space(MetricsConfig(features="inception", inception_weights=str(path)), CPU)
    assert space.name == "inception" and space.comparable
    assert embed(space, images(2), CPU, 2).shape == (2, 2048)


def test_a_torchscript_file_is_a_feature_space(tmp_path):
    space = load_feature_space(MetricsConfig(features=scripted(tmp_path)), CPU)
    white = torch.full((1, 3, 16, 16), 255, dtype=torch.uint8)
    assert embed(space, white, CPU, 1)[0, :3].tolist() == [1.0, 1.0, 1.0]  # it receives RGB in [0, 1]
    assert space.num_features == 6 and not space.comparable
    assert embed(space, images(2, channels=1), CPU, 2).shape == (2, 6)


def test_unusable_feature_files_are_clear_errors(tmp_path):
    with pytest.raises(GanError, match="no such file"):
        load_feature_space(MetricsConfig(features=str(tmp_path / "nope.pt")), CPU)
    not_script = tmp_path / "weights.pt"
    torch.save({"a": torch.zeros(1)}, not_script)
    with pytest.raises(GanError, match="is not a TorchScript file"):
        load_feature_space(MetricsConfig(features=str(not_script)), CPU)

    class PerPixel(nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return images

    space = load_feature_space(MetricsConfig(features=scripted(tmp_path, PerPixel())), CPU)
    with pytest.raises(GanError, match=r"must return one vector per image, shape \(N, D\); it returned \(2, 3, 16, 16\)"):
        embed(space, images(2), CPU, 2)

    class Fixed32(nn.Module):  # a model made for one resolution, used at another
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3 * 32 * 32, 4)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.linear(images.flatten(1))

    space = load_feature_space(MetricsConfig(features=scripted(tmp_path, Fixed32())), CPU)
    with pytest.raises(GanError, match=r"features.pt fails on images of shape \(2, 3, 16, 16\): .*"):
        embed(space, images(2), CPU, 2)

    class NotANumber(nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return images.mean((2, 3)) * float("nan")

    space = load_feature_space(MetricsConfig(features=scripted(tmp_path, NotANumber())), CPU)
    with pytest.raises(GanError, match="gave NaN or infinite features"):
        embed(space, images(2), CPU, 2)
