"""The training state: one object whose saved fields are the checkpoint, restored by name."""

from dataclasses import dataclass

import torch

from helpers import tiny_config, tiny_state, write_images
from gan.state import TrainingState, zeros
from gan.step import train_step


@dataclass
class _WithAnotherTensor(TrainingState):
    """A new piece of state, declared the way a contributor would add it to TrainingState."""

    extra: torch.Tensor = zeros()


def _state(tmp_path, kind=TrainingState):
    write_images(tmp_path / "data", 8)
    cfg = tiny_config(tmp_path / "data", tmp_path / "runs")
    state = tiny_state(cfg)
    if kind is not TrainingState:
        state = kind(**{name: getattr(state, name) for name in state.__dataclass_fields__})
    return cfg, state


def _advance(state: TrainingState, cfg, steps: int) -> None:
    for step in range(1, steps + 1):
        train_step(state, cfg, None, step)


def test_the_checkpoint_holds_every_saved_field_by_its_name(tmp_path):
    _, state = _state(tmp_path)
    saved = state.state_dict()
    assert {"G", "D", "G_ema", "opt_G", "opt_D", "batches", "noise", "augment_generator", "augment_p", "lecam", "r1",
            "r2"} <= set(saved)  # (a field added later joins them with no change here)
    assert "policy" not in saved and "ranks" not in saved  # what the config rebuilds is not saved


def test_a_new_field_is_saved_and_restored_with_no_other_change(tmp_path):
    cfg, state = _state(tmp_path, _WithAnotherTensor)
    assert state.extra.item() == 0  # zeros() starts at zero on the training device
    state.extra = torch.tensor(2.5)
    _advance(state, cfg, 2)
    saved = state.state_dict()
    assert saved["extra"].item() == 2.5
    _, fresh = _state(tmp_path / "again", _WithAnotherTensor)
    fresh.load_state_dict(saved, lambda _: None)
    assert fresh.extra.item() == 2.5
    assert torch.equal(fresh.noise.get_state(), state.noise.get_state())
    assert all(torch.equal(a, b) for a, b in zip(fresh.nets.G.state_dict().values(), state.nets.G.state_dict().values()))


def test_a_checkpoint_older_than_a_field_leaves_it_fresh(tmp_path):
    cfg, state = _state(tmp_path)
    _advance(state, cfg, 1)
    older = {key: value for key, value in state.state_dict().items() if key != "lecam"}
    _, fresh = _state(tmp_path / "again")
    before = fresh.lecam.state_dict()
    fresh.load_state_dict(older, lambda _: None)
    assert fresh.lecam.state_dict() == before
    assert torch.equal(fresh.noise.get_state(), state.noise.get_state())
