"""The environment a worker's ``claude`` runs with: an allowlist, never the host's own.

Claude Code marks its children (``CLAUDECODE=1``, ``CLAUDE_CODE_SESSION_ID``,
``CLAUDE_CODE_CHILD_SESSION``, ``CLAUDE_CODE_MESSAGING_SOCKET``/``_TOKEN``): a
worker that inherits them may write no transcript or read another session's
inbox (research orchestrator.md §1, multica PR #592). And the host's own
``COORD_TOKEN`` is the machine's credential, which a worker must never hold.
So nothing is inherited unless listed in :data:`ALLOWED` (or matching
:data:`ALLOWED_PREFIXES`), plus what the operator passes with
``coord agent --pass-env NAME``. Variables that bind a process to another
Claude Code session (:func:`forbidden`) cannot be passed even then.

The worker's own hub identity is then added: ``COORD_URL``, ``COORD_TOKEN``
(the worker token the hub minted), ``COORD_SESSION``, ``COORD_PROJECT`` (the
repo: the project key of the worker's file leases) and ``COORD_ASSIGNMENT``.
"""

from __future__ import annotations

import ctypes
import re
import sys
from collections.abc import Iterable, Mapping

ALLOWED = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
    "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR",
    "SSH_AUTH_SOCK", "GIT_SSH_COMMAND", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS",
    # Claude Code's own configuration and credentials (research orchestrator.md §1, auth precedence)
    "CLAUDE_CONFIG_DIR", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL",
    "API_TIMEOUT_MS", "BASH_DEFAULT_TIMEOUT_MS", "MCP_TIMEOUT", "DISABLE_TELEMETRY", "DO_NOT_TRACK",
})
ALLOWED_PREFIXES = ("LC_",)
_FORBIDDEN = re.compile(r"^(CLAUDECODE|CLAUDE_CODE_(SESSION_ID|CHILD_SESSION|MESSAGING_.*|ENTRYPOINT|SSE_PORT))$")
SET = {"DISABLE_AUTOUPDATER": "1", "GIT_TERMINAL_PROMPT": "0"}


def forbidden(name: str) -> bool:
    """Whether ``name`` binds a process to another Claude Code session (never passed to a worker)."""
    return bool(_FORBIDDEN.match(name))


def worker_env(host_env: Mapping[str, str], identity: Mapping[str, str], passed: Iterable[str] = ()) -> dict[str, str]:
    """The worker's environment: the allowlisted part of ``host_env``, ``passed`` names, :data:`SET`, ``identity``.

    ``identity`` (the ``COORD_*`` of the worker) wins over everything.
    Raises ``ValueError`` when ``passed`` names a :func:`forbidden` variable.
    """
    extra = set(passed)
    bad = sorted(n for n in extra if forbidden(n))
    if bad:
        raise ValueError(f"cannot pass {', '.join(bad)} to workers: it binds a process to another Claude Code "
                         "session")
    env = {k: v for k, v in host_env.items()
           if (k in ALLOWED or k.startswith(ALLOWED_PREFIXES) or k in extra) and not forbidden(k)}
    env.update(SET)
    env.update(identity)
    return env


PR_SET_DUMPABLE = 4  # prctl(2), <linux/prctl.h>


def seal_from_children() -> bool:
    """Make this process non-dumpable (Linux ``prctl(PR_SET_DUMPABLE, 0)``); return whether it took.

    ``coord agent`` holds the machine's hub token and the host's whole
    environment (a GitHub token among it) and runs untrusted code as its
    children under the same user: workers, gates, smoke tests, reviewers.
    A worker's environment is allowlisted (:func:`worker_env`), but any
    process of the same user may read ``/proc/<its parent>/environ`` (and
    ptrace it) unless the parent is non-dumpable; then those files belong to
    root. Children get the flag back at ``execve``, so nothing of theirs
    changes. It guards this one door: the same user can still read the
    files that user can (docs/orchestrator.md, "What a worker can reach").
    Not Linux, or the call failed: False, and nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False
