"""Two processes, one run (``cmedu.runtime.distributed``): DistributedDataParallel on the CPU with
the Gloo backend, as ``torchrun --nproc_per_node 2`` would start it. Both processes end with
identical parameters, only rank 0 writes the checkpoint, and the run resumes from it."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from image_folders import write_image_folder

from cmedu.runtime import distributed
from cmedu.training.checkpoint import CHECKPOINT, CONFIG

WORLD = 2
STEPS = 4  # K; the first launch stops after the checkpoint at K/2


def _config(data: str):
    from cmedu.training import TrainConfig

    return TrainConfig(
        data=data, method="ict", steps=STEPS, checkpoint_every=STEPS // 2, batch_size=8,
        net="tiny", net_overrides=dict(model_channels=16),
    )  # fmt: skip


def _worker(rank: int, port: int, data: str, out_dir: str, results: str) -> None:
    """One process of the run, with the environment torchrun would give it. It trains to
    K/2 and stops (after that checkpoint), then a new Trainer on the same directory resumes
    the run to K."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
        WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank),
    )  # fmt: skip
    torch.set_num_threads(1)
    import cmedu.training as training
    import cmedu.training.loop as loop

    writes, save = [], loop.save_checkpoint
    loop.save_checkpoint = lambda *a, **kw: (writes.append(rank), save(*a, **kw))
    phases = []
    for stop_at in (STEPS // 2, None):
        trainer = training.Trainer(_config(data), out_dir, device="cpu")
        start = trainer.step
        for state in trainer.steps(progress=False):
            if state.step == stop_at:
                break  # as if the job were stopped here, after its checkpoint
        phases.append(dict(
            start=start, step=trainer.step, writes=list(writes), losses=list(trainer.losses),
            batch=trainer.batch, model=trainer.model.state_dict(),
        ))  # fmt: skip
        writes.clear()
        del trainer
        torch.manual_seed(1000 + rank)  # whatever the RNGs hold now must not matter
    torch.save(phases, os.path.join(results, f"rank{rank}.pt"))
    distributed.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp_path) -> list[list[dict]]:
    """Start the two processes; per rank, what each phase left."""
    results = tmp_path / "results"
    results.mkdir()
    args = (_free_port(), str(tmp_path / "data"), str(tmp_path / "run"), str(results))
    mp.spawn(_worker, args=args, nprocs=WORLD, join=True)
    return [torch.load(results / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def _assert_same_parameters(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "the processes' parameters differ"


@pytest.mark.skipif(not dist.is_available(), reason="torch built without torch.distributed")
def test_two_gloo_processes_agree_write_one_checkpoint_and_resume(tmp_path):
    write_image_folder(tmp_path / "data")

    first, second = zip(*_launch(tmp_path))  # per phase, what each rank left
    assert [r["step"] for r in first] == [STEPS // 2] * WORLD
    assert [r["batch"] for r in first] == [8 // WORLD] * WORLD  # the global batch, split
    _assert_same_parameters(first[0]["model"], first[1]["model"])
    assert first[0]["writes"] == [0] and first[1]["writes"] == []  # rank 0 alone writes
    assert first[0]["losses"] == first[1]["losses"]  # the global batch's mean loss

    # the second Trainer on the same directory resumed at K/2
    assert [(r["start"], r["step"]) for r in second] == [(STEPS // 2, STEPS)] * WORLD
    _assert_same_parameters(second[0]["model"], second[1]["model"])
    assert second[0]["writes"] == [0] and second[1]["writes"] == []
    assert second[0]["losses"][: STEPS // 2] == first[0]["losses"]

    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == sorted([CHECKPOINT, CONFIG])
    state = torch.load(run / CHECKPOINT, weights_only=True)
    assert state["step"] == STEPS
    _assert_same_parameters(state["online"], second[0]["model"])
    # each process keeps its own data stream (seeded with seed + rank) across the resume
    gens = [r["generator"] for r in state["rank_rngs"]]
    assert len(gens) == WORLD and not torch.equal(gens[0], gens[1])
