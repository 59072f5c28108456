"""DCGAN generator and discriminator for any power-of-two resolution (Radford et al. 2016), plus the moving
average of the generator that grids and exports use. Pure modules: no IO, no devices, no optimizers."""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from gan.config import ModelConfig

_MAX_WIDTH_MULTIPLIER = 8  # DCGAN's widest layer is 8x the base width; deeper nets stop doubling there


class ClassBatchNorm(nn.Module):
    """BatchNorm whose scale and shift are looked up per class (conditional BatchNorm, de Vries et al. 2017, as in
    SNGAN and BigGAN): the class steers every generator block, not only the input."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        _add_class_strength(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # At strength s the class's scale is blended from 1 and its shift from 0 (lerp is exact at s = 1).
        scale = torch.lerp(torch.ones_like(self.scale.weight[:1]), self.scale(labels), self.class_strength)
        return torch.addcmul(self.class_strength * self.shift(labels)[..., None, None], self.norm(x),
                             scale[..., None, None])


def _add_class_strength(module: nn.Module) -> None:
    """How much the class counts, from 0 (unconditional) to 1: transitional conditioning (Shahbazi et al. 2022)
    starts unconditional and blends the class in (see `set_class_strength`). A buffer, so that a compiled
    network does not recompile for each value, and not saved: a network is built at full strength."""
    module.register_buffer("class_strength", torch.ones(()), persistent=False)


@torch.no_grad()
def set_class_strength(networks: Iterable[nn.Module], strength: float) -> None:
    """Set how much the class counts (see `_add_class_strength`) in every module of `networks` that has it."""
    for network in networks:
        for module in network.modules():
            if isinstance(getattr(module, "class_strength", None), torch.Tensor):
                module.class_strength.fill_(strength)


def class_strength_at(step: int, blend_steps: int) -> float:
    """0 for the first half of `blend_steps`, then rising linearly to 1 at `blend_steps`."""
    half = blend_steps / 2
    return min(1.0, max(0.0, (step - half) / half))


def _dcgan_init(module: nn.Module) -> None:
    """Weights N(0, 0.02), BatchNorm scales N(1, 0.02): the initialisation DCGAN's stability was tuned on."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, ClassBatchNorm):  # after its embeddings (apply visits children first)
        nn.init.normal_(module.scale.weight, 1.0, 0.02)
        nn.init.zeros_(module.shift.weight)


def _stages(resolution: int) -> int:
    """Number of 2x resolution changes between 4x4 and `resolution`."""
    return int(math.log2(resolution)) - 2


class Generator(nn.Module):
    """z (B, z_dim) [and class labels (B,)] -> images (B, channels, resolution, resolution) in [-1, 1].

    A conditional generator takes the class through conditional BatchNorm in every block (`cbn`), or as a learned
    embedding joined to z (`concat`, Mirza & Osindero 2014), which steers the first layer only.
    """

    def __init__(self, cfg: ModelConfig, resolution: int, channels: int, num_classes: int = 0):
        super().__init__()
        self.z_dim = cfg.z_dim
        self.num_classes = num_classes
        joined = num_classes and cfg.g_conditioning == "concat"
        self.embed = nn.Embedding(num_classes, cfg.z_dim) if joined else None
        _add_class_strength(self)
        stages = _stages(resolution)

        def width(i: int) -> int:  # i = 0 at 4x4, halving towards the output
            return cfg.g_channels * min(_MAX_WIDTH_MULTIPLIER, 2 ** (stages - 1 - i))

        def norm(channels: int) -> nn.Module:
            return ClassBatchNorm(channels, num_classes) if num_classes and not joined else nn.BatchNorm2d(channels)

        inputs = cfg.z_dim * (2 if joined else 1)
        layers = [  # (B, inputs, 1, 1) -> (B, width(0), 4, 4)
            nn.ConvTranspose2d(inputs, width(0), 4, 1, 0, bias=False), norm(width(0)), nn.ReLU(True),
        ]
        for i in range(1, stages):  # each doubles the resolution: 8x8 ... resolution/2
            layers += [nn.ConvTranspose2d(width(i - 1), width(i), 4, 2, 1, bias=False), norm(width(i)), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(width(stages - 1), channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.ModuleList(layers)  # numbered as the nn.Sequential of earlier versions: their weights load
        # The embedding stays at DCGAN's N(0, 0.02): at z's scale, N(0, 1), the class outweighed the noise and
        # each class collapsed to one image (benchmarks/conditioning.py).
        self.apply(_dcgan_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.class_strength * self.embed(labels)], dim=1)
        x = z.view(z.shape[0], -1, 1, 1)
        for layer in self.net:
            x = layer(x, labels) if isinstance(layer, ClassBatchNorm) else layer(x)
        return x


class Discriminator(nn.Module):
    """images (B, channels, resolution, resolution) [and class labels (B,)] -> real/fake logits (B,).

    With spectral normalisation every convolution is normalised and BatchNorm is dropped (the SNGAN
    discriminator): D's output then depends on each image alone, which R1 and small batches need. A conditional
    discriminator adds a projection term <embed(y), features(x)> (Miyato & Koyama 2018).
    """

    def __init__(self, cfg: ModelConfig, resolution: int, channels: int, num_classes: int = 0):
        super().__init__()
        stages = _stages(resolution)
        spectral = cfg.spectral_norm == "on"

        def width(i: int) -> int:  # i = 0 at resolution/2, doubling towards 4x4
            return cfg.d_channels * min(_MAX_WIDTH_MULTIPLIER, 2**i)

        def conv(cin: int, cout: int, *args) -> nn.Module:
            return nn.Conv2d(cin, cout, *args, bias=spectral)

        # No BatchNorm on the first layer: DCGAN found it destabilises training on raw pixels.
        layers = [conv(channels, width(0), 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for i in range(1, stages):  # each halves the resolution, down to 4x4
            norm = [] if spectral else [nn.BatchNorm2d(width(i))]
            layers += [conv(width(i - 1), width(i), 4, 2, 1), *norm, nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)  # (B, width, 4, 4)
        self.head = conv(width(stages - 1), 1, 4, 1, 0)  # (B, width, 4, 4) -> (B, 1, 1, 1)
        self.embed = nn.Embedding(num_classes, width(stages - 1)) if num_classes else None
        _add_class_strength(self)
        self.apply(_dcgan_init)
        if spectral:  # after initialisation, which must write the raw weights
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Embedding)):
                    nn.utils.parametrizations.spectral_norm(module)

    def blocks(self) -> list[list[nn.Parameter]]:
        """The parameters of each downsampling block, input side first (a block: a convolution and what
        follows it up to the next one); the head and the class embedding are not in a block."""
        blocks: list[list[nn.Parameter]] = []
        for layer in self.features:
            if isinstance(layer, nn.Conv2d):
                blocks.append([])
            blocks[-1] += list(layer.parameters())
        return blocks

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                classes: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (B,); with `classes`, also the projection score of every class (B, num_classes), which the
        class term reads as a classifier's logits (an auxiliary classifier that needs no weights of its own)."""
        features = self.features(images)
        logits = self.head(features).flatten()
        if self.embed is None:
            return logits
        # Mean, not SNGAN's sum: summed over 4x4 the class term outweighed the rest and collapsed each class
        # to a single image in small runs.
        pooled = features.mean((2, 3))  # (B, width)
        if not classes:
            return logits + self.class_strength * (self.embed(labels) * pooled).sum(1)
        scores = pooled @ self.embed.weight.t()  # (B, num_classes)
        return logits + self.class_strength * scores.gather(1, labels[:, None]).squeeze(1), scores


class PerClass(nn.Module):
    """One unconditional network per class, each trained only on its own class's images (real and generated), so a
    sample's label is right by construction (Frid-Adar et al. 2018): inputs (B, ...) and labels (B,) -> the
    output of each row's own network, rows in the order given."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.num_classes = len(members)
        self.z_dim = getattr(members[0], "z_dim", None)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, **options) -> torch.Tensor:
        """`options` go to every member (an unconditional D has no class scores to give)."""
        order = labels.argsort(stable=True)  # rows grouped by class, each group in its given order
        counts = torch.bincount(labels, minlength=self.num_classes).tolist()
        parts = inputs.index_select(0, order).split(counts)
        outputs = [member(part, **options) for member, part in zip(self.members, parts) if len(part)]
        return torch.cat(outputs).index_select(0, order.argsort())  # back into the rows' order

    def blocks(self) -> list[list[nn.Parameter]]:
        """Block i of every member together (see Discriminator.blocks), so --freeze-d freezes it in all."""
        return [sum(group, []) for group in zip(*(member.blocks() for member in self.members))]


def generator(cfg: ModelConfig, resolution: int, channels: int, num_classes: int = 0) -> nn.Module:
    """The generator `cfg` describes: per class (one for each), conditional, or unconditional (0 classes)."""
    if num_classes and cfg.conditional == "per-class":
        return PerClass([Generator(cfg, resolution, channels) for _ in range(num_classes)])
    return Generator(cfg, resolution, channels, num_classes)


def discriminator(cfg: ModelConfig, resolution: int, channels: int, num_classes: int = 0) -> nn.Module:
    """The discriminator that goes with `generator(cfg, ...)`."""
    if num_classes and cfg.conditional == "per-class":
        return PerClass([Discriminator(cfg, resolution, channels) for _ in range(num_classes)])
    return Discriminator(cfg, resolution, channels, num_classes)


def class_parameter_names(network: nn.Module) -> set[str]:
    """State-dict keys of a network's class parameters (its embeddings, also those of conditional BatchNorm):
    what a transfer to another set of classes starts afresh."""
    return {f"{prefix}.{key}" for prefix, module in network.named_modules() if isinstance(module, nn.Embedding)
            for key in module.state_dict()}


def ema_decay_at(step: int, decay: float) -> float:
    """Moving-average decay with a warm-up, so early grids are not dominated by the random initial weights."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameters only (BatchNorm statistics: `refresh_batchnorm_stats`)."""
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)


@torch.no_grad()
def refresh_batchnorm_stats(generator: nn.Module, batches: Iterable[tuple]) -> None:
    """Recompute BatchNorm running statistics for `generator`'s own weights from batches of its inputs (z, labels).

    The averaged generator's weights never produced the statistics the training generator collected, so its
    eval-mode output is only right with statistics measured on it ("standing statistics", as in BigGAN).
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
    generator.train()
    for inputs in batches:
        generator(*inputs)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    generator.eval()
