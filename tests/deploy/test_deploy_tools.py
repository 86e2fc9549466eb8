"""The systemd unit and the Kubernetes manifests, checked by the tools that consume them
(systemd-analyze, kubectl kustomize) and by starting the exporter's configuration the way the
pod and the unit would. Issue 13, item 3."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import clean_env, require_program

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy/systemd/quantops-exporter.service"
INSTALL = Path("/opt/quantops-exporter/bin/quantops-exporter")  # the unit's ExecStart
pytestmark = pytest.mark.deploy


def check_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`quantops-exporter check-config` with exactly `env` (plus PATH and the like)."""
    return subprocess.run(
        [sys.executable, "-m", "quantops_exporter", "check-config"],
        env=clean_env() | env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def installed() -> Iterator[Path]:
    """The exporter where the unit's header says to install it (a link to this venv's), as a
    user would have it; removed afterwards if this test made it."""
    if INSTALL.exists():
        yield INSTALL
        return
    if not os.access("/opt", os.W_OK):
        reason = "cannot create /opt/quantops-exporter (not root)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run this test: {reason}")
        pytest.skip(reason)
    INSTALL.parent.mkdir(parents=True)
    INSTALL.symlink_to(Path(sys.executable).parent / "quantops-exporter")
    try:
        yield INSTALL
    finally:
        shutil.rmtree(INSTALL.parents[1])


def test_the_systemd_unit_verifies(installed: Path, tmp_path: Path) -> None:
    """`systemd-analyze verify` passes with the exporter installed where the unit says: it
    failed on a man page that does not exist."""
    analyze = require_program("systemd-analyze", "apt-get install systemd")
    unit = tmp_path / UNIT.name
    shutil.copy(UNIT, unit)
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "quantops-exporter" not in done.stderr, done.stderr


def unit_settings() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def test_the_unit_reloads_with_sighup_and_requires_its_settings() -> None:
    """ExecReload sends SIGHUP (the daemon's reload); the unit's Environment= makes a missing
    VALKEY_URL in its env file a start-up error (exit 2, no restart loop), not localhost."""
    service = unit_settings()
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["RestartPreventExitStatus"] == "2"
    name, _, value = service["Environment"].partition("=")
    env_file = {"SEP_API_URL": "http://sep-backend:8000", "ALLOCATOR_URL": "http://a:8100"}
    done = check_config({name: value} | env_file)
    assert done.returncode == 2, done.stderr
    assert "VALKEY_URL is not set, and QUANTOPS_REQUIRE" in done.stderr, done.stderr
    done = check_config({name: value} | env_file | {"VALKEY_URL": "redis://valkey:6379/0"})
    assert done.returncode == 0, done.stderr


def kustomized() -> list[dict[str, object]]:
    kubectl = require_program("kubectl", "apt-get install kubernetes-client")
    done = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy/kubernetes")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return list(yaml.safe_load_all(done.stdout))


def test_kustomize_builds_the_image_the_readme_builds_and_requires_the_secret() -> None:
    """`kubectl kustomize`: the Deployment runs the image `docker build` in docs/deploying.md tags,
    with a Secret that must exist (an optional one silently targeted localhost)."""
    documents = {(d["kind"], d["metadata"]["name"]): d for d in kustomized()}  # type: ignore[index]
    deployment = documents[("Deployment", "quantops-exporter")]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    assert f"docker build -t {container['image']} ." in (ROOT / "docs/deploying.md").read_text()
    secret = next(s["secretRef"] for s in container["envFrom"] if "secretRef" in s)
    assert secret.get("optional", False) is False
    assert {
        probe["httpGet"]["path"]
        for probe in (container["readinessProbe"], container["livenessProbe"])
    } == {"/-/ready", "/-/healthy"}


def test_the_pods_configuration_without_the_secret_refuses_to_start() -> None:
    """The ConfigMap's settings alone (the Secret's VALKEY_URL missing): exit 2 naming it."""
    documents = {(d["kind"], d["metadata"]["name"]): d for d in kustomized()}  # type: ignore[index]
    config = documents[("ConfigMap", "quantops-exporter")]["data"]  # type: ignore[index]
    done = check_config(dict(config))
    assert done.returncode == 2, done.stderr
    assert "VALKEY_URL is not set, and QUANTOPS_REQUIRE" in done.stderr, done.stderr
    done = check_config(dict(config) | {"VALKEY_URL": "redis://u:p@valkey:6379/0"})
    assert done.returncode == 0, done.stderr


COMPOSE = ROOT / "deploy/docker-compose.yml"
# What each profile needs from the environment (nothing for the demo).
PROFILE_VARIABLES = {
    "demo": {},
    "live": {
        "VALKEY_URL": "redis://sep-valkey:6379/0",
        "SEP_API_URL": "http://sep-backend:8000",
        "ALLOCATOR_URL": "http://sep-allocator-lite:8100",
    },
}


def test_compose_interpolates_nothing_required() -> None:
    """Compose interpolates every service whatever the profile (docker/compose#11977): no
    `${VAR:?...}` or `${VAR?...}` anywhere, and every `${VAR}` has a default, so neither
    profile needs the other's variables."""
    import re

    lines = COMPOSE.read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    found = re.findall(r"\$\{([^}]*)\}", text)
    assert found, "the file interpolates nothing at all: update this test"
    for expression in found:
        assert "?" not in expression, expression
        assert ":-" in expression, expression


@pytest.mark.parametrize("profile", sorted(PROFILE_VARIABLES))
def test_compose_config_works_for_each_profile_without_the_others_variables(
    profile: str,
) -> None:
    """`docker-compose config` (Debian's docker-compose, which interpolates the whole file as
    compose v2 does) accepts each profile with only its own variables set; the live exporter
    gets its variables passed through and QUANTOPS_REQUIRE, so without them it stops naming
    them instead of reading localhost."""
    program = require_program("docker-compose", "apt-get install docker-compose")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    done = subprocess.run(
        [program, "-f", str(COMPOSE), "--profile", profile, "config"],
        env=env | PROFILE_VARIABLES[profile],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    exporter = services["exporter" if profile == "live" else "exporter-demo"]
    if profile == "live":
        environment = exporter["environment"]
        assert environment["QUANTOPS_REQUIRE"] == "VALKEY_URL,SEP_API_URL,ALLOCATOR_URL"
        for name, value in PROFILE_VARIABLES["live"].items():
            assert environment[name] == value
    else:
        assert exporter["command"] == ["demo"]
