"""The verdict and the shout of harm, from accuracies alone."""

from gan.value_report import BOTH, CLASSICAL, REAL, SYNTHETIC, at, conclusions, harm, verdict


def test_the_verdict_counts_a_gain_when_its_95_percent_interval_excludes_zero():
    def results(base, better):
        return {REAL: {"accuracy": base}, CLASSICAL: {"accuracy": base}, SYNTHETIC: {"accuracy": base},
                BOTH: {"accuracy": better}}

    headline = verdict(results([0.50, 0.52, 0.51], [0.54, 0.55, 0.55])).split("; ")
    assert headline[0] == "synthetic images improved accuracy by 3.7 ± 1.4 points over classical augmentation"
    assert headline[1].startswith("synthetic images did not help: +0.0 ± 0.0 points instead of classical")
    assert verdict(results([0.50, 0.52, 0.51], [0.40, 0.43, 0.41])).startswith(
        "synthetic images made accuracy worse, by 9.7 ±")
    assert verdict(results([0.50, 0.52, 0.51], [0.53, 0.49, 0.52])).startswith("synthetic images did not help: +0.3 ±")
    assert "one seed: train with --seeds 3" in verdict(results([0.5], [0.6]))
    classical_only = {REAL: {"accuracy": [0.5, 0.6]}, CLASSICAL: {"accuracy": [0.7, 0.8]}}
    assert verdict(classical_only) == "classical augmentation improved accuracy by 20.0 ± 0.0 points over real images alone"


def test_harm_is_shouted_with_its_likeliest_cause():
    def results(real, mixed):
        return {REAL: {"accuracy": real}, SYNTHETIC: {"accuracy": mixed}}

    per_class = {"3": 0.41, "4": 0.7, "5": 0.98}
    diagnosis = {"label_agreement": {"mean": 0.7, "per_class": per_class}, "copy_rate": 0.0, "real_copy_rate": 0.0,
                 "recall": 0.5}
    shout = harm(results([0.90, 0.91, 0.90], [0.67, 0.66, 0.68]), diagnosis)
    assert shout.startswith("HARM: the synthetic images lowered accuracy by 23.3 ± ")
    assert "over real images alone. Likely cause: wrong labels" in shout and "(lowest: 3 41%, 4 70%, 5 98%)" in shout
    faithful = {**diagnosis, "label_agreement": {"mean": 0.97, "per_class": {}}}
    assert "Likely cause: copies. 30%" in harm(results([0.9, 0.91], [0.8, 0.8]), {**faithful, "copy_rate": 0.3})
    assert "Likely cause: low recall. They cover 50%" in harm(results([0.9, 0.91], [0.8, 0.8]), faithful)
    assert harm(results([0.90, 0.91, 0.90], [0.91, 0.90, 0.92]), diagnosis) is None  # no harm, no shout


def test_with_several_shares_the_verdict_and_the_harm_speak_of_the_one_that_did_best():
    def results(at_one_tenth, at_one):  # accuracies over 3 seeds of real + classical + synthetic at 0.1 and at 1
        return {REAL: {"accuracy": [0.50, 0.52, 0.51]}, CLASSICAL: {"accuracy": [0.60, 0.62, 0.61]},
                at(SYNTHETIC, 0.1): {"accuracy": [0.50, 0.52, 0.51]}, at(BOTH, 0.1): {"accuracy": at_one_tenth},
                at(SYNTHETIC, 1.0): {"accuracy": [0.50, 0.52, 0.51]}, at(BOTH, 1.0): {"accuracy": at_one}}

    diagnosis = {"label_agreement": {"mean": 0.97, "per_class": {}}, "copy_rate": 0.0, "real_copy_rate": 0.0,
                 "recall": 0.4}
    found = conclusions(results([0.63, 0.64, 0.64], [0.50, 0.53, 0.51]), (0.1, 1.0), diagnosis)
    assert found["share_sweep"]["best"] == 0.1 and found["share_sweep"]["against"] == "over classical augmentation"
    assert [round(g["mean"], 1) for g in found["share_sweep"]["gains"].values()] == [2.7, -9.7]
    assert found["verdict"] == ("synthetic images (0.1 per real image) improved accuracy by 2.7 ± 1.4 points over "
                                "classical augmentation; synthetic images (0.1 per real image) made accuracy worse, by "
                                "10.0 ± 0.0 points, instead of classical augmentation; 0.1 per real image did best of "
                                "the 2 shares measured")
    assert found["harm"] is None  # the best share helped, though a 1:1 merge hurt
    hurt = conclusions(results([0.57, 0.58, 0.58], [0.50, 0.53, 0.51]), (0.1, 1.0), diagnosis)
    assert hurt["share_sweep"]["best"] == 0.1
    assert hurt["harm"].startswith("HARM: the synthetic images (0.1 per real image) lowered accuracy by 3.3 ± 1.4 "
                                   "points over classical augmentation. Likely cause: low recall")
    one = conclusions({REAL: {"accuracy": [0.5, 0.6]}, SYNTHETIC: {"accuracy": [0.7, 0.8]}}, (0.5,), None)
    assert one["share_sweep"] is None and one["harm"] is None  # one share: the report reads as it always did
    assert one["verdict"] == "synthetic images improved accuracy by 20.0 ± 0.0 points over real images alone"
