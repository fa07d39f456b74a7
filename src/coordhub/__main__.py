"""``python -m coordhub`` runs the ``coord`` CLI."""

from coordhub.cli.entry import main

main()
