#!/usr/bin/env bash
# Install a headless browser for the site's browser tests (tests/test_site_browser.py, tests/test_site_a11y.py
# with its vendored axe-core, so no node): Debian's
# chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver), when either is missing.
#
#   bash .ci/install-browser.sh
#
# fonts-liberation (a recommendation of chromium's, the rest of which a headless run does not need)
# gives the screenshots legible text. Needs root and apt-get. Quiet; each apt-get step is bounded by a timeout
# ($INVARBENCH_BROWSER_INSTALL_TIMEOUT seconds, default 600). Always exits 0: without a browser the
# browser tests skip and the rest of the suite still runs, so a failure here prints one warning line
# on stderr and nothing else.
set -uo pipefail

have_browser() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }

if have_browser; then
    exit 0
fi

warn() { echo "warning: could not install chromium and chromium-driver ($1); the browser tests will be skipped" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    warn "not root"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    warn "no apt-get"
    exit 0
fi

limit=${INVARBENCH_BROWSER_INSTALL_TIMEOUT:-600}
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp -t install-browser.XXXXXX)
if timeout "$limit" apt-get update -qq >"$log" 2>&1 < /dev/null \
        && timeout "$limit" apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation \
            >>"$log" 2>&1 < /dev/null \
        && have_browser; then
    rm -f "$log"
else
    warn "apt-get failed or timed out; its log: $log"
fi
exit 0
