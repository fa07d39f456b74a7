"""The dashboard ships in the wheel (issue 13): seed 003's wheel forgot its HTML and answered 500.

Builds the wheel (``pip wheel --no-deps``), installs it into a fresh virtual
environment (its dependencies come from the running interpreter's
site-packages, added by a ``.pth`` line so no registry is needed), starts
``coord serve`` from there and reads the page and every asset it loads,
following the scripts' ``import`` lines.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import httpx2
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def _assets(client: httpx2.Client, base: str) -> set[str]:
    """Every path the page loads: index.html's src/href, then each script's static imports, transitively."""
    page = client.get(base + "/")
    assert page.status_code == 200, page.text
    todo = set(re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text))
    seen: set[str] = set()
    while todo:
        path = todo.pop()
        seen.add(path)
        r = client.get(base + path)
        assert r.status_code == 200, (path, r.status_code)
        if path.endswith(".js"):
            for rel in re.findall(r'(?:from|import)\s*"(\.{1,2}/[^"]+)"', r.text):
                target = _join(path, rel)
                if target not in seen:
                    todo.add(target)
    return seen


def _join(path: str, rel: str) -> str:
    parts = path.split("/")[:-1]
    for piece in rel.split("/"):
        if piece == "..":
            parts.pop()
        elif piece != ".":
            parts.append(piece)
    return "/".join(parts)


@pytest.mark.timeout(300)
def test_the_built_wheel_serves_the_page(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "-w", str(out), str(ROOT)], check=True, timeout=240)
    wheel = next(out.glob("coordhub-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "coordhub/web/static/index.html" in names and "coordhub/web/static/vendor/LICENSE.preact" in names
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False, symlinks=True)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    with zipfile.ZipFile(wheel) as z:  # a wheel is installed by unpacking it into site-packages (PEP 427)
        z.extractall(site)
    # the dependencies only: the running environment's site-packages, after the fresh one (its coordhub
    # is an editable install of the source tree, which this line does not activate)
    (site / "zz_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # a source tree on the path would win
    where = subprocess.run([str(py), "-c", "import coordhub.web; print(coordhub.web.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path, env=env).stdout.strip()
    assert where.startswith(str(site)), where
    port = free_port()
    data = tmp_path / "hub"
    proc = subprocess.Popen([str(py), "-m", "coordhub", "serve", "--port", str(port), "--data-dir", str(data)],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        from coordhub.bench.target import wait_healthy

        wait_healthy(base, proc, 60, lambda: "")
        with httpx2.Client(timeout=10) as client:
            seen = _assets(client, base)
        assert {"/static/js/app.js", "/static/vendor/preact-htm.js", "/static/app.css"} <= seen
        assert any(p.startswith("/static/js/views/") for p in seen)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
