import pytest

from gan.config import RunConfig
from gan.errors import GanError


@pytest.mark.parametrize(
    "section, name, value, message",
    [
        ("data", "resolution", 48, "--resolution must be a power of two"),
        ("data", "resolution", 8, "--resolution must be a power of two"),
        ("data", "resolution", 2**40, "--resolution must be a power of two from 16 to 4096"),
        ("data", "background", "not-a-colour",
         "--background must be a colour: a name like white, or #rrggbb, got 'not-a-colour'"),
        ("train", "steps", 0, "--steps must be positive"),
        ("train", "beta1", 1.0, r"--beta1 must be in \[0, 1\)"),
        ("train", "ema_decay", -0.1, "--ema-decay must be in"),
        ("model", "z_dim", 0, "--z-dim must be in \\[1, 8192\\]"),
        ("train", "eval_count", 10**9, r"--eval-count must be 0 \(auto\) or in \[2, 50000\]"),
        ("data", "workers", 1000, r"--workers must be 0 \(auto\) or in \[1, 64\]"),
    ],
)
def test_validation_names_the_flag(section, name, value, message):
    cfg = RunConfig()
    setattr(getattr(cfg, section), name, value)
    with pytest.raises(GanError, match=message):
        cfg.validate()


def test_seeds_are_bounded_so_derived_streams_fit_in_64_bits():
    cfg = RunConfig()
    cfg.train.seed = 2**62
    with pytest.raises(GanError, match="--seed must be between 0 and"):
        cfg.validate()


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("r1_gamma", float("nan"), "--r1-gamma must be a finite number, got nan"),
        ("r1_gamma", -1.0, "--r1-gamma must be 0"),
        ("augment", " ", "--augment is empty"),
        ("augment", "translation,,cutout", "--augment: unknown augmentation ''"),
        ("augment_p", "often", "--augment-p must be auto or a number in"),
        ("augment_p", "1.5", "--augment-p must be auto or a number in"),
    ],
)
def test_regularisation_and_augmentation_flags_are_checked(name, value, message):
    cfg = RunConfig()
    setattr(cfg.train, name, value)
    with pytest.raises(GanError, match=message):
        cfg.validate()


def test_transitional_conditioning_needs_one_conditional_g_and_d():
    cfg = RunConfig()
    cfg.train.class_blend_steps = 100
    for conditional, classes in (("per-class", 3), ("auto", 1)):
        cfg.model.conditional = conditional
        with pytest.raises(GanError, match="--class-blend-steps .* train with --conditional on"):
            cfg.resolve_auto(num_images=50, num_classes=classes)
    cfg.model.conditional = "auto"
    cfg.resolve_auto(num_images=50, num_classes=3)
    assert cfg.model.conditional == "on"


def test_every_list_of_names_in_the_config_is_tied_to_its_code():
    """A name added to a list here without its code, or code left without its name, fails at once: each loss
    choice has its losses, each discriminator augmentation its own function (none falls through to another's)."""
    import dataclasses

    import torch

    from gan.config import AUGMENTATIONS, TrainConfig
    from gan.diffaugment import diff_augment
    from gan.losses import LOSSES

    [loss] = [f for f in dataclasses.fields(TrainConfig) if f.name == "loss"]
    assert set(loss.metadata["choices"]) == set(LOSSES)
    logits = torch.tensor([0.3, -1.2]), torch.tensor([-0.5, 0.8])
    d_losses = [float(LOSSES[name][0](*logits)) for name in LOSSES]
    assert len(set(d_losses)) == len(LOSSES)

    image = torch.arange(3 * 16 * 16, dtype=torch.float32).view(1, 3, 16, 16) / 384 - 1  # no symmetry to hide in
    made = [diff_augment(image, (name,), torch.tensor(1.0), torch.Generator().manual_seed(0)) for name in AUGMENTATIONS]
    assert all(not torch.equal(m, image) for m in made)
    assert all(not torch.equal(a, b) for i, a in enumerate(made) for b in made[i + 1:])
