"""Open HTML reports in headless Chromium: console errors, sentence rows, and a full-page screenshot.

    python scripts/browser_check.py REPORT.html [REPORT.html ...] --screenshots DIR

Needs the Debian packages chromium and chromium-driver and selenium (in requirements/current.txt).
Exits 1 when a page logs a console error or has no sentence table.
"""

import argparse
import sys
import tempfile
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", "--window-size=1400,1000")


def open_browser(profile_dir: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*FLAGS, f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))


def check(driver, report: Path, screenshot: Path) -> bool:
    driver.get(report.resolve().as_uri())
    rows = driver.execute_script("return document.querySelectorAll('#sentences-table tbody tr').length")
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(height + 200, 16000))
    driver.save_screenshot(str(screenshot))
    print(f"{report}: {rows} sentence rows, {len(errors)} console errors, page {height} px high -> {screenshot}")
    for message in errors:
        print(f"  console error: {message}")
    return rows > 0 and not errors


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--screenshots", type=Path, default=Path("reports"))
    args = parser.parse_args()
    args.screenshots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile_dir:
        driver = open_browser(profile_dir)
        try:
            ok = [check(driver, report, args.screenshots / f"{report.stem}.png") for report in args.reports]
        finally:
            driver.quit()
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
