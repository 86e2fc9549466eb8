"""Runbook checks: the vocabulary in `base`, one module per runbook subject, the `catalog`."""
