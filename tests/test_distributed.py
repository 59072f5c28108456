"""Several training processes (gloo on the CPU): through torchrun as a user runs it, and through the training
loop's own API in processes started here."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from helpers import TINY_FLAGS, stats_records, tiny_config, tiny_state, write_images
from gan.checkpoint import list_checkpoints, load_checkpoint
from gan.config import RunConfig
from gan.distributed import SINGLE, Ranks, joined
from gan.errors import GanError
from gan.options import from_dict, to_dict
from gan.step import stacked, train_step

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args: list[str], cache: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_CACHE_HOME": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            **kwargs)


def _finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    return out, err


def _trained_steps(rank: int, processes: int, port: int, cfg_state: dict, steps: int, out: str) -> None:
    """One process of a run: a few training steps through the loop's API, then its networks saved."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(processes))
    cfg = from_dict(RunConfig, cfg_state)
    with joined("cpu") as ranks:
        states = _train_steps(cfg, ranks, steps)
    torch.save(states, Path(out) / f"rank{rank}.pt")


def _train_steps(cfg: RunConfig, ranks: Ranks, steps: int) -> dict:
    state = tiny_state(cfg, ranks)
    initial = {name: {k: v.clone() for k, v in getattr(state.nets, name).state_dict().items()} for name in ("G", "D")}
    stats = [train_step(state, cfg, None, step) for step in range(1, steps + 1)]
    nets = state.nets
    return {"G": nets.G.state_dict(), "D": nets.D.state_dict(), "G_ema": nets.G_ema.state_dict(),
            "p": state.augment_p.p, "stats": stacked(stats)[1],
            "batches": state.batches.state_dict(), "initial": initial}


def _flat(state: dict) -> torch.Tensor:
    return torch.cat([value.float().flatten() for value in state.values()])


@pytest.fixture(scope="module")
def two_process_steps(tmp_path_factory):
    """6 steps of one conditional run on 2 processes (each saved), and the same run on 1 process."""
    base = tmp_path_factory.mktemp("ddp")
    write_images(base / "data" / "cats", 12, seed=1)
    write_images(base / "data" / "dogs", 12, seed=2)
    cfg = tiny_config(base / "data", base / "runs")
    cfg.train.augment_p = "0.5"  # every augmentation draws for its share of the batch
    cfg.train.lecam_weight = 0.1  # its averages are reduced over the processes
    cfg.data.mirror = True
    cfg.data.cache_dir = str(base / "cache")
    steps = 6
    mp.spawn(_trained_steps, args=(2, _free_port(), to_dict(cfg), steps, str(base)), nprocs=2, join=True)
    ranks = [torch.load(base / f"rank{r}.pt", weights_only=True) for r in range(2)]
    return ranks, _train_steps(cfg, SINGLE, steps)


def _one_process_fails_after_the_last_collective(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2")
    outcome = "finished"
    try:
        with joined("cpu") as ranks:
            ranks.average(torch.ones(1))
            if rank == 1:
                raise GanError("a full disk, say")
    except GanError as error:
        outcome = str(error)
    (Path(out) / f"rank{rank}.txt").write_text(outcome)


def test_a_process_whose_peer_failed_at_the_end_leaves_cleanly(tmp_path):
    # The others wait for it at the exit barrier; one that failed says why itself, so the survivor's work stands.
    mp.spawn(_one_process_fails_after_the_last_collective, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in range(2)] == ["finished", "a full disk, say"]


def test_every_process_ends_with_the_same_state(two_process_steps):
    (first, second), _ = two_process_steps
    for name in ("G", "D", "G_ema"):
        for key, value in first[name].items():
            if "running_" in key or "num_batches" in key:  # each process's BatchNorm averages its own share
                continue
            assert torch.equal(value, second[name][key]), f"{name}.{key} differs between the processes"
    assert torch.equal(first["p"], second["p"])
    assert torch.equal(first["batches"]["generator"], second["batches"]["generator"])


def test_two_processes_train_as_one_on_the_same_whole_batch(two_process_steps):
    (first, _), single = two_process_steps
    # Each process's BatchNorm in G normalises its own half of the batch, so the runs are not bit-identical: after
    # 6 steps they may differ by at most a tenth of how far training moved the networks. Measured: 0.003 of it for
    # G and 0.025 for D; with both processes drawing the same half of every batch, D's was 0.21.
    for name in ("G", "D"):
        moved = (_flat(single[name]) - _flat(single["initial"][name])).norm()
        apart = (_flat(first[name]) - _flat(single[name])).norm()
        assert apart < moved / 10, name
    assert torch.equal(first["batches"]["generator"], single["batches"]["generator"])  # the same draws


def test_torchrun_trains_one_run_that_any_number_of_processes_resumes(tmp_path):
    data, runs, cache = tmp_path / "data", tmp_path / "runs", tmp_path / "cache"
    write_images(data, 16)
    flags = ["--data", str(data), *TINY_FLAGS, "--out", str(runs), "--no-tensorboard", "--eval-every", "4"]
    two = [*TORCHRUN, "--nproc-per-node", "2", "scripts/train.py", *flags]
    out, err = _finish(_launch([*two, "--steps", "4"], cache))
    run = runs / "00000-data"
    assert [p.name for p in runs.iterdir()] == ["00000-data"]
    assert "2 processes: batch 8 in all, 4 on each" in out and out.count("run folder:") == 1
    assert [r["step"] for r in stats_records(run)] == [2, 4]  # one writer: no line twice
    assert (run / "best.pt").exists()

    _finish(_launch([sys.executable, "scripts/train.py", "--resume", str(run), "--steps", "6"], cache))
    out, _ = _finish(_launch([*two, "--resume", "auto", "--steps", "8"], cache))
    assert "resuming checkpoint-0000006.pt at step 6" in out
    assert [r["step"] for r in stats_records(run)] == [2, 4, 6, 8]
    assert load_checkpoint(str(run)).step == 8
    out, _ = _finish(_launch([sys.executable, "-m", "gan.cli", "sample", "--run", str(run), "--count", "3",
                              "--out", str(tmp_path / "synthetic")], cache))
    assert "wrote 3 images" in out


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _wait_for(condition, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds torchrun's workers through /proc (Linux)")
def test_a_killed_worker_costs_at_most_one_checkpoint_interval(tmp_path):
    data, runs, cache = tmp_path / "data", tmp_path / "runs", tmp_path / "cache"
    write_images(data, 16)
    proc = _launch([*TORCHRUN, "--nproc-per-node", "2", "--max-restarts", "1", "scripts/train.py", "--data",
                    str(data), *TINY_FLAGS, "--out", str(runs), "--name", "job", "--resume", "auto", "--steps", "600",
                    "--checkpoint-every", "20", "--log-every", "20", "--image-every", "1000", "--eval-every", "0",
                    "--no-tensorboard"], cache)
    run = runs / "00000-job"
    _wait_for(lambda: run.is_dir() and list_checkpoints(run))
    workers = _children(proc.pid)
    assert len(workers) == 2
    saved = int(list_checkpoints(run)[-1].stem.split("-")[1])
    os.kill(workers[1], signal.SIGKILL)
    out, err = _finish(proc)
    assert [p.name for p in runs.iterdir()] == ["00000-job"]
    resumed = int(out.split("at step ")[1].split(")")[0])
    assert resumed >= saved  # what the kill lost: less than one checkpoint interval
    assert load_checkpoint(str(run)).step == 600


def test_a_second_writer_is_refused_until_the_first_dies(tmp_path):
    data, runs, cache = tmp_path / "data", tmp_path / "runs", tmp_path / "cache"
    write_images(data, 8)
    base = [sys.executable, "scripts/train.py", "--data", str(data), *TINY_FLAGS, "--out", str(runs),
            "--no-tensorboard", "--eval-every", "0"]
    _finish(_launch([*base, "--steps", "2"], cache))
    run = runs / "00000-data"
    first = _launch([sys.executable, "scripts/train.py", "--resume", str(run), "--steps", "1000000",
                     "--checkpoint-every", "1000000"], cache)
    _wait_for(lambda: len(stats_records(run)) > 1)  # it holds the run folder
    second = _launch([sys.executable, "scripts/train.py", "--resume", str(run), "--steps", "10"], cache)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 1
    assert err == (f"error: {run} is being trained by another process (PID {first.pid}): two writers would replace "
                   f"each other's checkpoints. Wait for it to finish or stop it, then resume\n")
    first.kill()  # SIGKILL: no handler runs, only the operating system lets go of the lock
    first.communicate(timeout=60)
    _finish(_launch([sys.executable, "scripts/train.py", "--resume", str(run), "--steps", "4"], cache))
    assert load_checkpoint(str(run)).step == 4


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds torchrun's workers through /proc (Linux)")
def test_a_signal_to_one_process_stops_them_all_with_a_checkpoint(tmp_path):
    data, runs, cache = tmp_path / "data", tmp_path / "runs", tmp_path / "cache"
    write_images(data, 16)
    proc = _launch([*TORCHRUN, "--nproc-per-node", "2", "scripts/train.py", "--data", str(data), *TINY_FLAGS,
                    "--out", str(runs), "--steps", "100000", "--checkpoint-every", "100000", "--log-every", "5",
                    "--image-every", "100000", "--eval-every", "0", "--no-tensorboard"], cache)
    run = runs / "00000-data"
    _wait_for(lambda: (run / "stats.jsonl").exists() and stats_records(run))
    os.kill(_children(proc.pid)[1], signal.SIGTERM)  # the second process only: the first must hear of it
    out, _ = _finish(proc)
    step = load_checkpoint(str(run)).step
    assert step % 5 == 0 and f"stopped at step {step}" in out


def _patient_process(rank: int, port: int, cfg_state: dict, out: str) -> None:
    """One of two processes of a run with --patience 2, whose evaluations score (class KID, agreement) as scripted:
    the first process alone sees scores (as with the real evaluator), so only its word can stop the other."""
    import gan.evaluate
    from gan.train import train

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2")
    script = iter([(5.0, 0.5), (6.0, 0.4), (6.0, 0.5)])  # no gain at steps 2 and 3: it stops at 3

    def evaluate(self, G):
        kid, agreement = next(script)
        return {"kid": kid, "class_kid": kid, "label_agreement": agreement, "judge_accuracy": 1.0,
                "label_agreement_classes": {"cats": agreement, "dogs": agreement}} if rank == 0 else None

    gan.evaluate.Evaluator.evaluate = evaluate
    with joined("cpu") as ranks:
        result = train(from_dict(RunConfig, cfg_state), log=lambda _: None, ranks=ranks)
    (Path(out) / f"rank{rank}.txt").write_text(f"{result.step} {result.stopped_early}")


def test_patience_stops_every_process_at_the_same_step(tmp_path):
    write_images(tmp_path / "data" / "cats", 6, seed=1)
    write_images(tmp_path / "data" / "dogs", 6, seed=2)
    cfg = tiny_config(tmp_path / "data", tmp_path / "runs", steps=8)
    cfg.train.eval_every, cfg.train.patience = 1, 2
    cfg.data.cache_dir = str(tmp_path / "cache")
    processes = mp.spawn(_patient_process, args=(_free_port(), to_dict(cfg), str(tmp_path)), nprocs=2, join=False)
    deadline = time.time() + 240  # processes that disagreed would wait on each other for good
    while not processes.join(timeout=max(deadline - time.time(), 0)):  # (it returns as each process ends)
        if time.time() >= deadline:
            for process in processes.processes:
                process.kill()
            pytest.fail("the processes did not stop together")
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in range(2)] == ["3 True", "3 True"]
    assert load_checkpoint(str(tmp_path / "runs" / "00000-data")).state["stale_evaluations"].item() == 2
