"""The auditor console in a real headless browser: paste a token, walk a record's timeline, move
through its past states by version and by date, diff two versions, search the global log.

Needs Debian's ``chromium`` (``/usr/bin/chromium``; CI installs it) and the ``playwright``
package (dev dependency; its own browsers are never downloaded). Skips, saying which is missing,
elsewhere.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]

try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(
    sync_playwright is None or not CHROMIUM.exists(),
    reason=("browser test skipped: needs " + " and ".join(
        [m for m, ok in (("the 'playwright' package (uv sync --group dev)",
                          sync_playwright is not None),
                         ("Debian's chromium at /usr/bin/chromium (apt-get install chromium; "
                          "CI installs it)", CHROMIUM.exists())) if not ok])))

PROJECT = {
    "department": "ops", "name": "Console walk", "background": "b", "objectives": "o",
    "scope": "s", "requested_budget": "1000.00", "expected_revenue": "0.00",
    "start_date": "2026-01-05", "end_date": "2026-12-20",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def base_url(container: Any) -> Iterator[str]:
    """The service on a real socket (the browser cannot reach a TestClient)."""
    import uvicorn

    from service.main import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(container=container), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the service did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def page(base_url: str) -> Iterator[Page]:
    assert sync_playwright is not None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        context = browser.new_context(accept_downloads=True)
        pg = context.new_page()
        pg.set_default_timeout(10_000)
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        yield pg
        browser.close()
        assert errors == [], errors


def post(client: Any, path: str, who: dict[str, str], body: dict[str, Any] | None = None,
         expect_status: int = 200) -> dict[str, Any]:
    r = client.post(path, json=body or {}, headers=who)
    assert r.status_code == expect_status, r.text
    return r.json()


def test_an_auditor_walks_a_records_timeline_in_the_console(
        client: Any, token: Any, container: Any, base_url: str, page: Page) -> None:
    ann, mark, lena = token("ann", "member"), token("mark", "dept_manager"), \
        token("lena", "leadership")
    pid = post(client, "/projects", ann, PROJECT, 201)["id"]
    post(client, f"/projects/{pid}/submit", ann, {"comment": "ready"})
    # the date picker has whole seconds: pick the first whole second after the submit
    between = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    time.sleep(max(0.0, (between - datetime.now(UTC)).total_seconds()) + 0.05)
    post(client, f"/projects/{pid}/pass-preliminary-review", mark)
    post(client, f"/projects/{pid}/approve", lena, {"comment": "fits the annual plan"})
    assert client.post(f"/projects/{pid}/approve", json={}, headers=ann).status_code in (403,
                                                                                        409)
    auditor = token("audrey", "auditor")["Authorization"].removeprefix("Bearer ")

    page.goto(f"{base_url}/console")
    expect(page.locator("h1")).to_have_text("opsledger · auditor console")
    page.fill("#token", auditor)
    page.click("#use-token")
    expect(page.locator("#whoami")).to_contain_text("auditor")

    # the timeline: four events, who approved and why
    page.fill("#record-id", pid)
    page.click("#load-record")
    entries = page.locator("#timeline .entry")
    expect(entries).to_have_count(4)
    approved = entries.nth(3)
    expect(approved).to_contain_text("Approved")
    expect(approved).to_contain_text("Lena (leadership)")
    expect(approved).to_contain_text("comment: fits the annual plan")
    expect(approved.locator("tr.changed td.path", has_text="status")).to_have_count(1)
    expect(page.locator("#asof-caption")).to_contain_text("version 4")

    # clicking an entry shows the record as of that version
    entries.nth(0).click()
    expect(page.locator("#asof-caption")).to_contain_text("As of version 1")
    expect(page.locator("#asof-state")).to_contain_text('"status": "draft"')

    # the slider moves through versions
    page.locator("#asof-slider").evaluate(
        "(s) => { s.value = '2'; s.dispatchEvent(new Event('change')); }")
    expect(page.locator("#asof-state")).to_contain_text('"status": "submitted"')

    # the date picker: the state at a moment between submit and the review
    page.fill("#asof-at", between.strftime("%Y-%m-%dT%H:%M:%S"))
    page.click("#asof-at-go")
    expect(page.locator("#asof-caption")).to_contain_text("As of " + between.strftime(
        "%Y-%m-%dT%H:%M:%S"))
    expect(page.locator("#asof-state")).to_contain_text('"version": 2')

    # diff two versions
    page.fill("#diff-from", "1")
    page.fill("#diff-to", "4")
    page.click("#diff-form button")
    expect(page.locator("#diff-result")).to_contain_text("3 event(s)")
    expect(page.locator("#diff-result td.path", has_text="approver")).to_have_count(1)

    # the global log, filtered by record, with the refused approval; export works
    page.click("nav button[data-tab=log]")
    page.fill("#log-form input[name=record_id]", pid)
    page.click("#log-search")
    rows = page.locator("#log-table tbody tr")
    expect(rows).to_have_count(5)
    expect(page.locator("#log-table tr.log-refusal")).to_contain_text("refused")
    with page.expect_download() as download:
        page.click("#export-csv")
    assert Path(download.value.path()).read_text().count("\n") == 6  # header + 5 rows
    # a log row opens its record
    rows.nth(0).locator("a").click()
    expect(page.locator("#record-summary")).to_contain_text(pid)

    # verification: the tamper-evidence report when the service has it, else "not available"
    page.click("nav button[data-tab=integrity]")
    status = page.locator("#integrity-status")
    expect(status).to_contain_text("available")
    if "/integrity/verify" in (status.text_content() or ""):
        page.click("#integrity-run")
        expect(status).to_contain_text("verified")
        expect(page.locator("#integrity-result")).to_contain_text('"ok": true')

    # a member's token is refused with the API's reason
    page.fill("#token", token("ann", "member")["Authorization"].removeprefix("Bearer "))
    page.click("#use-token")
    page.click("nav button[data-tab=record]")
    page.click("#load-record")
    expect(page.locator("#error")).to_contain_text("403")
