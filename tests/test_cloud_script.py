"""scripts/cloud.sh: syntax, clear errors for a bad .env.session, and the commands it would run
(CLOUD_DRY_RUN=1 prints them; no host is ever contacted)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "cloud.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

FULL = {"SSH_HOST": "gpu.invalid", "SSH_PORT": "2222", "SSH_USER": "root",
        "REMOTE_DIR": "/workspace/llmct", "INSTANCE_ID": "42",
        "SHUTDOWN_CMD": "echo destroying $INSTANCE_ID"}


def env_file(tmp_path: Path, drop=(), **extra) -> Path:
    key = tmp_path / "id_test"
    key.write_text("not a real key\n")
    values = {**FULL, "SSH_KEY": str(key), **extra}
    lines = ["# test session", *(f"{k}={v}" for k, v in values.items() if k not in drop)]
    path = tmp_path / "env.session"
    path.write_text("\n".join(lines) + "\n")
    return path


def cloud(*args, env_path: Path, dry: bool = True, **env) -> subprocess.CompletedProcess:
    """Run the script with ssh/rsync/vastai replaced by stubs that only record being called."""
    stubs = env_path.parent / "stubs"
    stubs.mkdir(exist_ok=True)
    for tool in ("ssh", "rsync", "vastai"):
        stub = stubs / tool
        stub.write_text(f"#!/bin/sh\necho {tool} >> '{stubs}/called'\nexit 99\n")
        stub.chmod(0o755)
    full_env = {**os.environ, "CLOUD_ENV": str(env_path), "CLOUD_DRY_RUN": "1" if dry else "0",
                "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}", **env}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env=full_env, timeout=30, cwd=ROOT)


def test_syntax():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


@pytest.mark.parametrize("missing", ["SSH_HOST", "SSH_PORT", "SSH_USER", "SSH_KEY", "REMOTE_DIR"])
def test_missing_variable_is_named_and_nothing_runs(tmp_path, missing):
    done = cloud("status", env_path=env_file(tmp_path, drop=(missing,)), dry=False)
    assert done.returncode == 1
    assert f"missing {missing}" in done.stderr
    assert not (tmp_path / "stubs" / "called").exists()


def test_missing_file_and_bad_values(tmp_path):
    done = cloud("sync", env_path=tmp_path / "nope")
    assert done.returncode == 1 and ".env.session.example" in done.stderr
    done = cloud("sync", env_path=env_file(tmp_path, SSH_PORT="twenty"))
    assert done.returncode == 1 and "SSH_PORT must be a number" in done.stderr
    done = cloud("sync", env_path=env_file(tmp_path, SSH_KEY=str(tmp_path / "absent")))
    assert done.returncode == 1 and "SSH_KEY file" in done.stderr
    done = cloud("frobnicate", env_path=env_file(tmp_path))
    assert done.returncode == 1 and "unknown subcommand" in done.stderr


def test_dry_run_prints_ssh_and_rsync_commands(tmp_path):
    path = env_file(tmp_path)
    sync = cloud("sync", env_path=path)
    assert sync.returncode == 0, sync.stderr
    assert "+ ssh -p 2222 -i" in sync.stdout and "root@gpu.invalid" in sync.stdout
    assert "+ rsync -az" in sync.stdout and "root@gpu.invalid:/workspace/llmct/" in sync.stdout
    for excluded in (".venv/", "activations/", "experiments/\\*/outputs/", "\\*.npz"):
        assert f"--exclude {excluded}" in sync.stdout
    setup = cloud("setup", env_path=path)
    assert "uv sync --frozen" in setup.stdout and "astral.sh/uv/install.sh" in setup.stdout
    run = cloud("run", "02_probes", "meta-llama/Llama-3.2-1B", "--batch-size", "4", env_path=path)
    assert run.returncode == 0, run.stderr
    assert "tmux new-session -d -s llmct-02_probes-llama-3.2-1b" in run.stdout
    assert "experiments/02_probes/run.py\\ --model\\ meta-llama/Llama-3.2-1B" in run.stdout
    assert "nohup" in run.stdout and "logs/02_probes-llama-3.2-1b-" in run.stdout
    gpus = cloud("run", "01_extract", "big/model", env_path=path, GPUS="2")
    assert gpus.stdout.count("tmux new-session") == 1  # one launcher, not a process loop
    assert "accelerate\\ launch\\ --num_processes\\ 2\\ experiments/01_extract/run.py" in gpus.stdout
    assert "--shard" not in gpus.stdout
    gone = cloud("run", "01_extract", "big/model", env_path=path, SHARDS="2")
    assert gone.returncode != 0 and "SHARDS is gone" in gone.stderr
    before = set((ROOT / "outputs" / "cloud").glob("*"))
    fetch = cloud("fetch", env_path=path)
    assert "rsync -a --ignore-existing" in fetch.stdout and "outputs/cloud/" in fetch.stdout
    assert "--exclude activations/" in fetch.stdout
    assert set((ROOT / "outputs" / "cloud").glob("*")) == before  # the mkdir is only printed
    down = cloud("down", env_path=path)
    assert "+ bash -c echo\\ destroying\\ 42" in down.stdout
    for sub in ("status", "logs"):
        done = cloud(sub, env_path=path)
        assert done.returncode == 0 and "+ ssh" in done.stdout
    assert not (tmp_path / "stubs" / "called").exists()  # nothing was contacted


def test_run_refuses_unknown_experiment(tmp_path):
    done = cloud("run", "99_nothing", env_path=env_file(tmp_path))
    assert done.returncode == 1 and "no experiments/99_nothing/run.py" in done.stderr


def test_down_refuses_a_shutdown_command_without_its_instance_id(tmp_path):
    done = cloud("down", env_path=env_file(tmp_path, drop=("INSTANCE_ID",)))
    assert done.returncode == 1 and "INSTANCE_ID is empty" in done.stderr
    assert "bash -c" not in done.stdout
