"""The dashboard's assets after an upgrade: a browser must not keep running the old page's scripts.

The hub serves its page's scripts from the package; a browser caches what it fetched. Without an explicit
``Cache-Control`` on the assets, Chromium keeps a script "fresh" for a tenth of its age (the heuristic of RFC 9111
§4.2.2: an installation a month old gives three days), so after an upgrade of the hub a new visit ran the old
scripts, security fixes of the page included, for days, under the new ``index.html``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import httpx2

import coordhub
from tests.conftest import LiveHub
from tests.web.conftest import open_page, start_hub

MARK = "document.documentElement.dataset.upgraded = 'yes';\n"


def test_a_visit_after_an_upgrade_runs_the_new_scripts(browser: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(Path(coordhub.__file__).parent, src / "coordhub", ignore=shutil.ignore_patterns("__pycache__"))
    static = src / "coordhub" / "web" / "static"
    installed = time.time() - 30 * 86400  # the hub was installed a month ago
    for f in static.rglob("*"):
        os.utime(f, (installed, installed))
    hub = start_hub(LiveHub(tmp_path / "hub", env={"PYTHONPATH": str(src)}))
    try:
        page = open_page(browser, hub.url, hub.admin_token, "fleet")
        assert page.evaluate("document.documentElement.dataset.upgraded") is None
        # the upgrade: the package's script changes (the hub reads its assets at each request)
        app = static / "js" / "app.js"
        app.write_text(app.read_text() + MARK)
        assert MARK in httpx2.get(hub.url + "/static/js/app.js").text  # the hub serves the new one
        again = page.context.new_page()  # a new visit in the same browser, with its cache
        again.goto(hub.url + "/#/fleet")
        again.wait_for_selector(".stream.live", timeout=10_000)
        assert again.evaluate("document.documentElement.dataset.upgraded") == "yes"
        assert page.errors == []
    finally:
        hub.stop()
