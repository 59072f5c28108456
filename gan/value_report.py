"""What `gan value` concludes from its accuracies: the gains paired by seed, the verdict, the likeliest cause of
harm, and the report's files (value.json, report.md, accuracy.png)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from gan.files import atomic_write, write_text

REAL, CLASSICAL, SYNTHETIC, BOTH = "real", "real + classical", "real + synthetic", "real + classical + synthetic"
ONLY = "synthetic only"  # trained on the synthetic images alone: can they stand for the real ones?
AGREEMENT_LOW = 0.9  # label agreement below this is the likeliest cause of harm
COPIES_ABOVE_REAL = 0.1  # a copy rate this far above the real images' own is the next


@dataclass
class ValueResult:
    report: dict
    json: Path
    markdown: Path
    chart: Path


def _summary(values: list[float]) -> dict:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return {"mean": mean, "std": std}


# Two-sided 95% quantiles of Student's t for 1 to 30 degrees of freedom (beyond: the normal's 1.96).
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

# The comparisons a report can make: (subject, what it is measured against, configuration with it, without it);
# the first one the configurations allow is the headline.
COMPARISONS = (
    ("synthetic images", "over classical augmentation", BOTH, CLASSICAL),
    ("synthetic images", "over real images alone", SYNTHETIC, REAL),
    ("synthetic images", "instead of classical augmentation", SYNTHETIC, CLASSICAL),
    ("classical augmentation", "over real images alone", CLASSICAL, REAL),
    ("synthetic images alone", "instead of the real ones", ONLY, REAL),
)
HARMFUL = COMPARISONS[:2]  # adding synthetic images to a training set: where they must not cost accuracy


def paired_gain(with_it: list[float], without: list[float]) -> dict:
    """Accuracy gain in points, paired by seed: its mean and the half-width of its 95% interval (None: one seed)."""
    gains = [100 * (a - b) for a, b in zip(with_it, without)]
    summary, n = _summary(gains), len(gains)
    half_width = None
    if n > 1:
        t = _T95[n - 2] if n - 1 <= len(_T95) else 1.96
        half_width = t * summary["std"] / math.sqrt(n)
    return {"mean": summary["mean"], "half_width": half_width, "seeds": n}


def at(condition: str, share: float | None) -> str:
    """The name of `condition` with `share` synthetic images per real one: 'real + synthetic x0.25' where several
    shares are measured; None (one share) keeps the plain names, and so does a condition without synthetic images."""
    if share is None or condition not in (SYNTHETIC, BOTH):
        return condition
    return f"{condition} x{share:g}"


def _measured(results: dict[str, dict], share: float | None) -> list[tuple[tuple, str, dict]]:
    """(comparison, its subject as reported, its paired gain) of every comparison the trained configurations allow
    at `share` (see `at`), in the order of COMPARISONS; the subject names the share where it is one of several."""
    made = []
    for comparison in COMPARISONS:
        subject, _, a, b = comparison
        with_it, without = at(a, share), at(b, share)
        if with_it in results and without in results:
            if (with_it, without) != (a, b):
                subject = f"{subject} ({share:g} per real image)"
            made.append((comparison, subject, paired_gain(results[with_it]["accuracy"], results[without]["accuracy"])))
    return made


def gains(results: dict[str, dict], share: float | None = None) -> dict[str, dict]:
    """Every comparison the trained configurations allow at `share`, by name ('synthetic images over ...')."""
    return {f"{subject} {comparison[1]}": gain for comparison, subject, gain in _measured(results, share)}


def _sentence(subject: str, against: str, gain: dict) -> str:
    mean, half = gain["mean"], gain["half_width"]
    if half is None:
        return (f"{subject} changed accuracy by {mean:+.1f} points {against} (one seed: train with --seeds 3 or "
                f"more to tell that from noise)")
    if mean - half > 0:
        return f"{subject} improved accuracy by {mean:.1f} ± {half:.1f} points {against}"
    if mean + half < 0:
        return f"{subject} made accuracy worse, by {-mean:.1f} ± {half:.1f} points, {against}"
    return f"{subject} did not help: {mean:+.1f} ± {half:.1f} points {against}"


def verdict(results: dict[str, dict], share: float | None = None) -> str:
    """The headline comparison in a sentence (± is the 95% interval of the gain, paired by seed: a gain counts
    when the interval excludes 0); with both synthetic and classical, also synthetic instead of classical."""
    made = _measured(results, share)
    if not made:
        name, result = next(iter(results.items()))
        return (f"{'real images alone' if name == REAL else name}: {100 * result['mean']:.1f}% test accuracy (nothing "
                f"to compare with)")
    shown = made[:1]
    if made[0][0] == COMPARISONS[0]:  # over classical augmentation: say too whether they could replace it
        shown += [m for m in made if m[0] == COMPARISONS[2]]
    return "; ".join(_sentence(subject, comparison[1], gain) for comparison, subject, gain in shown)


def harm(results: dict[str, dict], diagnosis: dict, share: float | None = None) -> str | None:
    """'HARM: ...' when adding the synthetic images lowered accuracy (the mean gain below 0, and below 0 with
    95% confidence when there are several seeds), with its size and the likeliest cause; else None."""
    for comparison, subject, gain in _measured(results, share):
        below_zero = gain["mean"] < 0 and (gain["half_width"] is None or gain["mean"] + gain["half_width"] < 0)
        if comparison in HARMFUL and below_zero:
            return (f"HARM: the {subject} lowered accuracy by {_points(-gain['mean'], gain)} points {comparison[1]}. "
                    f"{_cause(diagnosis)}")
    return None


def _points(value: float, gain: dict, sign: str = "") -> str:
    """'3.1 ± 0.8' (± the gain's 95% half-width; '3.1' alone with one seed)."""
    return f"{value:{sign}.1f}" + (f" ± {gain['half_width']:.1f}" if gain["half_width"] is not None else "")


def best_share(results: dict[str, dict], shares: tuple[float, ...]) -> dict | None:
    """Of several shares of synthetic images, the one whose addition helped most: the highest mean gain paired by
    seed (over classical augmentation, else over real images alone), beside that gain at every share; None for
    fewer than two shares."""
    if len(shares) < 2:
        return None
    headline = {}
    for share in shares:
        comparison, _, headline[share] = next(m for m in _measured(results, share) if m[0] in HARMFUL)
    best = max(shares, key=lambda share: headline[share]["mean"])  # on a tie, the fewest synthetic images
    return {"best": best, "against": comparison[1], "gains": {f"{share:g}": gain for share, gain in headline.items()}}


def conclusions(results: dict[str, dict], shares: tuple[float, ...], diagnosis: dict | None) -> dict:
    """value.json's reading of the accuracies: the shout of harm, the verdict, every gain and, where several
    `shares` of synthetic images were measured (none: no synthetic images), the best one, which the verdict and
    the harm are about."""
    sweep = best_share(results, shares)
    share = sweep["best"] if sweep else None
    found = {}
    for each in shares if sweep else (None,):
        found.update(gains(results, each))
    said = verdict(results, share)
    if sweep:
        said += f"; {share:g} per real image did best of the {len(shares)} shares measured"
    return {"harm": harm(results, diagnosis, share) if diagnosis else None, "verdict": said, "gains": found,
            "share_sweep": sweep}


def _cause(d: dict) -> str:
    """The likeliest reason synthetic images hurt, from what the real-trained classifier saw of them."""
    agreement = d["label_agreement"]
    if agreement["mean"] < AGREEMENT_LOW:
        low = sorted((v, name) for name, v in agreement["per_class"].items() if v is not None)[:3]
        worst = ", ".join(f"{name} {100 * v:.0f}%" for v, name in low)
        return (f"Likely cause: wrong labels. A classifier of the real images puts only {100 * agreement['mean']:.0f}% "
                f"of them in the class they were made for (lowest: {worst}); export with the label filter on "
                f"(the default of gan sample) or train the GAN longer")
    if d["copy_rate"] > d["real_copy_rate"] + COPIES_ABOVE_REAL:
        return (f"Likely cause: copies. {100 * d['copy_rate']:.0f}% are near-copies of a training image (the real "
                f"images among themselves: {100 * d['real_copy_rate']:.0f}%); export with --reject-copies or use an "
                f"earlier checkpoint")
    return (f"Likely cause: low recall. They cover {100 * d['recall']:.0f}% of the real training images' variety (in "
            f"the classifier's features), so they add little but weight on what is already there; train the GAN "
            f"longer or on more images")


def combine_diagnoses(diagnoses: list[dict], class_names: list[str]) -> dict:
    """The per-seed diagnoses as one: label agreement as a condition report (mean ± std, per class), the
    rest as means."""
    runs = [(d["label_agreement_run"]["label_agreement"], list(d["label_agreement_run"]["label_agreement_classes"]
                                                              .values())) for d in diagnoses]
    return {"label_agreement": condition_report(runs, class_names),
            **{key: sum(d[key] for d in diagnoses) / len(diagnoses) for key in ("copy_rate", "real_copy_rate",
                                                                                 "recall")}}


def condition_report(runs: list[tuple[float, list[float | None]]], class_names: list[str]) -> dict:
    overall = [acc for acc, _ in runs]
    per_class = {}
    for c, name in enumerate(class_names):
        values = [per[c] for _, per in runs if per[c] is not None]
        per_class[name] = sum(values) / len(values) if values else None
    return {"accuracy": overall, **_summary(overall), "per_class": per_class}


def write_report(report: dict, out: Path) -> ValueResult:
    path = out / "value.json"
    write_text(path, json.dumps(report, indent=2) + "\n")
    chart = out / "accuracy.png"
    draw_chart(report["conditions"], chart, report["share_sweep"]["best"] if report["share_sweep"] else None)
    markdown = out / "report.md"
    write_text(markdown, render_markdown(report, chart.name))
    return ValueResult(report, path, markdown, chart)


def render_markdown(report: dict, chart: str) -> str:
    names = report["classes"]
    head = "| configuration | test accuracy | " + " | ".join(names) + " |"
    rule = "|---|---|" + "---|" * len(names)
    rows = []
    for condition, r in report["conditions"].items():
        per = " | ".join("-" if r["per_class"][n] is None else f"{100 * r['per_class'][n]:.1f}" for n in names)
        rows.append(f"| {condition} | {100 * r['mean']:.1f} ± {100 * r['std']:.1f} | {per} |")
    settings, sweep = report["settings"], report["share_sweep"]
    lines = ["# Does it help?", ""]
    if report["harm"]:
        lines += [f"**{report['harm']}.**", ""]
    lines += [
        f"**{report['verdict'][0].upper() + report['verdict'][1:]}.**", "",
        head, rule, *rows, "",
        f"Test accuracy in % on {report['test_images']} real test images (mean ± std over {settings['seeds']} seeds; "
        f"per-class columns: the mean). {report['train_images']} real training images"
        + (f", {'up to ' if sweep else ''}{report['synthetic_used']} synthetic ones mixed in (ratio "
           f"{report['synthetic_ratio']:.2f} per real image{' at the largest share' if sweep else ''}, of "
           f"{report['synthetic_images']} available)" if report["synthetic_images"] else "")
        + f"; {report['steps']} steps of {settings['batch_size']} at {settings['resolution']} px for every "
          f"configuration, on {report['device']}, in {report['seconds']:.0f} s.",
    ]
    if sweep:
        lines += ["", *_sweep_markdown(sweep, settings["seeds"])]
    if "diagnosis" in report:
        d = report["diagnosis"]
        per = ", ".join(f"{name} {100 * v:.0f}%" for name, v in d["label_agreement"]["per_class"].items()
                        if v is not None)
        lines += ["", f"Label agreement: the {d['judged_by']} classifier puts "
                      f"{100 * d['label_agreement']['mean']:.1f}% of the synthetic images in the class they were "
                      f"made for ({per}). In its features, {100 * d['copy_rate']:.1f}% of them are near-copies of a "
                      f"training image (the training images among themselves: {100 * d['real_copy_rate']:.1f}%) "
                      f"and they cover {100 * d['recall']:.0f}% of the training images (recall)."]
    lines += ["", f"![test accuracy by configuration]({chart})", ""]
    return "\n".join(lines)


def _sweep_markdown(sweep: dict, seeds: int) -> list[str]:
    """The gain of adding synthetic images at every share measured, the best in bold, and why to confirm it."""
    best = f"{sweep['best']:g}"
    rows = []
    for share, gain in sweep["gains"].items():
        bold = "**" if share == best else ""
        rows.append(f"| {bold}{share}{bold} | {bold}{_points(gain['mean'], gain, '+')}{bold} |")
    return [f"Which share helps most: the gain in accuracy of adding synthetic images {sweep['against']}, in points, "
            f"paired by seed (mean ± 95% half-width over {seeds} seeds):", "",
            "| synthetic images per real one | gain (points) |", "|---|---|", *rows, "",
            f"The best is {best} per real image (`gan sample --per-real {best}` exports that many). Being the best of "
            f"{len(sweep['gains'])} shares measured on the same test set, its gain is an optimistic estimate: confirm "
            f"it on test images that took no part in the choice."]


def draw_chart(conditions: dict[str, dict], path: Path, best: float | None = None) -> None:
    """A bar chart of mean test accuracy with ± std error bars, one bar per configuration; the bars of the `best`
    share of synthetic images (when several were measured) outlined."""
    width, height, left, bottom, top = 200 * len(conditions) + 80, 380, 60, 60, 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    plot = height - bottom - top

    def y(accuracy: float) -> float:
        return top + plot * (1 - accuracy)

    for tick in range(0, 101, 20):
        draw.line([(left, y(tick / 100)), (width - 20, y(tick / 100))], fill="#dddddd")
        draw.text((left - 8, y(tick / 100)), f"{tick}%", fill="black", font=font, anchor="rm")
    colours = {REAL: "#8c8c8c", CLASSICAL: "#4c78a8", SYNTHETIC: "#f58518", BOTH: "#54a24b", ONLY: "#b279a2"}
    for i, (name, r) in enumerate(conditions.items()):
        x0 = left + 40 + 200 * i
        kind = name.split(" x")[0]  # the name without the share `at` adds: one colour per kind, whatever the share
        outlined = best is not None and name in (at(SYNTHETIC, best), at(BOTH, best))
        draw.rectangle([x0, y(r["mean"]), x0 + 110, y(0)], fill=colours[kind], outline="black" if outlined else None,
                       width=3)
        centre, low, high = x0 + 55, y(max(0.0, r["mean"] - r["std"])), y(min(1.0, r["mean"] + r["std"]))
        draw.line([(centre, low), (centre, high)], fill="black", width=2)
        for end in (low, high):
            draw.line([(centre - 10, end), (centre + 10, end)], fill="black", width=2)
        draw.text((centre, high - 4), f"{100 * r['mean']:.1f}%", fill="black", font=font, anchor="md")
        draw.text((centre, y(0) + 8), name, fill="black", font=font, anchor="ma")
    best_bars = f"; outlined: the share that helped most, {best:g} per real image" if best is not None else ""
    draw.text((left, 8), f"test accuracy (mean ± std over seeds){best_bars}", fill="black", font=font)
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
