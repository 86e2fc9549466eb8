"""The fault tests use the integration fixtures: the simulator over a real Valkey."""

from tests.integration.conftest import sim  # noqa: F401 - re-exported fixture
