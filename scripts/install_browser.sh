#!/usr/bin/env bash
# The headless browser the web UI tests drive (tests/ui/test_browser.py): Debian's Chromium
# and its ChromeDriver, at /usr/bin/chromium and /usr/bin/chromedriver. Needs root and apt;
# does nothing when both are there already. CI (.ci/run) and the tests' fixture call it.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
bash "$(dirname "$0")/apt_install.sh" chromium chromium-driver
chromium --version
