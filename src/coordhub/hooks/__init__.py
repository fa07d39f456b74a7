"""Claude Code hook handlers (``coord-hook <event>``): standard library only, so they start fast."""
