"""End to end through the command line: train -> run folder -> resume -> export, and the errors a user sees."""

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import TINY_FLAGS
from gan.cli import build_parser, flag_reference, main
from gan.command_config import EvalConfig, SampleConfig, ValueConfig, VariantsConfig
from gan.config import DataConfig, MetricsConfig, ModelConfig, TrainConfig

ROOT = Path(__file__).resolve().parent.parent


def test_train_resume_export_end_to_end(class_folder, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "--data", str(class_folder), *TINY_FLAGS, "--steps", "3", "--out", str(runs)]) == 0
    run = runs / "00000-classes"
    assert {"config.json", "stats.jsonl", "reals.png", "fakes-0000003.png", "checkpoint-0000003.pt"} <= {
        p.name for p in run.iterdir()
    }
    assert f"gan sample --run {run}" in capsys.readouterr().out

    assert main(["train", "--resume", str(run), "--steps", "5"]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 5
    assert (run / "checkpoint-0000005.pt").exists()

    out = tmp_path / "synthetic"
    assert main(["sample", "--run", str(run), "--checkpoint", "last", "--count", "4", "--out", str(out),
                 "--seed", "7", "--no-label-filter"]) == 0
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    # Class folders make a conditional model; 4 images spread like the data (6 cats, 5 dogs), seeds 7, 8, ...
    # (unfiltered: five steps of training cannot draw either class; the filter has tests of its own)
    expected = ["cats/seed000007.png", "cats/seed000008.png", "dogs/seed000009.png", "dogs/seed000010.png"]
    assert [r["file"] for r in rows] == expected and [r["class"] for r in rows] == ["cats"] * 2 + ["dogs"] * 2
    assert all((out / f).exists() for f in expected) and all(r["step"] == "5" for r in rows)

    assert main(["sample", "--run", str(run), "--count", "4", "--out", str(out)]) == 1
    assert "already holds 3 entries" in capsys.readouterr().err


def test_resume_refuses_a_new_model_shape(flat_folder, tmp_path, capsys):
    runs = tmp_path / "runs"
    main(["train", "--data", str(flat_folder), *TINY_FLAGS, "--steps", "2", "--out", str(runs)])
    capsys.readouterr()
    assert main(["train", "--resume", str(runs / "00000-flat"), "--steps", "4", "--g-channels", "16"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot resume") and "--g-channels 8 in the checkpoint, 16 now" in err


def test_resume_auto_starts_the_named_run_then_carries_it_on(flat_folder, tmp_path, capsys):
    runs = tmp_path / "runs"
    command = ["train", "--resume", "auto", "--data", str(flat_folder), *TINY_FLAGS, "--out", str(runs),
               "--name", "job", "--eval-every", "0"]
    assert main([*command, "--steps", "2"]) == 0
    assert main([*command, "--steps", "4"]) == 0  # the same command, as a restart repeats it
    assert [p.name for p in runs.iterdir()] == ["00000-job"]
    assert "resuming checkpoint-0000002.pt at step 2" in capsys.readouterr().out
    assert main([*command, "--steps", "4"]) == 0
    assert f"{runs / '00000-job'} is already at step 4 of 4: nothing to do" in capsys.readouterr().out
    assert main(["train", "--resume", "auto", "--out", str(runs)]) == 1
    assert capsys.readouterr().err == "error: --resume auto needs --name NAME (or --data DIR) to know which run to continue\n"


def test_dry_run_prints_the_resolved_config(flat_folder, tmp_path, capsys):
    assert main(["train", "--data", str(flat_folder), "--steps", "7", "--no-tensorboard", "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["train"]["steps"] == 7 and cfg["train"]["tensorboard"] is False and cfg["data"]["resolution"] == 64
    assert not (tmp_path / "runs").exists()


def test_help_lists_every_flag_with_its_default(capsys):
    parser = build_parser()
    helps = {}
    for command in ("train", "sample", "eval", "augment", "value"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        helps[command] = capsys.readouterr().out
    sections = {"train": (DataConfig, ModelConfig, TrainConfig, MetricsConfig), "sample": (SampleConfig,),
                "eval": (EvalConfig,), "augment": (VariantsConfig,), "value": (ValueConfig,)}
    for command, classes in sections.items():
        for cls in classes:
            for field in dataclasses.fields(cls):
                if "help" in field.metadata:
                    flag = field.metadata["flag"] or "--" + field.name.replace("_", "-")
                    assert flag in helps[command], f"{flag} missing from gan {command} --help"
    assert "(default: 0.0002)" in helps["train"] and "(default: png)" in helps["sample"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "/nonexistent/photos"], "error: data folder /nonexistent/photos does not exist"),
        (["train", "--data", "x", "--resolution", "48"], "error: --resolution must be a power of two"),
        (["train", "--resume", "/nonexistent/run"], "error: /nonexistent/run does not exist"),
        (["sample", "--out", "o"], "error: give --run DIR (its best.pt, else its newest checkpoint) or --checkpoint"),
        (["sample", "--checkpoint", "best", "--out", "o"], "error: give --run DIR"),
        (["eval", "--run", "/nonexistent/run"], "error: /nonexistent/run does not exist"),
        (["eval", "--run", "r", "--count", "1"], "error: --count must be 0 (the run's) or in [2, 50000]"),
        (["eval", "--run", "r", "--checkpoint", "elsewhere/checkpoint-0000002.pt"], "error: --checkpoint elsewhere"),
        (["train", "--data", "x", "--eval-count", "1"], "error: --eval-count must be 0 (auto) or in [2, 50000]"),
        (["sample", "--run", "r", "--out", "o", "--truncation", "0.01"], "error: --truncation must be 0 (off) or 0.05 or more"),
        (["eval", "--run", "r", "--truncation", "nan"], "error: --truncation must be a finite number, got nan"),
        (["train", "--data", "x", "--lecam-weight", "nan"], "error: --lecam-weight must be a finite number, got nan"),
        (["train", "--data", "x", "--g-lr", "nan"], "error: --g-lr must be a finite number, got nan"),
        (["train", "--data", "x", "--d-lr", "inf"], "error: --d-lr must be a finite number, got inf"),
        (["sample", "--run", "r", "--out", "o", "--min-confidence", "nan"],
         "error: --min-confidence must be a finite number, got nan"),
        (["value", "--train", "a", "--test", "b", "--out", "c", "--synthetic-ratio", "inf"],
         "error: --synthetic-ratio must be above 0 and at most 100, got inf"),
        (["augment", "--data", "a", "--out", "b", "--strength", "nan"], "error: --strength must be a finite number"),
        (["train", "--data", "x", "--augment", ""], "error: --augment is empty: name operations"),
        (["train", "--data", "x", "--r2-gamma", "-1"], "error: --r2-gamma must be 0 (off) or positive"),
        (["train", "--data", "x", "--gamma-final", "2"], "error: --gamma-final must be in [0, 1]"),
        (["train", "--data", "x", "--freeze-d", "-1"], "error: --freeze-d must be 0 or more"),
        (["sample", "--run", "r", "--out", "o", "--count", "1000000000000"],
         "error: --count must be in [1, 1000000], got 1000000000000"),
        (["sample", "--run", "r", "--out", "o", "--per-class", "1000000000000"], "error: --per-class must be 0 (use"),
        (["augment", "--data", "a", "--out", "b", "--per-image", "1000000000000"], "error: --per-image must be in [1, "),
        (["value", "--train", "a", "--test", "b", "--out", "c", "--batch-size", "1000000000000"],
         "error: --batch-size must be in [1, 4096]"),
        (["train", "--data", "x", "--time-limit", "2x"], "error: --time-limit must be a time such as 30m, 2h, 1h30m"),
        (["grow", "--data", "x", "--out", "o", "--budget", "0m"], "error: --budget must be a time such as 30m"),
        (["grow", "--out", "o"], "error: --data is required (gan grow --data DIR --out DIR)"),
        (["grow", "--data", "/nonexistent/photos", "--out", "o"], "error: data folder /nonexistent/photos does not"),
        (["train", "--data", "x", "--g-channels", "1099511627776"], "error: --g-channels must be in [1, 8192]"),
        (["train", "--data", "x", "--z-dim", "1099511627776"], "error: --z-dim must be in [1, 8192]"),
        (["train", "--data", "x", "--compile-mode", "reduce-overhead"],
         "error: --compile-mode reduce-overhead takes effect with --compile: add --compile, or pass"),
    ],
)
def test_bad_input_gives_one_clear_line(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err


def _run_script(args, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_script_shim_reports_errors_without_a_traceback():
    proc = _run_script(["scripts/train.py", "--data", "/nonexistent"])
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "does not exist" in err and "Traceback" not in err


def test_sigterm_saves_and_prints_the_resume_command(flat_folder, tmp_path):
    runs = tmp_path / "runs"
    proc = _run_script(["scripts/train.py", "--data", str(flat_folder), *TINY_FLAGS, "--steps", "100000",
                        "--checkpoint-every", "100000", "--out", str(runs), "--no-tensorboard"])
    stats = runs / "00000-flat" / "stats.jsonl"
    deadline = time.time() + 120
    while not (stats.exists() and stats.read_text()) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"Continue with: gan train --resume {runs / '00000-flat'}" in out
    assert list((runs / "00000-flat").glob("checkpoint-*.pt")), out


def test_the_flag_reference_is_current_and_complete():
    reference = (ROOT / "docs" / "flags.md").read_text()
    assert reference == flag_reference(), "docs/flags.md is out of date: run python scripts/flags.py"
    for cls in (DataConfig, ModelConfig, TrainConfig, MetricsConfig, SampleConfig, EvalConfig, VariantsConfig, ValueConfig):
        for field in dataclasses.fields(cls):
            if "help" in field.metadata:
                flag = field.metadata["flag"] or "--" + field.name.replace("_", "-")
                assert f"{flag} " in reference, f"docs/flags.md does not document {flag}"


def test_disk_errors_name_the_file_instead_of_a_traceback(monkeypatch, capsys):
    import gan.sample

    def full_disk(cfg):
        raise OSError(28, "No space left on device", "out/seed000003.png")

    monkeypatch.setattr(gan.sample, "export", full_disk)
    assert main(["sample", "--run", "r", "--out", "o"]) == 1
    assert capsys.readouterr().err == "error: out/seed000003.png: No space left on device\n"

    def refused(cfg):
        raise PermissionError(13, "Permission denied", "out/manifest.csv")

    monkeypatch.setattr(gan.sample, "export", refused)
    assert main(["sample", "--run", "r", "--out", "o"]) == 1
    assert capsys.readouterr().err == ("error: out/manifest.csv: Permission denied: check its permissions, or choose "
                                       "another place\n")


def test_running_out_of_memory_outside_training_is_one_line(monkeypatch, capsys):
    import gan.sample
    import torch

    def out_of_memory(cfg):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB\nmore text")

    monkeypatch.setattr(gan.sample, "export", out_of_memory)
    assert main(["sample", "--run", "r", "--out", "o"]) == 1
    assert capsys.readouterr().err == ("error: out of memory (CUDA out of memory. Tried to allocate 20.00 GiB): lower "
                                       "--batch-size, or the number or size of images asked for\n")


def test_running_out_of_memory_without_a_message_is_one_line_too(monkeypatch, capsys):
    import gan.sample

    def out_of_memory(cfg):
        raise MemoryError()  # what a huge allocation on the CPU raises

    monkeypatch.setattr(gan.sample, "export", out_of_memory)
    assert main(["sample", "--run", "r", "--out", "o"]) == 1
    assert capsys.readouterr().err == "error: out of memory: lower --batch-size, or the number or size of images asked for\n"


def test_class_flag_repeats(class_folder, tmp_path, capsys):
    runs = tmp_path / "runs"
    main(["train", "--data", str(class_folder), *TINY_FLAGS, "--steps", "1", "--out", str(runs)])
    out = tmp_path / "o"
    assert main(["sample", "--run", str(runs / "00000-classes"), "--class", "dogs", "--class", "cats",
                 "--per-class", "1", "--out", str(out), "--no-label-filter"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["cats", "dogs", "manifest.csv"]
    assert main(["sample", "--run", str(runs / "00000-classes"), "--class", "owls", "--out", str(tmp_path / "x")]) == 1
    assert "unknown class 'owls'" in capsys.readouterr().err


def test_demo_trains_exports_and_says_where_everything_is(class_folder, tmp_path, capsys):
    assert main(["demo", "--data", str(class_folder), "--steps", "2", "--count", "4", "--out", str(tmp_path)]) == 0
    run = tmp_path / "00000-demo"
    out = capsys.readouterr().out
    # Two steps cannot draw a class, so the label filter keeps what it keeps; the summary must say what is there.
    written = sorted(p.relative_to(run / "synthetic") for p in (run / "synthetic").glob("*/seed*.png"))
    folders = ", ".join(sorted({p.parent.name for p in written}))
    layout = f" in class folders {folders}" if folders else ""
    assert f"synthetic images  {run / 'synthetic'}/ ({len(written)} PNGs{layout}; list: manifest.csv)" in out
    assert f"tensorboard --logdir {tmp_path}" in out
    assert (run / "synthetic-grid.png").exists() == bool(written) == (f"their preview     {run}" in out)


def test_eval_prints_the_table_and_where_the_report_is(class_folder, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "--data", str(class_folder), *TINY_FLAGS, "--steps", "2", "--out", str(runs)]) == 0
    run = runs / "00000-classes"
    assert f"best         {run / 'best.pt'} (by --best-by" in capsys.readouterr().out
    assert main(["eval", "--run", str(run), "--count", "16", "--features", "random", "--nearest"]) == 0
    out = capsys.readouterr().out
    assert "KID x1e3" in out and "\ncats " in out and "\ndogs " in out and "copies:" in out
    assert f"report: {run / 'eval-0000002.json'}" in out and f"{run / 'nearest-0000002.png'}" in out
    assert json.loads((run / "eval-0000002.json").read_text())["memorization"]["copy_fraction"] == 0.5
