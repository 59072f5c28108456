import torch

from gan.generate import noise_for_seeds


def test_truncation_bounds_every_coordinate_and_repeats_by_seed():
    plain = noise_for_seeds([1, 2, 3], 200)
    truncated = noise_for_seeds([1, 2, 3], 200, truncation=0.5)
    assert truncated.abs().max() <= 0.5 and plain.abs().max() > 0.5
    assert torch.equal(truncated, noise_for_seeds([1, 2, 3], 200, truncation=0.5))  # the same seeds, the same noise
    assert torch.equal(truncated[1], noise_for_seeds([2], 200, truncation=0.5)[0])  # each row depends on its seed only
    inside = plain.abs() <= 0.5
    assert torch.equal(truncated[inside], plain[inside])  # only the coordinates outside are drawn again
    assert torch.equal(noise_for_seeds([1], 200, truncation=0.0), plain[:1])  # 0: off


def test_a_checkpoint_from_within_the_class_blend_is_loaded_at_the_strength_it_was_trained_at(class_folder, tmp_path):
    from helpers import tiny_config
    from gan.checkpoint import load_checkpoint
    from gan.generate import load_discriminator, load_generator
    from gan.train import train

    cfg = tiny_config(class_folder, tmp_path / "runs", steps=3)
    cfg.train.class_blend_steps = 4  # unconditional to step 2, half the class at step 3
    checkpoint = load_checkpoint(str(train(cfg, log=lambda _: None).checkpoint))
    for network in (load_generator(checkpoint, torch.device("cpu")),
                    load_discriminator(checkpoint, torch.device("cpu"))):
        assert network.class_strength.item() == 0.5
