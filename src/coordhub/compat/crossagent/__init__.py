"""Seed 004's seven commands, ``cross-agent-send/-recv/-status/-halt/-resume/-discover/-watch``, backed by the hub.

Each keeps its seed's arguments, output (human and ``--json``) and exit codes
(docs/conversations.md maps each one); argparse and the standard library up
front, so they start about as fast as the seed's scripts did.
"""
