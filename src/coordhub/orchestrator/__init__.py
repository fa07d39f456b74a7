"""The orchestrator's pieces that are not hub state: ``coordinator.yml`` and what runs on a worker machine.

The hub side (hosts, assignments, the reconciler) lives in ``coordhub.core``;
this package holds the configuration model shared by the CLI, the hub and
``coord agent``, and the worker host itself.
"""
