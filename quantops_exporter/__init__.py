"""quantops-exporter: the SEP operations runbook as continuous Prometheus metrics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("quantops-exporter")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
