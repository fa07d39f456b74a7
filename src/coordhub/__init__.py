"""coordhub: a coordination hub for fleets of AI coding-agent sessions.

Kept import-light on purpose: the Claude Code hook entry point imports
``coordhub.hooks`` and ``coordhub.core.paths`` and must start in tens of
milliseconds, so nothing here may pull in the web stack or a database driver.
"""

__version__ = "0.1.0"
