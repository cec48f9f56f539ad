"""The control panel in a real browser (headless Chromium driven by Selenium) against a real live agent:
bundled avatar, lip model and renderer, held-out GRID speech as the microphone (file source), frames
through the real camera API (test backend). Screenshots land in tests/artefacts/."""
import json
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import vcam_fixtures
from conftest import GRID_HELDOUT, need

ARTEFACTS = Path(__file__).resolve().parent / "artefacts"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _wait(cond, timeout: float, what: str, every: float = 0.2, on_fail=None):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}" + (f": {on_fail()}" if on_fail else ""))


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    pytest.importorskip("fastapi")
    from hygie.core.live.config import AgentConfig
    from hygie.core.audio.capture import FileAudioSource
    from hygie.core.errors import PackageError
    from hygie.core.package.avatar import load_package
    from hygie.plugin.panel.controller import LiveController
    from hygie.plugin.panel.server import PanelServer

    try:
        load_package(None)
    except PackageError as e:
        pytest.skip(f"bundled avatar absent: {e}")
    audio = need(GRID_HELDOUT)
    base = AgentConfig(obs=False, virtual_mic=False, camera_backend=vcam_fixtures.BACKEND, report_every_s=30)
    ctl = LiveController(base, avatar_root=tmp_path_factory.mktemp("avatars"),
                         source_factory=lambda: FileAudioSource(str(audio), loop=True))
    srv = PanelServer(ctl, port=0, token="t" * 8 + "-test-token-0123456789abcdef").start()
    yield ctl, srv
    ctl.close()
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM or not DRIVER:
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="hygie_chromium_")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
              "--window-size=1100,900"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    drv.set_page_load_timeout(30)
    drv.set_script_timeout(30)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _http(url: str, method: str = "GET", headers: dict | None = None, data: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def test_go_live_from_the_page(panel, browser):
    from selenium.webdriver.common.by import By

    ctl, srv = panel
    ARTEFACTS.mkdir(exist_ok=True)
    browser.get(srv.url)
    assert browser.title == "Hygie Avatar"
    _wait(lambda: browser.find_element(By.ID, "s-avatar").get_attribute("value") == "default", 10, "avatar list")

    browser.find_element(By.ID, "startstop").click()  # start the live agent from the page
    _wait(lambda: ctl.phase == "running", 60, "the agent to run", on_fail=lambda: (ctl.phase, ctl.error, browser.find_element(By.ID, "error").text, browser.get_log("browser")))
    _wait(lambda: browser.find_element(By.ID, "phase").text == "running", 10, "the page to say running")

    # the preview shows the camera output and changes (idle loop + mouth)
    img = browser.find_element(By.ID, "preview")
    _wait(lambda: browser.execute_script("return arguments[0].naturalWidth", img) == 360, 20, "a preview image")
    first = img.screenshot_as_png
    _wait(lambda: img.screenshot_as_png != first, 10, "the preview to change")

    # meters update: fps near 30, a latency, CPU, and a history
    _wait(lambda: browser.find_element(By.ID, "m-fps").text not in ("—", "0.0"), 15, "the fps meter")
    _wait(lambda: browser.find_element(By.ID, "m-lat").text.endswith("ms"), 15, "the latency meter")
    fps = float(browser.find_element(By.ID, "m-fps").text)
    assert 20 <= fps <= 35
    _wait(lambda: len(ctl.history) >= 4 and browser.find_element(By.ID, "m-cpu").text.endswith("%"), 15, "CPU history")
    time.sleep(1.5)
    browser.save_screenshot(str(ARTEFACTS / "panel_full.png"))

    # avatar off from the page: the agent's state and its frames follow
    v0 = ctl.state.version
    browser.find_element(By.ID, "avatar").click()
    _wait(lambda: ctl.state.version > v0, 5, "the avatar state to change")
    assert ctl.state.on is False
    _wait(lambda: ctl.agent is not None and ctl.agent.counts["off"] > 10, 10, "frames sent as 'off'")
    _wait(lambda: browser.find_element(By.ID, "avatar").text == "Avatar OFF", 5, "the button to say OFF")
    browser.find_element(By.ID, "avatar").click()
    _wait(lambda: ctl.state.on is True, 5, "the avatar back on")

    # at OBS dock width: one column, nothing cut off horizontally
    browser.set_window_size(360, 1100)
    time.sleep(1.0)
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 360
    browser.save_screenshot(str(ARTEFACTS / "panel_dock_360.png"))

    browser.find_element(By.ID, "startstop").click()  # stop from the page
    _wait(lambda: ctl.phase == "stopped", 20, "the agent to stop")
    assert ctl.last_summary and ctl.last_summary["errors"] == 0 and ctl.last_summary["frames"] > 60
    browser.set_window_size(1100, 900)


def test_refused_without_token_and_from_another_origin(panel, browser):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    ctl, srv = panel
    base = f"http://127.0.0.1:{srv.port}"
    tok = {"X-Hygie-Token": srv.token}
    # no token, wrong token: refused, page and API alike
    assert _http(base + "/")[0] == 401
    assert _http(base + "/api/status?token=wrong")[0] == 401
    assert _http(base + "/api/avatar", "POST", {"Content-Type": "application/json"}, b'{"on": false}')[0] == 401
    # a state change by GET does not exist; with the token from the right origin it works
    assert _http(base + "/api/avatar?token=" + srv.token)[0] == 405
    code, _ = _http(base + "/api/avatar", "POST", {**tok, "Origin": base, "Content-Type": "application/json"},
                    b'{"on": true}')
    assert code == 200
    # another origin, even with the token: refused; a foreign Host (DNS rebinding): refused
    assert _http(base + "/api/stop", "POST", {**tok, "Origin": "http://evil.example"}, b"{}")[0] == 403
    assert _http(base + "/api/status", headers={**tok, "Host": "evil.example:80"})[0] == 403
    # a path from the browser is never trusted: unknown avatar names and traversal are refused
    code, body = _http(base + "/api/settings", "POST", {**tok, "Content-Type": "application/json"},
                       json.dumps({"avatar": "../../etc"}).encode())
    assert code == 400 and "choose one from the list" in body
    assert _http(base + "/static/..%2Fserver.py?token=" + srv.token)[0] == 404

    # the same from a real page on another origin: the browser sends its Origin, the panel refuses
    page = ("<html><body><script>fetch('%s/api/avatar', {method: 'POST', headers: {'X-Hygie-Token': '%s', "
            "'Content-Type': 'application/json'}, body: '{\"on\": false}'}).then(r => document.title = 'status ' + "
            "r.status).catch(e => document.title = 'blocked ' + e);</script></body></html>") % (base, srv.token)

    class Evil(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page.encode())

        def log_message(self, *a):
            pass

    evil = ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        v0 = ctl.state.version
        browser.get(f"http://127.0.0.1:{evil.server_address[1]}/")
        _wait(lambda: browser.title.startswith(("status", "blocked")), 15, "the cross-origin fetch to finish")
        assert ctl.state.on is True and ctl.state.version == v0  # nothing changed
        # without the token the page itself is refused in the browser
        browser.get(base + "/")
        assert "missing or wrong token" in browser.page_source
    finally:
        evil.shutdown()


def test_enroll_runs_as_a_subprocess_and_a_crash_there_spares_the_panel(panel, browser, tmp_path):
    """Uploads land in the panel's temp folder; a failing `hygie enroll` is reported, the panel keeps serving."""
    ctl, srv = panel
    boundary = "hygieboundary"
    bad = b"this is not a video"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nbroken\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"train\"\r\n\r\nfalse\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"../../evil.mp4\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n").encode() + bad + f"\r\n--{boundary}--\r\n".encode()
    code, text = _http(f"http://127.0.0.1:{srv.port}/api/enroll", "POST",
                       {"X-Hygie-Token": srv.token, "Content-Type": f"multipart/form-data; boundary={boundary}"},
                       body)
    assert code == 200, text
    job = json.loads(text)["job"]
    _wait(lambda: ctl.jobs[job["id"]].status != "running", 60, "the enroll job to end")
    j = ctl.jobs[job["id"]]
    assert j.status == "failed" and j.returncode != 0 and j.log  # the failure and its message reach the page
    assert not list(ctl.upload_dir.iterdir())  # the upload is removed; it was never written outside
    assert not (ctl.avatar_root / "broken").exists()
    assert _http(f"http://127.0.0.1:{srv.port}/api/status?token={srv.token}")[0] == 200
