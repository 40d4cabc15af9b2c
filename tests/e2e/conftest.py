"""Browser tests: the console served for real (uvicorn on loopback, the API tests' small bank) and driven by
Playwright in Debian's ``chromium`` (``/usr/bin/chromium``; ``.ci/run`` installs it with CJK fonts). Without
the browser the tests are skipped, except in CI (``CI`` set), where its absence is an error.

Screenshots go to ``OMNIBANK_E2E_OUT`` (default ``test-output/e2e`` in the checkout)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from omnibank.config import Settings
from omnibank.users import service as users
from tests.api.bank import PASSWORD, Bank, build_bank
from tests.api.server import serve

CHROMIUM = os.environ.get("OMNIBANK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
OUT = Path(os.environ.get("OMNIBANK_E2E_OUT") or Path(__file__).resolve().parents[2] / "test-output" / "e2e")
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
# as the machine's browser needs it: no sandbox as root, no GPU, no calls home (the network is closed)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


def follow(page: Any, selector: str) -> None:
    """Click something that loads a new page and wait until that page has loaded: a bare ``click`` returns
    before the navigation starts, so the next read could still see (or lose, mid-way) the old page."""
    with page.expect_navigation():
        page.click(selector)


def _have_browser() -> bool:
    return Path(CHROMIUM).exists()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not _have_browser():
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium at {CHROMIUM}: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium fonts-wqy-microhei)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Site:
    url: str
    bank: Bank
    settings: Settings
    browser: Any

    def page(self, user: str | None = None, *, lang: str = "zh", width: int = 1280, height: int = 860) -> Any:
        """A new browser context (its own cookies) in ``lang``, signed in as ``user`` through the form."""
        context = self.browser.new_context(viewport={"width": width, "height": height},
                                           locale="zh-CN" if lang == "zh" else "en-US")  # fmt: skip
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        if user is not None:
            page.goto(f"{self.url}/console/signin")
            page.fill("#username", user)
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r".*/console$"))
        return page

    def shot(self, page: Any, name: str) -> Path:
        """A full-page screenshot under the output folder."""
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def axe(self, page: Any) -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the page (WCAG 2 A/AA rules)."""
        # through the DevTools protocol: the page's content security policy rightly refuses inline scripts
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;true")
        result = page.evaluate(
            "async () => (await axe.run(document, {runOnly: {type: 'tag', values: "
            "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})).violations"
            ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"
        )
        return [v for v in result if v["impact"] in ("serious", "critical")]

    errors: list[str] = None  # type: ignore[assignment]  # JavaScript errors seen on any page

    def __post_init__(self) -> None:
        self.errors = []


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def site(env: Any, tmp_path: Path, browser: Any) -> Iterator[Site]:
    settings = env.settings.model_copy(update={"api_login_per_minute": 1000})
    bank = build_bank(settings, tmp_path / "bank")
    with serve(bank.client.app) as url:
        yield Site(url=url, bank=bank, settings=settings, browser=browser)


@dataclass
class DemoSite:
    """A small demo bank (``omnibank demo --customers 300``: its year of campaigns, journeys, leads and
    contact) served by ``omnibank serve`` in a process of its own; the demo's accounts with their
    passwords."""

    url: str
    home: Path
    passwords: dict[str, str]
    browser: Any
    errors: list[str]

    def page(self, user: str | None = None, *, lang: str = "zh", width: int = 1280, height: int = 860) -> Any:
        context = self.browser.new_context(viewport={"width": width, "height": height},
                                           locale="zh-CN" if lang == "zh" else "en-US")  # fmt: skip
        context.set_default_timeout(20_000)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        if user is not None:
            page.goto(f"{self.url}/console/signin")
            page.fill("#username", user)
            page.fill("#password", self.passwords[user])
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r".*/console$"))
        return page


@pytest.fixture(scope="session")
def demo_site(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSite]:
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.api.server import free_port

    home = tmp_path_factory.mktemp("demo") / "home"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("OMNIBANK_") or k.startswith("OMNIBANK_TEST")
    }
    env.pop("OMNIBANK_TEST_DATABASE_URL", None)  # the embedded store, whatever the pass
    env["OMNIBANK_HOME"] = str(home)
    env["COLUMNS"] = "200"
    made = subprocess.run([sys.executable, "-m", "omnibank", "demo", "--customers", "300"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]
    passwords = dict(re.findall(r"│ (demo_\w+)\s+│ \w+\s+│ (Demo-\S+)\s+│", made.stdout))
    assert len(passwords) == 6, made.stdout[-2000:]
    port = free_port()
    serve_cmd = [sys.executable, "-m", "omnibank", "serve", "--port", str(port), "--no-access-log"]
    server = subprocess.Popen(serve_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("the demo server did not start: " + (server.stderr.read() if server.stderr
                                   else b"").decode()[-2000:]) from None  # fmt: skip
            time.sleep(0.2)
    try:
        yield DemoSite(url=url, home=home, passwords=passwords, browser=browser, errors=[])
    finally:
        server.terminate()
        server.wait(20)
