"""The container image's install, proven by doing it (no Docker engine here): the Dockerfile's
own pip steps run in throwaway venvs, then the result starts. And the lock is not stale."""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from quantops_exporter.simulator.valkey_server import free_port
from tests.conftest import clean_env, patience

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "deploy" / "requirements.lock"
pytestmark = pytest.mark.deploy


def dockerfile_pip_steps() -> list[list[list[str]]]:
    """Each stage's `RUN pip …` commands from the Dockerfile, as argument lists."""
    stages: list[list[list[str]]] = []
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith("FROM "):
            stages.append([])
        elif line.startswith("RUN ") and stages:
            for command in line.removeprefix("RUN ").split("&&"):
                words = shlex.split(command)
                if words and words[0] == "pip":
                    stages[-1].append(words)
    return stages


def dockerfile_healthcheck() -> list[str]:
    """The exec-form command of the Dockerfile's HEALTHCHECK."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", text, re.M)
    assert found is not None, "the Dockerfile has no exec-form HEALTHCHECK"
    command: list[str] = json.loads(found.group(1))
    return command


def localised(words: list[str], wheels: Path) -> list[str]:
    """A Dockerfile pip command with the image's paths mapped to this machine's."""
    out: list[str] = []
    for word in words:
        word = word.replace("/wheels", str(wheels))
        if word == "requirements.lock":
            word = str(LOCK)
        elif word == ".":
            word = str(ROOT)
        out.extend(sorted(glob.glob(word)) if "*" in word else [word])
    return out


def venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path / "bin"


def test_the_lock_is_compiled_from_pyproject_and_current() -> None:
    """`make lock`'s command, run on a copy: no change. A dependency added to pyproject.toml
    without `make lock` fails here (bcrypt was missing from the old hand-made lock)."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    assert uv is not None, "uv is a dev dependency: pip install -e '.[dev]'"
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    command = re.search(r"^LOCK_COMPILE = (.+)$", makefile, re.M)
    assert command is not None
    copy = Path(os.environ.get("TMPDIR", "/tmp")) / f"lock-check-{os.getpid()}.txt"
    shutil.copy(LOCK, copy)
    args = [*shlex.split(command.group(1).replace("$(BIN)/uv", uv)), "-o", str(copy)]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert copy.read_text() == LOCK.read_text(), "deploy/requirements.lock is stale: make lock"
    copy.unlink()


def test_the_dockerfile_install_builds_and_starts(tmp_path: Path) -> None:
    """Stage 1's pip steps (hash-checked wheels from the lock, then the project's wheel) in one
    venv, stage 2's offline install in a fresh one; then `--version` and the demo until
    /-/ready answers 200, as `docker run … demo` would."""
    build, final = dockerfile_pip_steps()
    healthcheck = dockerfile_healthcheck()
    assert build and final, "the Dockerfile has no pip steps"
    wheels = tmp_path / "wheels"
    builder = venv(tmp_path / "build")
    for words in build:
        done = subprocess.run(
            [str(builder / "python"), "-m", *localised(words, wheels)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    image = venv(tmp_path / "image")
    for words in final:
        if words[:2] == ["pip", "install"]:
            done = subprocess.run(
                [str(image / "python"), "-m", *localised(words, wheels)],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, done.stderr[-3000:]
    version = subprocess.run(
        [str(image / "quantops-exporter"), "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and version.stdout.startswith("quantops-exporter ")
    port = free_port()
    demo = subprocess.Popen(
        [str(image / "quantops-exporter"), "demo"],
        cwd=tmp_path,
        env=clean_env() | {"QUANTOPS_LISTEN_ADDRESS": f"127.0.0.1:{port}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _until_ready(f"http://127.0.0.1:{port}/-/ready", demo)
        # The image's HEALTHCHECK command, as Docker runs it in the container.
        probe = subprocess.run(
            [str(image / healthcheck[0]), *healthcheck[1:]],
            env=clean_env() | {"QUANTOPS_LISTEN_ADDRESS": f"127.0.0.1:{port}"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert probe.returncode == 0, probe.stderr
    finally:
        demo.terminate()
        _out, err = demo.communicate(timeout=30)
    assert demo.returncode == 0, err.decode()[-2000:]


def _until_ready(url: str, process: subprocess.Popen[bytes], limit: float = 90.0) -> None:
    deadline = time.monotonic() + patience(limit)
    while time.monotonic() < deadline:
        assert process.poll() is None, "the demo exited"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} not 200 within {limit}s")
