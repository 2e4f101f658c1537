#!/usr/bin/env bash
# Headless Chromium for the page's real-browser test (tests/test_app_browser.py) and
# `make bench-app`: Debian's `chromium` and `chromium-driver` packages. Idempotent; where
# they cannot be installed (not root, no apt-get) it says so and exits 0, and the browser
# test skips naming the package.
set -u
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: skipped: needs root and apt-get to install Debian's chromium and chromium-driver;" \
         "the browser test will be skipped (install those two packages to run it)." >&2
    exit 0
fi
echo "install_browser: installing Debian's chromium and chromium-driver (apt-get)..."
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; then
    echo "install_browser: $(chromium --version 2>/dev/null || echo chromium installed)"
else
    echo "install_browser: apt-get could not install chromium chromium-driver; the browser test will be skipped." >&2
fi
exit 0
