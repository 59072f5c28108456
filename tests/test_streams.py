import torch

from gan import streams
from gan.streams import seeded


def test_a_stream_repeats_for_its_seed_and_differs_from_its_neighbours():
    pairs = ((3, 1), (3, 1), (3, 2), (4, 1))
    draw = [torch.randint(2**31, (1,), generator=seeded(seed, stream)).item() for seed, stream in pairs]
    assert draw[0] == draw[1] and len(set(draw)) == 3


def test_the_streams_drawn_from_a_run_seed_share_no_number_but_the_judge_s_documented_two():
    """A stream added with a number another one of the run's seed already draws fails here."""
    numbers = list(streams.FROM_RUN_SEED.values())
    shared = {n for n in numbers if numbers.count(n) > 1}
    assert shared == {streams.NORM, streams.AUGMENT} == {streams.JUDGE_SPLIT, streams.JUDGE_AUGMENT}
    assert all(0 <= n < streams.SPACING for n in numbers)
