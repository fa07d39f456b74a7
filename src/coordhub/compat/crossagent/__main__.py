"""``python -m coordhub.compat.crossagent NAME ARGS…``: run the drop-in ``cross-agent-NAME`` without its console
script (e.g. from a checkout that was not installed)."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "send": "coordhub.compat.crossagent.send:main", "recv": "coordhub.compat.crossagent.recv:main",
    "status": "coordhub.compat.crossagent.status:main", "halt": "coordhub.compat.crossagent.halt:main_halt",
    "resume": "coordhub.compat.crossagent.halt:main_resume", "discover": "coordhub.compat.crossagent.discover:main",
    "watch": "coordhub.compat.crossagent.watch:main",
}


def main() -> int:
    """Dispatch ``NAME`` to its entry point with the remaining arguments."""
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m coordhub.compat.crossagent {{{','.join(COMMANDS)}}} ARGS...", file=sys.stderr)
        return 2
    module, _, attr = COMMANDS[sys.argv[1]].partition(":")
    entry = getattr(importlib.import_module(module), attr)
    return int(entry(sys.argv[2:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
