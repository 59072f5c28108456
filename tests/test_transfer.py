"""--init-from and --freeze-d: a new run that starts from an earlier run's networks."""

import json

import pytest
import torch

from helpers import TINY_FLAGS, tiny_config, write_images
from gan.checkpoint import load_checkpoint
from gan.cli import main
from gan.errors import GanError
from gan.models import class_parameter_names
from gan.train import train


@pytest.fixture
def source_run(conditional_run):
    return conditional_run


@pytest.fixture
def new_classes(tmp_path):
    for i, name in enumerate(("birds", "fish", "frogs")):
        write_images(tmp_path / "wild" / name, 4, seed=10 + i)
    return tmp_path / "wild"


def _train(argv, capsys):
    code = main(["train", *TINY_FLAGS, *argv])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def test_init_from_a_run_with_other_classes_keeps_every_other_weight(source_run, new_classes, tmp_path, capsys):
    out = _train(["--data", str(new_classes), "--init-from", str(source_run), "--steps", "2", "--freeze-d", "2",
                  "--g-lr", "1e-30", "--out", str(tmp_path / "runs")], capsys)
    assert "new classes (birds, fish, frogs; the source had cats, dogs): the class embeddings start" in out
    run_dir = next((tmp_path / "runs").iterdir())
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["train"]["init_from"] == str((source_run / "best.pt").resolve())  # best.pt, when the run has one
    source, tuned = load_checkpoint(str(source_run)).state, load_checkpoint(str(run_dir)).state
    for network in ("G", "D"):
        classes = {k for k in tuned[network] if k.split(".")[0] == "embed" or ".scale." in k or ".shift." in k}
        for key, value in tuned[network].items():
            if key in classes:
                assert "_v" in key or value.shape[0] == 3  # three classes now, fresh
            elif network == "D" and key.startswith("features.") and "_u" not in key and "_v" not in key:
                assert torch.equal(value, source[network][key]), f"frozen {key} changed"  # both blocks frozen
            elif network == "G" and "running" not in key and "num_batches" not in key:
                # G trained at a vanishing learning rate: still the source's weights (up to Adam's tiny step)
                torch.testing.assert_close(value, source[network][key], atol=1e-6, rtol=0)
    assert not torch.equal(tuned["D"]["head.parametrizations.weight.original"],
                           source["D"]["head.parametrizations.weight.original"])  # the head trains


def test_freeze_d_holds_only_the_first_blocks(flat_folder, tmp_path):
    cfg = tiny_config(flat_folder, tmp_path / "runs", steps=3)
    cfg.train.freeze_d = 1
    start = train(tiny_config(flat_folder, tmp_path / "init", steps=1), log=lambda _: None)  # to compare with
    cfg.train.init_from = str(start.run_dir)
    result = train(cfg, log=lambda _: None)
    before, after = load_checkpoint(str(start.run_dir)).state["D"], load_checkpoint(str(result.run_dir)).state["D"]
    first, second = "features.0.parametrizations.weight.original", "features.2.parametrizations.weight.original"
    assert torch.equal(before[first], after[first]) and not torch.equal(before[second], after[second])


def test_too_many_frozen_blocks_are_refused(flat_folder, tmp_path):
    cfg = tiny_config(flat_folder, tmp_path / "runs")
    cfg.train.freeze_d = 3  # 16 px: two blocks
    with pytest.raises(GanError, match="--freeze-d 3 is more than the 2 blocks D has at 16 px"):
        train(cfg, log=lambda _: None)


def test_the_source_shape_is_inherited_and_a_different_one_named(source_run, new_classes, tmp_path, capsys):
    # Without --g-channels the source's width is used: the TINY_FLAGS' 8 match; asking for 16 is refused.
    code = main(["train", *TINY_FLAGS, "--data", str(new_classes), "--init-from", str(source_run), "--g-channels",
                 "16", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 1 and "--g-channels 8 in the checkpoint, 16 now" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # nothing written


def test_an_unconditional_source_cannot_start_a_conditional_run(flat_folder, new_classes, tmp_path):
    source = train(tiny_config(flat_folder, tmp_path / "src", steps=1), log=lambda _: None)
    cfg = tiny_config(new_classes, tmp_path / "runs")
    cfg.train.init_from = str(source.checkpoint)
    with pytest.raises(GanError, match="--conditional off in the checkpoint, on now"):
        train(cfg, log=lambda _: None)


def test_a_per_class_run_starts_only_from_a_per_class_run_of_the_same_classes(class_folder, new_classes, tmp_path):
    source_cfg = tiny_config(class_folder, tmp_path / "src", steps=1)
    source_cfg.model.conditional = "per-class"
    source = train(source_cfg, log=lambda _: None)
    same = tiny_config(class_folder, tmp_path / "same", steps=1)
    same.model.conditional, same.train.init_from = "per-class", str(source.checkpoint)
    assert train(same, log=lambda _: None).checkpoint.exists()
    other = tiny_config(new_classes, tmp_path / "other", steps=1)
    other.model.conditional, other.train.init_from = "per-class", str(source.checkpoint)
    with pytest.raises(GanError, match="start from a per-class run of the same classes"):
        train(other, log=lambda _: None)


def test_init_from_and_resume_together_are_refused(source_run, capsys):
    assert main(["train", "--resume", str(source_run), "--init-from", str(source_run)]) == 1
    assert "give one of them" in capsys.readouterr().err


def test_class_parameters_are_the_embeddings():
    from gan.config import ModelConfig
    from gan.models import Discriminator, Generator

    cbn = Generator(ModelConfig(g_conditioning="cbn", z_dim=4, g_channels=4), 16, 3, num_classes=2)
    assert class_parameter_names(cbn) == {f"net.{i}.{part}.weight" for i in (1, 4) for part in ("scale", "shift")}
    D = Discriminator(ModelConfig(spectral_norm="on", d_channels=4), 16, 3, num_classes=2)
    assert class_parameter_names(D) == {"embed.parametrizations.weight.original", "embed.parametrizations.weight.0._u",
                                        "embed.parametrizations.weight.0._v"}
