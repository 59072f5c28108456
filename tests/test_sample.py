import csv
import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

import gan.sample as sample_module
from helpers import fill_the_disk_after, tiny_config, write_images
from gan.checkpoint import load_checkpoint, save_checkpoint
from gan.cli import main
from gan.command_config import SampleConfig
from gan.errors import GanError
from gan.sample import export
from gan.train import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("sample")
    write_images(base / "flowers", 8)
    return train(tiny_config(base / "flowers", base / "runs", steps=2), log=lambda _: None).run_dir


def pixels(path):
    return np.asarray(Image.open(path), dtype=np.int16)


def test_export_writes_seeded_files_and_a_manifest(run_dir, tmp_path):
    result = export(SampleConfig(run=str(run_dir), checkpoint="last", count=5, out=str(tmp_path / "out"), seed=10),
                    log=lambda _: None)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "manifest.csv", "seed000010.png", "seed000011.png", "seed000012.png", "seed000013.png", "seed000014.png",
    ]
    rows = list(csv.DictReader(result.manifest.open()))
    assert [r["seed"] for r in rows] == ["10", "11", "12", "13", "14"]
    assert rows[0]["file"] == "seed000010.png" and rows[0]["class"] == "flowers"  # one-class data: labelled
    assert rows[0]["step"] == "2" and rows[0]["checkpoint"].endswith("checkpoint-0000002.pt")
    image = Image.open(tmp_path / "out" / "seed000010.png")
    assert image.size == (16, 16) and image.mode == "RGB"


def test_truncation_is_recorded_in_the_manifest_and_changes_the_images(run_dir, tmp_path):
    plain = export(SampleConfig(run=str(run_dir), count=2, out=str(tmp_path / "plain")), log=lambda _: None)
    cut = export(SampleConfig(run=str(run_dir), count=2, out=str(tmp_path / "cut"), truncation=0.5), log=lambda _: None)
    assert [r["truncation"] for r in csv.DictReader(cut.manifest.open())] == ["0.5", "0.5"]
    assert [r["truncation"] for r in csv.DictReader(plain.manifest.open())] == ["0", "0"]
    assert np.abs(pixels(plain.files[0]) - pixels(cut.files[0])).max() > 1


def test_each_image_depends_only_on_its_seed(run_dir, tmp_path):
    export(SampleConfig(run=str(run_dir), count=6, out=str(tmp_path / "a"), batch_size=1), log=lambda _: None)
    export(SampleConfig(run=str(run_dir), count=4, out=str(tmp_path / "b"), batch_size=4, seed=2), log=lambda _: None)
    for seed in (2, 3, 4, 5):
        a, b = pixels(tmp_path / "a" / f"seed{seed:06d}.png"), pixels(tmp_path / "b" / f"seed{seed:06d}.png")
        assert np.abs(a - b).max() <= 1  # at most float rounding between batch sizes
    assert np.abs(pixels(tmp_path / "a" / "seed000000.png") - pixels(tmp_path / "a" / "seed000001.png")).max() > 1


def test_a_folder_with_files_is_refused_unless_overwrite(run_dir, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(GanError, match=r"already holds 1 entries \(e\.g\. holiday\.jpg\).*--overwrite"):
        export(SampleConfig(run=str(run_dir), count=2, out=str(out)), log=lambda _: None)
    assert [p.name for p in out.iterdir()] == ["holiday.jpg"]
    export(SampleConfig(run=str(run_dir), count=2, out=str(out), overwrite=True), log=lambda _: None)
    assert (out / "holiday.jpg").read_bytes() == b"precious"  # --overwrite removes only an earlier export's files
    assert (out / "seed000001.png").exists()


def test_jpg_format_and_preview_grid(run_dir, tmp_path):
    grid = tmp_path / "preview" / "grid.png"
    export(SampleConfig(checkpoint=str(next(run_dir.glob("checkpoint-*.pt"))), count=3, out=str(tmp_path / "j"),
                        format="jpg", grid=str(grid)), log=lambda _: None)
    assert Image.open(tmp_path / "j" / "seed000000.jpg").format == "JPEG"
    assert Image.open(grid).size == (2 + 3 * 18, 2 + 18)  # 3 images of 16 px in one row


def test_grayscale_models_export_grayscale_images(tmp_path):
    write_images(tmp_path / "gray", 4, mode="L")
    run = train(tiny_config(tmp_path / "gray", tmp_path / "runs", steps=1), log=lambda _: None).run_dir
    export(SampleConfig(run=str(run), count=1, out=str(tmp_path / "o")), log=lambda _: None)
    assert Image.open(tmp_path / "o" / "seed000000.png").mode == "L"


def test_weights_that_do_not_fit_the_config_are_refused(run_dir, tmp_path):
    state = load_checkpoint(str(run_dir)).state
    state["G_ema"] = {"net.0.weight": torch.zeros(1)}
    save_checkpoint(tmp_path, state, keep=1)
    with pytest.raises(GanError, match="generator weights do not match its own config"):
        export(SampleConfig(run=str(tmp_path), count=1, out=str(tmp_path / "o")), log=lambda _: None)


def test_grid_path_that_is_a_folder_is_refused_before_writing_anything(run_dir, tmp_path):
    with pytest.raises(GanError, match="--grid .* is a folder"):
        export(SampleConfig(run=str(run_dir), count=2, out=str(tmp_path / "o"), grid=str(tmp_path)), log=lambda _: None)
    assert not (tmp_path / "o").exists()


def test_per_class_export_mirrors_the_imagefolder_layout(conditional_run, tmp_path):
    result = export(SampleConfig(run=str(conditional_run), label_filter=False, per_class=2, out=str(tmp_path / "o")), log=lambda _: None)
    assert sorted(p.relative_to(tmp_path / "o").as_posix() for p in result.files) == [
        "cats/seed000000.png", "cats/seed000001.png", "dogs/seed000002.png", "dogs/seed000003.png",
    ]
    rows = list(csv.DictReader(result.manifest.open()))
    assert [(r["file"], r["class"]) for r in rows][2] == ("dogs/seed000002.png", "dogs")


def test_count_follows_the_class_frequencies_and_class_selects(conditional_run, tmp_path):
    export(SampleConfig(run=str(conditional_run), label_filter=False, count=8, out=str(tmp_path / "a")), log=lambda _: None)
    assert [len(list((tmp_path / "a" / c).iterdir())) for c in ("cats", "dogs")] == [6, 2]
    only = export(SampleConfig(run=str(conditional_run), label_filter=False, count=3, classes=["dogs"], out=str(tmp_path / "b")),
                  log=lambda _: None)
    assert [f.parent.name for f in only.files] == ["dogs"] * 3 and not (tmp_path / "b" / "cats").exists()


def test_class_generation_depends_on_the_class(conditional_run, tmp_path):
    export(SampleConfig(run=str(conditional_run), label_filter=False, count=1, classes=["cats"], out=str(tmp_path / "c")), log=lambda _: None)
    export(SampleConfig(run=str(conditional_run), label_filter=False, count=1, classes=["dogs"], out=str(tmp_path / "d")), log=lambda _: None)
    cat, dog = pixels(tmp_path / "c" / "cats" / "seed000000.png"), pixels(tmp_path / "d" / "dogs" / "seed000000.png")
    assert np.abs(cat - dog).max() > 0  # same seed, different class


def test_unknown_class_lists_the_known_ones(conditional_run, tmp_path):
    with pytest.raises(GanError, match="unknown class 'birds': .* knows cats, dogs"):
        export(SampleConfig(run=str(conditional_run), label_filter=False, classes=["birds"], out=str(tmp_path / "o")), log=lambda _: None)


def test_unconditional_models_refuse_class_choices(run_dir, tmp_path):
    with pytest.raises(GanError, match="--class: .* is an unconditional model"):
        export(SampleConfig(run=str(run_dir), classes=["flowers"], out=str(tmp_path / "o")), log=lambda _: None)
    with pytest.raises(GanError, match="--per-class: .* is an unconditional model"):
        export(SampleConfig(run=str(run_dir), per_class=3, out=str(tmp_path / "o")), log=lambda _: None)
    assert not (tmp_path / "o").exists()


def test_grid_never_replaces_a_file_unasked_nor_lands_among_the_exports(run_dir, tmp_path):
    existing = tmp_path / "mine.png"
    existing.write_bytes(b"the user's own file")
    with pytest.raises(GanError, match=rf"--grid {existing} already exists; give another file name, or pass "
                                       rf"--overwrite to replace it"):
        export(SampleConfig(run=str(run_dir), count=2, out=str(tmp_path / "o"), grid=str(existing)), log=lambda _: None)
    assert existing.read_bytes() == b"the user's own file" and not (tmp_path / "o").exists()
    with pytest.raises(GanError, match="is inside --out .*, where it would become a training image"):
        export(SampleConfig(run=str(run_dir), count=2, out=str(tmp_path / "o"), grid=str(tmp_path / "o" / "g.png")),
               log=lambda _: None)
    export(SampleConfig(run=str(run_dir), count=2, out=str(tmp_path / "o"), grid=str(existing), overwrite=True),
           log=lambda _: None)
    assert existing.read_bytes() != b"the user's own file"


def test_conditional_preview_grid_has_a_row_per_class(conditional_run, tmp_path):
    grid = tmp_path / "grid.png"
    export(SampleConfig(run=str(conditional_run), label_filter=False, per_class=10, out=str(tmp_path / "o"), grid=str(grid)),
           log=lambda _: None)
    assert Image.open(grid).size == (2 + 8 * 18, 2 + 2 * 18)  # cats, then dogs: 8 each


def test_spread_adds_up_exactly():
    from gan.generate import spread

    assert spread(4, [6, 5]) == [2, 2] and spread(10, [1, 1, 1]) == [4, 3, 3] and spread(3, [0, 0]) == [2, 1]
    assert sum(spread(1000, [459, 131, 7])) == 1000


def test_a_run_is_sampled_from_best_unless_last_is_asked_for(tmp_path):
    write_images(tmp_path / "flowers", 8)
    cfg = tiny_config(tmp_path / "flowers", tmp_path / "runs", steps=4)
    run = train(cfg, log=lambda _: None).run_dir
    (run / "best.pt").write_bytes((run / "checkpoint-0000002.pt").read_bytes())  # as if step 2 had scored best

    def exported_step(**choice) -> str:
        out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"
        result = export(SampleConfig(run=str(run), count=1, out=str(out), **choice), log=lambda _: None)
        return next(csv.DictReader(result.manifest.open()))["step"]

    assert exported_step() == "2" and exported_step(checkpoint="best") == "2"
    assert exported_step(checkpoint="last") == "4"
    assert exported_step(checkpoint=str(run / "checkpoint-0000004.pt")) == "4"
    (run / "best.pt").unlink()
    assert exported_step() == "4"
    with pytest.raises(GanError, match="has no best.pt: .* Use --checkpoint last"):
        exported_step(checkpoint="best")


def test_reject_copies_replaces_near_copies_with_later_seeds(run_dir, tmp_path, monkeypatch):
    import gan.sample as sample_module
    from gan.data import load_dataset

    training = load_dataset(load_checkpoint(str(run_dir)).saved_config().data, lambda _: None).images
    real_generate = sample_module.generate

    def generate_copies_for_seeds_10_and_12(G, seeds, labels, batch_size, device, truncation=0.0):
        for batch, first in zip(real_generate(G, seeds, labels, batch_size, device, truncation), range(0, len(seeds), batch_size)):
            for i, seed in enumerate(seeds[first : first + len(batch)]):
                if seed in (10, 12):
                    batch[i] = training[seed % len(training)].float() / 127.5 - 1
            yield batch

    monkeypatch.setattr(sample_module, "generate", generate_copies_for_seeds_10_and_12)
    cfg = SampleConfig(run=str(run_dir), count=4, seed=10, batch_size=3, out=str(tmp_path / "kept"))
    lines = []
    result = export(SampleConfig(**{**cfg.__dict__, "reject_copies": True}), log=lines.append)
    assert [f.name for f in result.files] == ["seed000011.png", "seed000013.png", "seed000014.png", "seed000015.png"]
    assert result.rejected == 2 and any("rejected 2 near-copies" in line for line in lines)
    plain = export(SampleConfig(**{**cfg.__dict__, "out": str(tmp_path / "plain")}), log=lambda _: None)
    assert [f.name for f in plain.files] == ["seed000010.png", "seed000011.png", "seed000012.png", "seed000013.png"]


def test_reject_copies_gives_up_with_a_warning_when_everything_is_a_copy(run_dir, tmp_path, monkeypatch):
    import gan.sample as sample_module
    from gan.data import load_dataset

    training = load_dataset(load_checkpoint(str(run_dir)).saved_config().data, lambda _: None).images

    def only_copies(G, seeds, labels, batch_size, device, truncation=0.0):
        yield training[[s % len(training) for s in seeds]].float() / 127.5 - 1

    monkeypatch.setattr(sample_module, "generate", only_copies)
    lines = []
    result = export(SampleConfig(run=str(run_dir), count=3, reject_copies=True, out=str(tmp_path / "o")),
                    log=lines.append)
    assert result.files == [] and result.rejected == 30
    assert any("only 0 of 3 images were written" in line for line in lines)
    assert result.rejected_by_class == {"flowers": {"copy": 30}}
    assert (tmp_path / "o" / "manifest.csv").read_text().strip() == "file,seed,class,checkpoint,step,truncation,confidence,d_score"
    # The command line says so in its exit status too, for scripts that read no warnings.
    assert main(["sample", "--run", str(run_dir), "--count", "3", "--reject-copies", "--out", str(tmp_path / "p")]) == 3
    assert main(["sample", "--run", str(run_dir), "--count", "3", "--no-label-filter", "--out", str(tmp_path / "q")]) == 0


def test_reject_copies_does_not_depend_on_batch_size(conditional_run, tmp_path, monkeypatch):
    import gan.sample as sample_module
    from gan.data import load_dataset

    training = load_dataset(load_checkpoint(str(conditional_run)).saved_config().data, lambda _: None).images
    real_generate = sample_module.generate

    def copies_for_seeds_1_and_4(G, seeds, labels, batch_size, device, truncation=0.0):
        for batch in real_generate(G, seeds, labels, batch_size, device, truncation=0.0):
            for i, seed in enumerate(seeds):
                if seed in (1, 4):
                    batch[i] = training[seed].float() / 127.5 - 1
            yield batch

    monkeypatch.setattr(sample_module, "generate", copies_for_seeds_1_and_4)
    made = []
    for batch_size in (2, 3, 8):
        result = export(SampleConfig(run=str(conditional_run), label_filter=False, per_class=3, batch_size=batch_size, reject_copies=True,
                                     out=str(tmp_path / f"b{batch_size}")), log=lambda _: None)
        made.append(sorted(f.relative_to(result.out).as_posix() for f in result.files))
    assert made[0] == made[1] == made[2]
    # Seeds 6 and 7 replace 1 and 4, in plan order, whatever the batches.
    assert made[0] == ["cats/seed000000.png", "cats/seed000002.png", "cats/seed000006.png", "dogs/seed000003.png",
                       "dogs/seed000005.png", "dogs/seed000007.png"]


def listed(manifest) -> list[str]:
    return [row["file"] for row in csv.DictReader(manifest.open())]


def test_a_read_only_out_is_told_to_make_it_writable_not_to_free_space(run_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    fill_the_disk_after(0, sample_module, monkeypatch, errno.EROFS)
    with pytest.raises(GanError) as error:
        export(SampleConfig(run=str(run_dir), count=4, out=str(out), workers=1), log=lambda _: None)
    assert str(error.value) == (
        f"cannot write {out / 'seed000000.png'} (Read-only file system): 0 of 4 images were written, and "
        f"{out / 'manifest.csv'} lists them. Make {out} writable (or choose another --out), then run the same "
        f"command with --overwrite")


def test_a_full_disk_mid_export_names_the_file_lists_what_was_written_and_overwrite_cleans_up(run_dir, tmp_path,
                                                                                           monkeypatch):
    out = tmp_path / "out"
    written = fill_the_disk_after(3, sample_module, monkeypatch)
    with pytest.raises(GanError) as error:
        export(SampleConfig(run=str(run_dir), count=8, out=str(out), batch_size=2, workers=1), log=lambda _: None)
    assert str(error.value) == (
        f"cannot write {out / 'seed000003.png'} (No space left on device): 3 of 8 images were written, and "
        f"{out / 'manifest.csv'} lists them. Free some space (or choose another --out), then run the same command "
        f"with --overwrite")
    names = [f.name for f in written]
    assert listed(out / "manifest.csv") == names == ["seed000000.png", "seed000001.png", "seed000002.png"]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.csv", *names]  # no journal, no temp file left

    monkeypatch.undo()
    (out / "notes.png").write_bytes(b"the user's")
    export(SampleConfig(run=str(run_dir), count=2, out=str(out), seed=100, overwrite=True), log=lambda _: None)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.csv", "notes.png", "seed000100.png", "seed000101.png"]


def test_a_signal_stops_an_export_between_batches_with_a_manifest_of_what_was_written(run_dir, tmp_path,
                                                                                     monkeypatch):
    out = tmp_path / "out"
    real_encode = sample_module.encode_and_write

    def signal_during_the_first_batch(pixels, files, fmt):
        if files[0].name == "seed000000.png":
            os.kill(os.getpid(), signal.SIGTERM)
        real_encode(pixels, files, fmt)

    monkeypatch.setattr(sample_module, "encode_and_write", signal_during_the_first_batch)
    with pytest.raises(GanError) as error:
        export(SampleConfig(run=str(run_dir), count=400, out=str(out), batch_size=2, workers=1), log=lambda _: None)
    message = str(error.value)
    assert message.startswith("export stopped by a signal: ") and message.endswith(
        f"of 400 images were written, and {out / 'manifest.csv'} lists them. Run the same command with --overwrite "
        f"to export them all")
    files = sorted(p.name for p in out.iterdir() if p.name != "manifest.csv")
    assert 2 <= len(files) < 400 and sorted(listed(out / "manifest.csv")) == files


def test_an_export_killed_outright_is_cleaned_up_by_the_next_overwrite(run_dir, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "gan.cli", "sample", "--run", str(run_dir), "--count", "100000", "--out",
               str(out), "--batch-size", "4", "--workers", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("seed*.png"))) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    left = list(out.glob("seed*.png"))
    assert len(left) >= 8 and not (out / "manifest.csv").exists()
    (out / "mine.png").write_bytes(b"the user's")
    export(SampleConfig(run=str(run_dir), count=1, out=str(out), seed=500000, overwrite=True), log=lambda _: None)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.csv", "mine.png", "seed500000.png"]


def test_overwrite_removes_only_the_files_a_manifest_may_name(run_dir, tmp_path):
    out = tmp_path / "out"
    export(SampleConfig(run=str(run_dir), count=1, out=str(out)), log=lambda _: None)
    outside = tmp_path / "precious.png"
    outside.write_bytes(b"keep")
    with open(out / "manifest.csv", "a") as manifest:  # an edited manifest must not reach outside --out
        manifest.write(f"../precious.png\n{outside}\nnotes.txt\n")
    (out / "notes.txt").write_text("keep")
    export(SampleConfig(run=str(run_dir), count=1, out=str(out), seed=7, overwrite=True), log=lambda _: None)
    assert outside.read_bytes() == b"keep" and (out / "notes.txt").exists()
    assert not (out / "seed000000.png").exists() and (out / "seed000007.png").exists()


def test_a_class_named_like_the_manifest_is_refused_before_any_work(tmp_path):
    write_images(tmp_path / "data" / "manifest.csv", 3, seed=1)
    write_images(tmp_path / "data" / "other", 3, seed=2)
    run = train(tiny_config(tmp_path / "data", tmp_path / "runs", steps=2), log=lambda _: None).run_dir
    with pytest.raises(GanError) as error:
        export(SampleConfig(run=str(run), count=4, out=str(tmp_path / "out")), log=lambda _: None)
    assert str(error.value) == (
        f"class 'manifest.csv' would be written to the folder {tmp_path / 'out' / 'manifest.csv'}, where the export's "
        f"manifest.csv goes: export the other classes with --class")
    assert not (tmp_path / "out").exists()
    exported = export(SampleConfig(run=str(run), count=2, classes=["other"], out=str(tmp_path / "out")),
                      log=lambda _: None)
    assert listed(exported.manifest) == ["other/seed000000.png", "other/seed000001.png"]


def test_per_real_exports_that_many_per_training_image_of_each_class(conditional_run, tmp_path):
    out = tmp_path / "half"
    assert main(["sample", "--run", str(conditional_run), "--per-real", "0.5", "--out", str(out),
                 "--no-label-filter"]) == 0
    assert [len(list((out / c).iterdir())) for c in ("cats", "dogs")] == [3, 1]  # trained on 6 cats and 2 dogs
    few = export(SampleConfig(run=str(conditional_run), label_filter=False, per_real=0.1, out=str(tmp_path / "few")),
                 log=lambda _: None)
    assert sorted(f.parent.name for f in few.files) == ["cats", "dogs"]  # 0.6 and 0.2 images: each class gets one


def test_per_real_is_refused_beside_another_count_and_on_an_unconditional_run(conditional_run, run_dir, tmp_path):
    out = str(tmp_path / "o")
    with pytest.raises(GanError, match="^--per-real and --per-class both say how many images to export: give one "):
        export(SampleConfig(run=str(conditional_run), per_real=0.5, per_class=3, out=out), log=lambda _: None)
    with pytest.raises(GanError, match="^--per-real and --count both say how many images to export: give one "):
        export(SampleConfig(run=str(conditional_run), per_real=0.5, count=10, out=out), log=lambda _: None)
    with pytest.raises(GanError, match="^--per-class and --count both say how many images to export: give one "):
        export(SampleConfig(run=str(conditional_run), per_class=3, count=10, out=out), log=lambda _: None)
    with pytest.raises(GanError, match="^--per-real: .* is an unconditional model, which cannot make a chosen class"):
        export(SampleConfig(run=str(run_dir), per_real=0.5, out=out), log=lambda _: None)
    assert not (tmp_path / "o").exists()


def test_a_per_class_run_exports_each_class_from_that_class_own_generator(tmp_path):
    from gan.checkpoint import pick_checkpoint
    from gan.generate import load_generator, noise_for_seeds
    from gan.pixels import to_uint8

    write_images(tmp_path / "pets" / "cats", 4, seed=1)
    write_images(tmp_path / "pets" / "dogs", 4, seed=2)
    cfg = tiny_config(tmp_path / "pets", tmp_path / "runs", steps=2)
    cfg.model.conditional = "per-class"
    run = train(cfg, log=lambda _: None).run_dir
    out = tmp_path / "out"
    result = export(SampleConfig(run=str(run), checkpoint="last", per_class=2, out=str(out), label_filter=False),
                    log=lambda _: None)
    G = load_generator(load_checkpoint(pick_checkpoint(str(run), "last")), torch.device("cpu"))
    rows = list(csv.DictReader(result.manifest.open()))
    assert sorted(row["class"] for row in rows) == ["cats", "cats", "dogs", "dogs"]
    for row in rows:
        own = {name: i for i, name in enumerate(("cats", "dogs"))}[row["class"]]
        z = noise_for_seeds([int(row["seed"])], G.z_dim)
        made_by = [to_uint8(member(z))[0].permute(1, 2, 0).numpy() for member in G.members]
        saved = np.asarray(Image.open(out / row["file"]).convert("RGB"))
        assert np.array_equal(saved, made_by[own]) and not np.array_equal(saved, made_by[1 - own])


def test_a_second_export_into_a_folder_being_exported_into_is_refused_and_removes_nothing(run_dir, tmp_path):
    from gan.files import FolderLock

    out = tmp_path / "out"
    out.mkdir()
    (out / "seed000000.png").write_bytes(b"being written by the first export")
    (out / ".manifest-journal.csv").write_text("seed000000.png\n")
    first = FolderLock(out, "exported into", "", pid_file=False)  # the first export, still running
    try:
        with pytest.raises(GanError, match=r"is being exported into by another process: two exports"):
            export(SampleConfig(run=str(run_dir), count=2, out=str(out), overwrite=True), log=lambda _: None)
    finally:
        first.release()
    assert (out / "seed000000.png").read_bytes() == b"being written by the first export"
    export(SampleConfig(run=str(run_dir), count=2, out=str(out), overwrite=True), log=lambda _: None)  # once it ended
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "manifest.csv", "seed000000.png", "seed000001.png"]


def test_a_per_class_count_past_a_million_images_in_all_is_refused_before_any_work(conditional_run, tmp_path):
    with pytest.raises(GanError, match=r"^--per-class 600000 asks for 1,200,000 images of 2 classes, more than the "
                                       r"1,000,000 one export makes: lower it, or export the classes in parts with "
                                       r"--class$"):
        export(SampleConfig(run=str(conditional_run), per_class=600_000, out=str(tmp_path / "o")), log=lambda _: None)
    assert not (tmp_path / "o").exists()
