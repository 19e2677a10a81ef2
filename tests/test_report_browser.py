"""The report as a reader sees it: rendered in headless Chromium (Debian's package).

Every image must have loaded (decoded, non-zero width), every link must resolve
(file links to existing files, anchors to existing ids), and a full-page
screenshot is saved to ``test-artifacts/report/report.png`` for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from conftest import REPO

ARTIFACTS = REPO / "test-artifacts" / "report"


def _browser() -> tuple[str, str]:
    """Paths of chromium and chromedriver; installs Debian's packages when root (as in CI)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True, timeout=600)
        for _ in range(2):  # dpkg --configure -a first: a machine left with an interrupted install
            subprocess.run(["dpkg", "--configure", "-a"], env=env, capture_output=True, timeout=900)
            apt = subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"], env=env,
                                 capture_output=True, text=True, timeout=900)
            if apt.returncode == 0:
                break
        else:
            pytest.fail(f"apt-get install chromium chromium-driver failed: {apt.stderr[-2000:]}")
        chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    message = "Debian's chromium and chromium-driver are needed (apt-get install chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = _browser()
    opts = Options()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    drv.set_page_load_timeout(120)
    yield drv
    drv.quit()


def test_report_images_load_and_links_resolve(tiny_run, browser):
    report = tiny_run / "report" / "report.html"
    browser.get(report.as_uri())
    assert "radsurv report" in browser.title
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(images) >= 8
    for alt, complete, width, height in images:
        assert complete and width > 100 and height > 100, f"image '{alt}' did not load"
    links = browser.execute_script("return Array.from(document.links).map(a => a.getAttribute('href'))")
    assert links
    for href in links:
        if href.startswith("#"):
            assert browser.execute_script("return document.getElementById(arguments[0]) !== null", href[1:]), href
            continue
        target = urlparse((report.parent / href).resolve().as_uri())
        assert Path(unquote(target.path)).is_file(), f"broken link {href}"
    headings = browser.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
    for section in ("Cohort", "Quality control", "Settings", "Features", "Robustness", "Model", "Kaplan-Meier",
                    "Checklist", "Software"):
        assert any(section in h for h in headings), f"section {section} missing: {headings}"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(int(height) + 100, 20000))
    shot = ARTIFACTS / "report.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 50_000
