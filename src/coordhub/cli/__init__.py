"""The ``coord`` CLI: thin commands over the client (seed 000's verbs, plus serve, token, halt, sync)."""
