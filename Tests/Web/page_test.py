"""The web page of `umsd serve` in a real browser (Chromium through Selenium), against a running daemon.

Run by Tests/Web/run, which starts the daemon in the virtual board (Tests/Web/guest.sh) and forwards its HTTP port
to the host. First the daemon listens on loopback behind a relay (no credentials, EventSource), then it is restarted
on 0.0.0.0, where the page loads freely and has to ask for the token (see open_page).
Prints one line per check and ends with "# web: N passed, M failed".
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok - {name}", flush=True)
    else:
        failed += 1
        print(f"not ok - {name}" + (f" ({detail})" if detail else ""), flush=True)
    return ok


def wait(condition, timeout=20.0, step=0.1):
    """The first truthy value of condition() within timeout seconds, else None; exceptions count as falsy."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
            if value:
                return value
        except WebDriverException:
            pass
        if time.monotonic() > deadline:
            return None
        time.sleep(step)


class Board:
    """Requests to Tests/Web/guest.sh inside the VM, one file each way in the shared folder."""

    def __init__(self, share):
        self.share = share

    def ask(self, name, argument="", timeout=60.0):
        result = os.path.join(self.share, name + ".result")
        if os.path.exists(result):
            os.remove(result)
        with open(os.path.join(self.share, name + ".request.tmp"), "w") as f:
            f.write(argument)
        os.rename(os.path.join(self.share, name + ".request.tmp"), os.path.join(self.share, name + ".request"))
        if not wait(lambda: os.path.exists(result), timeout, 0.2):
            return None
        with open(result) as f:
            return f.read()


class API:
    """Direct calls to the daemon, for what the page does not show (and to cross-check what it does)."""

    def __init__(self, url, token):
        self.url = url
        self.token = token

    def call(self, method, path, token=True):
        request = urllib.request.Request(self.url + path, method=method)
        if token and self.token:
            request.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def state(self):
        status, _, body = self.call("GET", "/api/state")
        return json.loads(body) if status == 200 else None


def browser(artifacts):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,900", "--lang=en-US"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service("/usr/bin/chromedriver", log_output=os.path.join(artifacts, "chromedriver.log"))
    return webdriver.Chrome(service=service, options=options)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--share", required=True, help="the folder shared with the board")
    parser.add_argument("--iso", required=True, help="the ISO to upload; it holds hello.txt")
    parser.add_argument("--hello", required=True, help="the text of hello.txt")
    parser.add_argument("--big", required=True, help="a big file to start uploading and abort")
    args = parser.parse_args()
    share = args.share
    api = API(args.url, None)
    board = Board(share)

    try:
        driver = browser(share)
    except Exception as e:
        check("Chromium starts under chromedriver", False, f"{type(e).__name__}: {e}")
        print(f"# web: {passed} passed, {failed} failed", flush=True)
        return 1
    try:
        without_credentials(driver, api, board, args, share)
        with_token(driver, api, board)
        with_basic_auth(driver, api, board)
    except Exception as e:  # a broken step must not hide the count: it fails, loudly
        check("the browser steps ran to the end", False, f"{type(e).__name__}: {e}")
        try:
            driver.save_screenshot(os.path.join(share, "failure.png"))
        except WebDriverException:
            pass
    finally:
        try:
            errors = [e for e in driver.get_log("browser") if e.get("source") == "javascript"]
            check("no JavaScript errors in the page", not errors, "; ".join(e["message"] for e in errors)[:600])
        finally:
            driver.quit()
    print(f"# web: {passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def text_of(driver, css):
    return js(driver, "const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : null;", css)


def open_page(driver, url):
    """Opens the page as a browser does when only a bearer token is configured: `/` loads without credentials, and
    everything after that is the page's own doing: its API calls get 401 with a Bearer challenge, it asks for the
    token, keeps it in localStorage and sends it."""
    driver.get(url + "/")
    js(driver, "localStorage.clear();")
    driver.refresh()


def click(driver, css):
    """Clicks what css finds; the lists redraw when an event comes, so a found element may be replaced at once."""
    for attempt in range(20):
        try:
            driver.find_element(By.CSS_SELECTOR, css).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.1)
    raise RuntimeError(f"{css} kept being redrawn")


def choose(driver, select_id, value):
    for attempt in range(20):
        try:
            Select(driver.find_element(By.ID, select_id)).select_by_value(value)
            return
        except StaleElementReferenceException:
            time.sleep(0.1)
    raise RuntimeError(f"#{select_id} kept being redrawn")


def upload_samples(driver):
    return js(driver, "return window.__samples || [];")


def without_credentials(driver, api, board, args, share):
    """The daemon on loopback behind a relay, as behind an appliance's reverse proxy: no credentials."""
    iso_name = os.path.basename(args.iso)
    big_name = os.path.basename(args.big)
    status, headers, html = api.call("GET", "/")
    check("GET / serves the page", status == 200 and b"<title>umsd" in html
          and headers.get("Content-Type", "").startswith("text/html"), f"{status}")
    driver.get(args.url + "/")
    check("the drives appear", wait(lambda: driver.find_elements(By.CSS_SELECTOR, "article[data-lun='1']"), 30))
    check("the event stream is live", wait(lambda: text_of(driver, "#live") == "Live", 20), text_of(driver, "#live"))
    check("without a token it is an EventSource", js(driver, "return stream instanceof EventSource"))
    check("no token was asked for", not js(driver, "return document.getElementById('auth-dialog').open"))
    check("no error is shown", js(driver, "return document.getElementById('error').hidden"), text_of(driver, "#error-text"))

    # Disconnected first, so that connecting later is a visible change.
    if text_of(driver, "#connect") == "Disconnect":
        click(driver, "#connect")
    check("disconnect: the page says the host is disconnected",
          wait(lambda: text_of(driver, "#usb-text") == "Host: disconnected", 20), text_of(driver, "#usb-text"))
    check("the daemon agrees", (api.state() or {}).get("connected") is False)

    # Upload through the file input; a MutationObserver records every progress text the page shows.
    js(driver, """
        window.__samples = [];
        new MutationObserver(() => {
          for (const li of document.querySelectorAll('#uploads li[data-upload]')) {
            const p = li.querySelector('progress');
            window.__samples.push([li.dataset.upload, p.value, p.max, li.textContent]);
          }
        }).observe(document.getElementById('uploads'), {subtree: true, childList: true, characterData: true, attributes: true});
    """)
    driver.find_element(By.ID, "file").send_keys(args.iso)
    row = f"#images li[data-image='{iso_name}'][data-complete='true']"
    check("the uploaded ISO appears in the image list", wait(lambda: driver.find_elements(By.CSS_SELECTOR, row), 120))
    samples = [s for s in upload_samples(driver) if s[0] == iso_name]
    moving = sorted({s[1] for s in samples if 0 < s[1] < s[2]})
    check("the progress bar moved (values between 0 and the total)", len(moving) >= 2,
          f"{len(samples)} samples, values {moving[:5]}")
    last = samples[-1][3] if samples else ""
    check("the progress text shows bytes, percent and speed", "MiB" in last and "%" in last and "/s" in last, last)
    check("the finished upload leaves the upload list",
          wait(lambda: not driver.find_elements(By.CSS_SELECTOR, "#uploads li"), 10))
    size_text = text_of(driver, row + " .meta span")
    expected = os.path.getsize(args.iso) / 1048576
    check("its size is shown in MiB", size_text == f"{expected:.1f} MiB" or size_text == f"{expected:.2f} MiB",
          f"{size_text!r}, file {expected:.2f} MiB")

    got = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const a = document.querySelector(arguments[0]);
        fetch(a.href).then((r) => r.blob()).then((b) => done([a.href, b.size]), (e) => done([a.href, String(e)]));
    """, row + " a[download]")
    check("its Download link fetches the whole image", got[1] == os.path.getsize(args.iso), f"{got}")

    # Into drive 0, a CD drive.
    drive0 = "article[data-lun='0']"
    check("drive 0 is a CD/DVD drive", text_of(driver, drive0 + " [data-role=kind]") == "CD/DVD")
    choose(driver, "drive-0-image", iso_name)
    click(driver, drive0 + " button[data-action=load]")
    check("the ISO is shown in drive 0", wait(lambda: text_of(driver, drive0 + " [data-role=image]") == iso_name, 20),
          text_of(driver, drive0 + " [data-role=image]"))
    check("the image list says it is in drive 0",
          wait(lambda: "in drive 0" in (text_of(driver, row) or ""), 20), text_of(driver, row))

    click(driver, "#connect")
    check("connect: the page says the host is connected",
          wait(lambda: text_of(driver, "#usb-text") == "Host: connected", 20), text_of(driver, "#usb-text"))
    answer = board.ask("mount-cd", "hello.txt", 90) or ""
    lines = answer.splitlines()
    check("the host sees the disc as /dev/srX and reads the known file from it",
          len(lines) >= 2 and lines[0].startswith("/dev/sr") and lines[1] == args.hello, answer.strip()[:300])
    # Mounted, the host's sr driver locks the tray: a change the page only learns from the event stream.
    check("the page shows the host's lock on drive 0 (event stream)",
          wait(lambda: "Locked by host" in (text_of(driver, drive0) or ""), 20), text_of(driver, drive0))

    # The whole page at desktop width, then a phone's first screen.
    height = min(2000, js(driver, "return document.documentElement.scrollHeight"))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": False})
    time.sleep(0.5)
    driver.save_screenshot(os.path.join(share, "desktop.png"))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 360, "height": 740, "deviceScaleFactor": 2, "mobile": True})
    time.sleep(0.5)
    width = js(driver, "return document.documentElement.scrollWidth")
    check("at 360 px nothing sticks out sideways", width <= 360, f"scrollWidth {width}")
    driver.save_screenshot(os.path.join(share, "phone.png"))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    check("the host unmounts the disc", (board.ask("unmount-cd", "", 30) or "").strip() == "unmounted")
    check("the page shows the lock gone (event stream)",
          wait(lambda: "Locked by host" not in (text_of(driver, drive0) or "x"), 20), text_of(driver, drive0))

    # Abort a big upload half-way: nothing may be left, neither in the list nor on the disk nor as a transfer.
    driver.find_element(By.ID, "file").send_keys(args.big)
    started = wait(lambda: [s for s in upload_samples(driver) if s[0] == big_name and s[1] > 0], 60)
    check("the big upload starts", started)
    click(driver, f"#uploads li[data-upload='{big_name}'] button[data-action=abort]")
    sent = max((s[1] for s in upload_samples(driver) if s[0] == big_name), default=0)
    total = os.path.getsize(args.big)
    check("it was aborted part-way", 0 < sent < total, f"{sent} of {total}")
    check("the aborted upload leaves the upload list",
          wait(lambda: not driver.find_elements(By.CSS_SELECTOR, "#uploads li"), 10))
    check("the page says it was aborted", wait(lambda: "aborted" in (text_of(driver, "#notice-text") or ""), 10))
    check("the daemon has no transfer left", wait(lambda: (api.state() or {}).get("transfers") == [], 20),
          json.dumps((api.state() or {}).get("transfers"))[:300])
    check("the page lists no trace of it", wait(
        lambda: not driver.find_elements(By.CSS_SELECTOR, f"#images li[data-image='{big_name}']")
        and not driver.find_elements(By.CSS_SELECTOR, "#images li[data-complete='false']"), 10))
    files = board.ask("images", "", 30)
    check("the images folder holds only the ISO (no temporary file)", files is not None
          and files.split() == [f"./{iso_name}"], (files or "no answer").strip()[:300])

    # Another client's upload: an incomplete image with its progress, and an Abort button.
    other = subprocess.Popen(["curl", "-sS", "-H", "Expect:", "-o", "/dev/null", "--limit-rate", "1M", "-T", args.big,
                              f"{args.url}/api/images/other.img"], stderr=subprocess.DEVNULL)
    try:
        other_row = "#images li[data-image='other.img'][data-complete='false']"
        check("another client's upload shows as an incomplete image",
              wait(lambda: driver.find_elements(By.CSS_SELECTOR, other_row), 30))
        values = []

        def progressing():
            values.append(js(driver, "const p = document.querySelector(arguments[0]); return p ? p.value : 0;",
                             other_row + " progress"))
            return len({v for v in values if v > 0}) >= 2
        check("with its progress moving (transfer events)", wait(progressing, 30, 0.3), f"{values[-5:]}")
        click(driver, other_row + " button[data-action=abort]")
        check("Abort there ends the other client's request", wait(lambda: other.poll() is not None, 20))
        check("and the image leaves the page",
              wait(lambda: not driver.find_elements(By.CSS_SELECTOR, "#images li[data-image='other.img']"), 20))
        check("and the daemon has no transfer left", wait(lambda: (api.state() or {}).get("transfers") == [], 20))
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()

    # Drag and drop: a file dropped on the zone (made in the page, as Selenium cannot drag from the desktop).
    js(driver, """
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(1 << 20).fill(7)], "dropped.img"));
        const zone = document.getElementById('drop');
        zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
        window.__over = zone.classList.contains('over');
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    """)
    check("dragging over the zone highlights it", js(driver, "return window.__over"))
    dropped = "#images li[data-image='dropped.img'][data-complete='true']"
    check("a dropped file is uploaded", wait(lambda: driver.find_elements(By.CSS_SELECTOR, dropped), 30),
          text_of(driver, "#error-text"))
    check("with its size", (text_of(driver, dropped + " .meta span") or "") == "1.00 MiB", text_of(driver, dropped))
    click(driver, dropped + " button[data-action=delete]")
    wait(lambda: js(driver, "return document.getElementById('confirm-dialog').open"), 10)
    click(driver, "#confirm-cancel")
    check("cancel in the confirmation keeps it", not wait(
        lambda: not driver.find_elements(By.CSS_SELECTOR, dropped), 2))
    click(driver, dropped + " button[data-action=delete]")
    wait(lambda: js(driver, "return document.getElementById('confirm-dialog').open"), 10)
    click(driver, "#confirm-ok")
    check("confirmed, it is deleted", wait(lambda: not driver.find_elements(By.CSS_SELECTOR, dropped), 20))

    # An error is the server's own sentence.
    click(driver, row + " button[data-action=delete]")
    check("delete asks first", wait(lambda: js(driver, "return document.getElementById('confirm-dialog').open"), 10))
    click(driver, "#confirm-ok")
    check("deleting the image in drive 0 shows the server's sentence",
          wait(lambda: not js(driver, "return document.getElementById('error').hidden")
               and "drive 0" in (text_of(driver, "#error-text") or ""), 10), text_of(driver, "#error-text"))
    check("and the image is still there", driver.find_elements(By.CSS_SELECTOR, row))

    click(driver, drive0 + " button[data-action=eject]")
    check("eject: drive 0 shows no image", wait(lambda: text_of(driver, drive0 + " [data-role=image]") == "No image", 20),
          text_of(driver, drive0 + " [data-role=image]"))
    check("and the image list no longer has it in a drive",
          wait(lambda: "in drive" not in (text_of(driver, row) or "in drive"), 20), text_of(driver, row))
    click(driver, row + " button[data-action=delete]")
    wait(lambda: js(driver, "return document.getElementById('confirm-dialog').open"), 10)
    click(driver, "#confirm-ok")
    check("now the delete goes through", wait(lambda: not driver.find_elements(By.CSS_SELECTOR, row), 20))

    # A flash image from the form, loaded writable into the flash drive.
    driver.find_element(By.ID, "create-name").send_keys("web-flash.img")
    driver.find_element(By.ID, "create-size").send_keys("16M")
    Select(driver.find_element(By.ID, "create-fs")).select_by_value("vfat")
    click(driver, "#create-button")
    flash = "#images li[data-image='web-flash.img'][data-complete='true']"
    check("create: the flash image appears", wait(lambda: driver.find_elements(By.CSS_SELECTOR, flash), 60),
          text_of(driver, "#error-text"))
    check("with its size", (text_of(driver, flash + " .meta span") or "") == "16.0 MiB", text_of(driver, flash))
    drive1 = "article[data-lun='1']"
    choose(driver, "drive-1-image", "web-flash.img")
    click(driver, drive1 + " button[data-action=load]")
    check("it loads into drive 1", wait(lambda: text_of(driver, drive1 + " [data-role=image]") == "web-flash.img", 20))
    check("drive 1 is writable", "Writable" in (text_of(driver, drive1 + " .chips") or ""), text_of(driver, drive1))
    click(driver, drive1 + " button[data-action=writable]")
    check("toggle writable: drive 1 becomes read-only",
          wait(lambda: "Read-only" in (text_of(driver, drive1 + " .chips") or ""), 20), text_of(driver, drive1))
    drives = (api.state() or {}).get("drives") or [{}, {}]
    check("the daemon agrees", drives[1].get("writable") is False and drives[1].get("image") == "web-flash.img",
          json.dumps(drives[1])[:300])

    click(driver, drive1 + " button[data-action=kind]")
    check("switch drive 1 to CD/DVD", wait(lambda: text_of(driver, drive1 + " [data-role=kind]") == "CD/DVD", 30),
          text_of(driver, drive1))
    check("the daemon agrees", ((api.state() or {}).get("drives") or [{}, {}])[1].get("cdrom") is True)
    click(driver, drive1 + " button[data-action=kind]")
    check("and back to flash", wait(lambda: text_of(driver, drive1 + " [data-role=kind]") == "Flash", 30),
          text_of(driver, drive1))
    click(driver, drive1 + " button[data-action=force-eject]")
    check("force eject: drive 1 shows no image",
          wait(lambda: text_of(driver, drive1 + " [data-role=image]") == "No image", 20), text_of(driver, drive1))
    check("no error is shown", js(driver, "return document.getElementById('error').hidden"), text_of(driver, "#error-text"))

    # Keyboard: the connect button is reachable with Tab and works with Enter.
    # A click on the heading puts the keyboard's starting point at the top of the page.
    js(driver, "window.scrollTo(0, 0);")
    ActionChains(driver).click(driver.find_element(By.TAG_NAME, "h1")).perform()
    for _ in range(5):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        if js(driver, "return document.activeElement.id") == "connect":
            break
    check("Tab reaches the connect button", js(driver, "return document.activeElement.id") == "connect")
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    check("Enter on it disconnects", wait(lambda: text_of(driver, "#usb-text") == "Host: disconnected", 20),
          text_of(driver, "#usb-text"))


def with_token(driver, api, board):
    """The daemon restarted on 0.0.0.0, where every call needs the token: the page asks for it."""
    answer = board.ask("token", "", 120) or ""
    if not check("the daemon restarts listening beyond loopback", answer.strip() == "ok", answer.strip()[:600]):
        return
    with open(os.path.join(board.share, "token")) as f:
        api.token = f.read().strip()
    status, headers, _ = api.call("GET", "/api/state", token=False)
    check("now the API needs credentials (401 with a Bearer challenge)",
          status == 401 and headers.get("WWW-Authenticate", "").lower().startswith("bearer"), f"{status} {headers}")
    status, _, html = api.call("GET", "/", token=False)
    check("the page itself loads without the token", status == 200 and b"<title>umsd" in html, f"{status}")
    open_page(driver, api.url)
    check("the page asks for a token", wait(lambda: js(driver, "return document.getElementById('auth-dialog').open"), 20))
    driver.find_element(By.ID, "auth-token").send_keys("wrong")
    click(driver, "#auth-submit")
    check("a wrong token is refused and asked again", wait(lambda: js(
        driver, "return document.getElementById('auth-dialog').open && !document.getElementById('auth-wrong').hidden"), 20))
    driver.find_element(By.ID, "auth-token").send_keys(api.token)
    click(driver, "#auth-submit")
    check("with the token the drives appear", wait(lambda: driver.find_elements(By.CSS_SELECTOR, "article[data-lun='1']"), 20))
    check("the token is kept in localStorage", js(driver, "return localStorage.getItem('umsd.token')") == api.token)
    check("the event stream is live, read with fetch() as it needs the token",
          wait(lambda: text_of(driver, "#live") == "Live" and not js(driver, "return stream instanceof EventSource"), 20),
          text_of(driver, "#live"))
    if text_of(driver, "#connect") == "Connect":
        click(driver, "#connect")
    check("connect with the token", wait(lambda: text_of(driver, "#usb-text") == "Host: connected", 20),
          text_of(driver, "#usb-text"))
    answer = board.ask("cli-disconnect", "", 30) or ""
    check("umsd disconnect on the board", answer.strip() == "disconnected", answer.strip()[:300])
    check("the page learns it from the event stream", wait(lambda: text_of(driver, "#usb-text") == "Host: disconnected", 20),
          text_of(driver, "#usb-text"))
    check("no error is shown", js(driver, "return document.getElementById('error').hidden"), text_of(driver, "#error-text"))



def with_basic_auth(driver, api, board):
    """Basic auth as well: the browser itself asks for user and password and sends them on every request."""
    # Forget the token of the last phase (while a document of the daemon's origin is open), so that only the
    # browser's own credentials remain.
    js(driver, "localStorage.clear();")
    password = "pw-" + os.urandom(8).hex()
    with open(os.path.join(board.share, "password"), "w") as f:
        f.write(password + "\n")
    js(driver, """
        window.__live = [];
        new MutationObserver(() => window.__live.push(document.getElementById('live').textContent.trim()))
          .observe(document.getElementById('live'), {subtree: true, childList: true, characterData: true});
    """)
    answer = board.ask("basic", "operator", 120) or ""
    if not check("the daemon restarts with basic auth", answer.strip() == "ok", answer.strip()[:600]):
        return
    # The open page (with its token) lost its stream when the daemon stopped, and finds it again by itself.
    check("the open page noticed the lost stream and reconnected",
          wait(lambda: "Reconnecting…" in js(driver, "return window.__live")
               and text_of(driver, "#live") == "Live", 40), f'{js(driver, "return window.__live")}')
    status, headers, _ = api.call("GET", "/", token=False)
    check("the page now gets 401 with a Basic challenge (browsers prompt)",
          status == 401 and headers.get("WWW-Authenticate", "").lower().startswith("basic"), f"{status} {headers}")
    host = api.url.split("://", 1)[1]
    driver.get(f"http://operator:{password}@{host}/")
    check("with user and password the drives appear",
          wait(lambda: driver.find_elements(By.CSS_SELECTOR, "article[data-lun='1']"), 30))
    check("the event stream is live, an EventSource with the browser's credentials",
          wait(lambda: text_of(driver, "#live") == "Live" and js(driver, "return stream instanceof EventSource"), 20),
          text_of(driver, "#live"))
    check("no token is asked for", not js(driver, "return document.getElementById('auth-dialog').open"))
    if text_of(driver, "#connect") == "Connect":
        click(driver, "#connect")
    check("connect", wait(lambda: text_of(driver, "#usb-text") == "Host: connected", 20), text_of(driver, "#usb-text"))
    check("the daemon agrees", (api.state() or {}).get("connected") is True)
    check("no error is shown", js(driver, "return document.getElementById('error').hidden"), text_of(driver, "#error-text"))


if __name__ == "__main__":
    sys.exit(main())
