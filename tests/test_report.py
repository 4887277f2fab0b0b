"""The README's report command on the smoke study (the session's `smoke` run, tests/conftest.py), opened in a real
headless Chromium: the method table and a plot must render in the browser, checked in the rendered DOM.

Guards against: a report whose results are listed but do not display (a table item the report can only offer as a
download, a plot whose data URI the browser cannot decode), and a table or plot left out of the report.
"""

import asyncio
import base64
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.config import variants
from tests.smoke_study import SMOKE_STUDY

ROOT = Path(__file__).resolve().parents[1]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(smoke):
    path = smoke / "report.html"
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--report", str(path.relative_to(ROOT)),
                           "--configfile", "config/smoke.yaml", "--config", f"study={SMOKE_STUDY}"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return path


class Page:
    """One page of a headless Chromium, driven over the DevTools protocol (aiohttp's websocket client)."""

    def __init__(self, ws):
        self.ws, self.next_id, self.contexts = ws, 0, {}

    async def call(self, method: str, **params):
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json(timeout=60)
            if message.get("method") == "Runtime.executionContextCreated":
                context = message["params"]["context"]
                self.contexts[context["auxData"].get("frameId")] = context["id"]
            if message.get("id") == self.next_id:
                # an error (e.g. a frame's context replaced meanwhile) reads as an exception of the evaluation
                return message["result"] if "error" not in message else {"exceptionDetails": message["error"]}

    async def evaluate(self, expression: str, frame: str | None = None):
        """The expression's value in the page (or in one of its frames); None when it throws."""
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        if frame is not None:
            params["contextId"] = self.contexts[frame]
        result = await self.call("Runtime.evaluate", **params)
        return None if "exceptionDetails" in result else result["result"].get("value")

    async def wait_for(self, expression: str, frame: str | None = None, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.evaluate(expression, frame) if frame is None or frame in self.contexts else None
            if value:
                return value
            await asyncio.sleep(0.25)
            await self.evaluate("0")  # a round trip: collects the frames' new execution contexts
        raise AssertionError(f"never true in the browser: {expression}")


async def open_in_chromium(url: str, profile: Path, check):
    import aiohttp

    proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                             "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={profile}",
                             "--window-size=1400,1000", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            assert proc.poll() is None and time.monotonic() < deadline, "chromium did not start"
            await asyncio.sleep(0.2)
        port = port_file.read_text().split()[0]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json(content_type=None)
            page = next(t for t in targets if t["type"] == "page")
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                return await check(Page(ws))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def render_table_and_plot(page: Page) -> dict:
    """Show the method table and the win-rate plot the way the report's own buttons do (app.setView with the
    result's entry), then read what the browser rendered: the table's rows in its frame, the decoded image size."""
    await page.call("Runtime.enable")
    await page.wait_for("typeof app !== 'undefined' && typeof results !== 'undefined'")
    show = ("(() => {{ const path = Object.keys(results).find(p => p.endsWith({name!r})); "
            "app.setView({{content: {kind!r}, contentPath: results[path].data_uri, resultPath: path}}); "
            "return path; }})()")
    assert await page.evaluate(show.format(name="tables/methods.html", kind="html"))
    await page.wait_for("document.querySelector('iframe') !== null")
    tree = await page.call("Page.getFrameTree")
    frame = tree["frameTree"]["childFrames"][0]["frame"]["id"]
    table = json.loads(await page.wait_for(
        "document.readyState === 'complete' && document.querySelector('#table') && JSON.stringify({"
        "header: [...document.querySelectorAll('#table thead th')].map(th => th.innerText), "
        "models: [...document.querySelectorAll('#table tbody tr')].map(tr => tr.cells[0].innerText), "
        "height: document.querySelector('#table').getBoundingClientRect().height, "
        "cell_width: document.querySelector('#table tbody td').getBoundingClientRect().width})", frame=frame))
    table["screenshot"] = (await page.call("Page.captureScreenshot", format="png"))["data"]  # kept for a look
    assert await page.evaluate(show.format(name="tables/winrate_vs_length.png", kind="img"))
    image = await page.wait_for(
        "(() => { const img = [...document.querySelectorAll('img')].find(i => i.src.startsWith('data:image/png')); "
        "return img && img.complete && img.naturalWidth > 0 && "
        "{natural: [img.naturalWidth, img.naturalHeight], shown: img.getBoundingClientRect().width}; })()")
    categories = await page.evaluate("Object.keys(categories)")
    return {"table": table, "image": image, "categories": categories}


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed (.ci/run installs it)")
def test_report_shows_method_table_and_plot_in_chromium(report, tmp_path):
    rendered = asyncio.run(open_in_chromium(report.as_uri(), tmp_path / "profile", render_table_and_plot))
    (report.parent / "report_methods_table.png").write_bytes(base64.b64decode(rendered["table"].pop("screenshot")))
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    table = rendered["table"]
    assert table["models"] == ["sft", *variants(config)]                            # one row per variant
    assert "AlpacaEval WR (%)" in table["header"] and "Gold accuracy (%)" in table["header"]
    assert table["height"] > 20 * len(table["models"]) and table["cell_width"] > 0
    assert rendered["image"]["natural"] == [720, 480]  # matplotlib's 6x4 inches at dpi 120
    assert rendered["image"]["shown"] > 100
    assert {"Tables", "Length bias"} <= set(rendered["categories"])
