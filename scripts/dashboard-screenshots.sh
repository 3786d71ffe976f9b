#!/bin/sh
# Regenerates docs/dashboard/*.png: the browser test, run with BERTH_SCREENSHOTS, saves the main pages it visits.
# Needs Debian's chromium (apt-get install -y --no-install-recommends chromium). Run: npm run screenshots
set -eu
cd "$(dirname "$0")/.."
[ -x /usr/bin/chromium ] || { echo "chromium not found (Debian package chromium)" >&2; exit 1; }
BERTH_SCREENSHOTS=docs/dashboard node --test --test-reporter=spec dist/test/dashboard-browser.test.js
ls -l docs/dashboard
