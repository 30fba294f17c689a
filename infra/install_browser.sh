#!/usr/bin/env bash
# Installs Debian's headless browser for the browser tests (tests/browser): chromium and
# chromium-driver. Idempotent: does nothing when /usr/bin/chromium and /usr/bin/chromedriver exist.
# Needs root (CI runs as root on Debian); non-interactive.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    echo "install_browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) already installed"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    SUDO=sudo
else
    SUDO=
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core
echo "install_browser: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium installed')"
