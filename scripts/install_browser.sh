#!/usr/bin/env bash
# The headless browser the web UI tests drive (tests/ui/test_browser.py): Debian's Chromium
# and its ChromeDriver, at /usr/bin/chromium and /usr/bin/chromedriver. Needs root and apt;
# does nothing when both are there already. CI (.ci/run) and the tests' fixture call it.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser.sh: needs root and apt-get to install chromium and chromium-driver" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
chromium --version
