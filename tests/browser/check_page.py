#!/usr/bin/python3
"""The tape page in a real browser: headless Chromium, driven by Selenium.

    check_page.py DUMP_PROGRAM OUT_DIR

Runs DUMP_PROGRAM OUT_DIR (tests/browser/html_dump.cpp: the pages and, next to each, what
ReverseSweep gives at each step), opens OUT_DIR/rnn.html and presses "next" through the forward pass
and the whole reverse sweep, checking from the DOM at each step that the highlighted entry, the rule
text and the adjoint shown are the sweep's; then the leaves' .grad at the end, #step=N opening at N,
a click on a node and on a leaf (gradcheck's verdict), the page's size (< 300 KB), and the 200-step
LSTM page loading (its load time is printed, not asserted: tests do not time). Screenshots of the
start, the middle and the end of the sweep go to OUT_DIR/tape_{start,middle,end}.png.

Exits 77 (CTest's SKIP_RETURN_CODE) when python3-selenium, chromium or chromium-driver is missing.
"""
import json
import os
import shutil
import subprocess
import sys
import time

SKIP = 77


def skip(why):
    print(f"SKIP: {why} (apt-get install chromium chromium-driver python3-selenium; "
          "scripts/test.sh installs them)")
    sys.exit(SKIP)


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    dump_program, out = sys.argv[1], os.path.abspath(sys.argv[2])
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        skip("python3-selenium is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not chromium or not os.path.exists(driver_path):
        skip("chromium or chromium-driver is not installed")

    os.makedirs(out, exist_ok=True)
    subprocess.run([dump_program, out], check=True)
    rnn = json.load(open(os.path.join(out, "rnn.json"), encoding="utf-8"))
    lstm = json.load(open(os.path.join(out, "lstm200.json"), encoding="utf-8"))

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1500,950", "--force-device-scale-factor=1"):
        opts.add_argument(a)
    browser = webdriver.Chrome(service=Service(driver_path), options=opts)
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)
            print("FAIL:", what)

    def url(name, step=None):
        return "file://" + os.path.join(out, name) + (f"#step={step}" if step is not None else "")

    def open_page(name, step=None):
        browser.get("about:blank")  # a new document even when only the #step differs
        browser.get(url(name, step))
        WebDriverWait(browser, 60).until(lambda b: b.execute_script("return document.body.dataset.ready === '1'"))

    text = lambda id_: browser.find_element(By.ID, id_).text
    current = lambda: [g.get_attribute("id") for g in browser.find_elements(By.CSS_SELECTOR, "g.node.current")]

    try:
        # ---- the 3-step RNN, through the forward pass and the whole sweep ----
        size = os.path.getsize(os.path.join(out, "rnn.html"))
        print(f"rnn.html: {size} bytes")
        check(size < 300 * 1024, f"the 3-step RNN page is {size} bytes, not under 300 KB")
        open_page("rnn.html")
        n, steps = rnn["entries"], rnn["steps"]
        total = n + len(steps)
        check(int(text("step-total")) == total, f"step-total {text('step-total')} != {n} entries + {len(steps)} steps")
        check(text("step-num") == "0" and current() == [], "the page opens at step 0 with nothing highlighted")
        browser.save_screenshot(os.path.join(out, "tape_start.png"))
        body = browser.find_element(By.TAG_NAME, "body")
        for s in range(1, n + 1):  # the forward pass, with the arrow key
            body.send_keys(Keys.ARROW_RIGHT)
            check(text("step-num") == str(s), f"step {s}: step-num {text('step-num')}")
            check(current() == [f"n{s - 1}"], f"forward step {s}: highlighted {current()}, not n{s - 1}")
        nxt = browser.find_element(By.ID, "next")
        middle = n + len(steps) // 2
        for r, want in enumerate(steps):  # the reverse sweep, with the button
            nxt.click()
            s = n + 1 + r
            where = f"reverse step {r + 1} (page step {s}, entry #{want['entry']})"
            check(current() == [f"n{want['entry']}"], f"{where}: highlighted {current()}")
            check(browser.find_element(By.ID, "current").get_attribute("data-entry") == str(want["entry"]),
                  f"{where}: #current names another entry")
            check(text("current") == want["headline"], f"{where}: headline {text('current')!r} != {want['headline']!r}")
            check(text("rule") == want["rule"], f"{where}: rule {text('rule')!r} != {want['rule']!r}")
            check(text("dy") == want["adjoint"], f"{where}: dy {text('dy')!r} != {want['adjoint']!r}")
            check(browser.execute_script("return location.hash") == f"#step={s}", f"{where}: address not #step={s}")
            if s == middle:
                browser.save_screenshot(os.path.join(out, "tape_middle.png"))
        check(text("step-num") == str(total), "the last press reaches the last step")
        nxt.click()  # past the end: stays
        check(text("step-num") == str(total), "next at the end stays at the end")
        for name, want in rnn["grads"].items():  # the leaves' .grad, filled up: equal to backward()'s
            row = browser.find_element(By.XPATH, f"//table[@id='leaves']//tr[td[1]='{name}']")
            got = row.find_elements(By.TAG_NAME, "td")[1].text
            check(got == want, f"leaf {name}: .grad shown {got!r}, backward gives {want!r}")
        # A click on an entry shows its value and adjoint; on a leaf, gradcheck's verdict.
        browser.find_element(By.CSS_SELECTOR, "#n4 rect").click()
        check("value" in text("details") and "adjoint" in text("details") and "the sweep has not" not in text("details"),
              f"details of #4: {text('details')!r}")
        w_h = browser.execute_script("return D.leaves.findIndex((l) => l.label === 'W_h')")
        browser.find_element(By.CSS_SELECTOR, f"#l{w_h} rect").click()
        check("gradcheck: ok" in text("details"), f"details of W_h lack gradcheck's verdict: {text('details')!r}")
        browser.save_screenshot(os.path.join(out, "tape_end.png"))

        # ---- #step=N opens at N ----
        for s in (7, n + 3):
            open_page("rnn.html", s)
            check(text("step-num") == str(s), f"#step={s} opened at {text('step-num')}")
            want = f"n{s - 1}" if s <= n else f"n{steps[s - n - 1]['entry']}"
            check(current() == [want], f"#step={s}: highlighted {current()}, not {want}")
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.ARROW_LEFT)
        check(text("step-num") == str(n + 2), "← steps back")

        # ---- the 200-step LSTM: loads, steps, and how long it took (printed, not asserted) ----
        size = os.path.getsize(os.path.join(out, "lstm200.html"))
        t0 = time.perf_counter()
        open_page("lstm200.html")
        wall = time.perf_counter() - t0
        ready = browser.execute_script(
            "const t = performance.timing; return [t.domContentLoadedEventEnd - t.navigationStart,"
            " t.loadEventEnd - t.navigationStart];")
        print(f"lstm200.html: {size} bytes, {lstm['entries']} entries, {len(lstm['steps'])} sweep steps; "
              f"load {wall:.2f} s wall (DOMContentLoaded {ready[0]} ms, load {ready[1]} ms)")
        check(int(text("step-total")) == lstm["entries"] + len(lstm["steps"]), "the LSTM page's step count")
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.END)
        last = lstm["steps"][-1]
        check(current() == [f"n{last['entry']}"] and text("rule") == last["rule"] and text("dy") == last["adjoint"],
              "End on the LSTM page shows the sweep's last step")
    finally:
        browser.quit()
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print(f"all checks passed: {n} forward steps and {len(steps)} reverse steps compared with ReverseSweep")
    return 0


if __name__ == "__main__":
    sys.exit(main())
