"""A client cannot claim another address with ``X-Forwarded-For`` unless it is a trusted proxy (review: uvicorn
trusts the header from loopback by default, so any local process could rotate it past the per-address limit
of failed sign-ins, or spend another client's); over a real ``coord serve``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx2

from tests.conftest import LiveHub


def test_forwarded_for_from_an_untrusted_peer_is_ignored(live_hub: LiveHub) -> None:
    codes = [httpx2.get(live_hub.url + "/api/coord/status", timeout=10,
                        headers={"Authorization": f"Bearer coord_guess{i}", "X-Forwarded-For": f"10.9.{i}.1"}
                        ).status_code for i in range(60)]
    assert codes[:30] == [401] * 30 and 429 in codes[30:], codes


def test_a_trusted_network_with_host_bits_is_refused(tmp_path: Path) -> None:
    """Review: uvicorn reads ``127.0.0.1/8`` as a name no address matches, so the balancer went untrusted."""
    r = subprocess.run([sys.executable, "-m", "coordhub", "serve", "--data-dir", str(tmp_path), "--port", "1",
                        "--trusted-proxies", "127.0.0.1/8"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "without host bits" in r.stderr, r
