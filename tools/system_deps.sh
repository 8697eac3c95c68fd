#!/usr/bin/env bash
# Debian packages the build needs (compiler, CMake, make, git, venv and Python headers).
# Installs only what is missing, so a second run costs a few checks. Needs root or sudo
# when something is missing.
set -euo pipefail
need=()
command -v c++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v cmake >/dev/null || need+=(cmake)
command -v git >/dev/null || need+=(git)
# PostgreSQL server for the ledger tests (tools/with_postgres.sh starts a throwaway one).
command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
  || need+=(postgresql)
# Headless browser for the operator page test (test/test_operator_page_browser.py).
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(
    sysconfig.get_paths()["include"], "Python.h")))' || need+=(python3-dev)
[ "${#need[@]}" -eq 0 ] && exit 0
sudo=''
[ "$(id -u)" -eq 0 ] || sudo='sudo'
echo "installing Debian packages: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
