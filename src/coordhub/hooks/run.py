"""``coord-hook`` entry point (placeholder until the handlers land)."""

import sys


def main() -> None:
    """Exit 0 doing nothing: an unknown or missing handler must never block the agent."""
    sys.exit(0)
