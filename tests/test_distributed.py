"""Data-parallel extraction under a launcher (``llmct.io.distributed``): the environment is read
correctly, and ``torchrun --nproc_per_node 2`` (gloo on CPU) gives the same activations as one
process, each rank writing its own shard store and only rank 0 running the analysis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llmct.io import distributed as dp

ROOT = Path(__file__).resolve().parents[1]


def test_world_reads_the_launcher_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert dp.world() == dp.World(0, 1, 0) and dp.world().shard is None and dp.world().is_main
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    w = dp.world()
    assert (w.rank, w.size, w.local_rank, w.shard, w.is_main) == (3, 4, 1, (3, 4), False)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK=4 is not in 0..WORLD_SIZE-1"):
        dp.world()
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ValueError, match="must be integers"):
        dp.world()


def test_device_and_barrier_are_unchanged_for_one_process(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert dp.process_device(None) is None and dp.process_device("cpu") == "cpu"
    dp.barrier()  # no process group is created for one process
    import torch.distributed as dist

    assert not dist.is_initialized()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_torchrun_two_processes_equal_one_process(embedded, tmp_path):
    from llmct.emotion.extract import load_extraction
    from llmct.io.stimuli import load_set

    common = ["--sets", "set_a", "--limit", "2", "--torch-threads", "1", "--no-progress",
              "--sources", "hidden_out", "mlp_out", "--layers", "0", "15", "-1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", str(_free_port()), str(ROOT / "experiments/01_extract/run.py"),
         *common, "--activations", str(tmp_path / "dp"), "--out", str(tmp_path / "out_dp")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert launched.returncode == 0, launched.stderr[-2000:]
    assert "[rank 0/2]" in launched.stdout and "[rank 1/2]" in launched.stdout
    shards = sorted(p.name for p in (tmp_path / "dp" / "fewshot").iterdir())
    assert shards == ["shard-0-of-2", "shard-1-of-2"]
    assert (tmp_path / "out_dp" / "extraction_summary.csv").is_file()  # rank 0 analysed
    single = subprocess.run(
        [sys.executable, str(ROOT / "experiments/01_extract/run.py"), *common,
         "--activations", str(tmp_path / "one"), "--out", str(tmp_path / "out_one")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    from llmct.emotion.extract import limit_stimuli

    items = limit_stimuli(load_set("set_a"), 2)
    a = load_extraction(tmp_path / "dp" / "fewshot", items)
    b = load_extraction(tmp_path / "one" / "fewshot", items)
    for source in ("hidden_out", "mlp_out"):
        scale = np.abs(b.acts[source]).max()
        np.testing.assert_allclose(a.acts[source], b.acts[source], atol=1e-4 * scale)
    np.testing.assert_array_equal(a.n_tokens, b.n_tokens)
