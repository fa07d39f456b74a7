"""``python -m coordhub`` runs the ``coord`` CLI."""

from coordhub.cli.main import main

main()
