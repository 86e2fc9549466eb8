"""Build-time generators of the monitoring files under deploy/: alert and recording rules, their
promtool tests, the Kubernetes PrometheusRule and the Grafana dashboard, all from the catalog.

The daemon never imports this package (an import-linter contract holds it to that).
"""
