#!/usr/bin/env bash
# Onair's two set-up commands for a fresh Debian 12 / Ubuntu 22.04+ machine.
#   ./dev.sh up [onair up options]   install what is missing, then run the whole stack
#   ./dev.sh test [pytest options]   install what is missing, then run the full test suite
#                                    (as root with ONAIR_TEST_HOSTS=split: then the split lab too)
#   ./dev.sh test-hosts [options]    (root) the real-host suite: booted Debian 12 containers
# Safe to run twice: each step checks before it installs.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(nginx libnginx-mod-rtmp ffmpeg postgresql redis-server python3 python3-venv python3-dev gcc)
# chromium: tests/browser, driven by Playwright; gstreamer: hlsdemux2 as an independent player;
# libnginx-mod-stream and openssl: tests/simulcast's TLS front before a second nginx-rtmp
APT_TEST_PACKAGES=(restic python3-psycopg2 chromium
  gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav
  libnginx-mod-stream openssl procps)
# tests/hosts: Debian 12 containers booted with systemd as PID 1 (debootstrap, systemd-nspawn);
# curl and ffmpeg (APT_PACKAGES) are the viewer and the publisher in the lab, pebble its ACME server
APT_HOSTS_PACKAGES=(systemd-container debootstrap iproute2 openssh-client curl pebble)
# The watch page's libraries come from the npm registry; Debian 12's nodejs 18 + npm 9 will do.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)
VENV=.venv

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return
  echo "dev.sh: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Debian starts the services it just installed; Onair runs private ones on its own ports.
  for pkg in "${missing[@]}"; do
    case "$pkg" in
      nginx|redis-server|postgresql) as_root systemctl disable --now "$pkg" >/dev/null 2>&1 || true ;;
    esac
  done
}

install_python() {
  local extra=$1
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  local stamp="$VENV/.installed-$extra"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e ".[$extra]"
    touch "$stamp"
  fi
}

install_js() {
  # `npm ci` installs hls.js, socket.io-client and tus-js-client as locked in package-lock.json;
  # its postinstall copies their browser builds to server/pages/static/vendor, where the server
  # serves them.
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ] || [ package.json -nt node_modules ] \
    || [ ! -f server/pages/static/vendor/hls.light.min.js ] || [ ! -f server/pages/static/vendor/socket.io.min.js ] \
    || [ ! -f server/pages/static/vendor/tus.min.js ]; then
    npm ci --no-audit --no-fund --loglevel=error
    touch node_modules
  fi
}

case "${1:-}" in
  up)
    shift
    install_apt "${APT_PACKAGES[@]}"
    install_python run
    install_js
    exec "$VENV/bin/onair" up "$@"
    ;;
  test)
    shift
    # As root (CI runs it so) the split topology on booted hosts follows the whole suite
    # (tests/hosts/test_split.py, ≈ 10 min more on 2 cores, image built cold). ONAIR_TEST_HOSTS:
    # none leaves it out, split runs it after a suite narrowed by pytest options too.
    # Without root it cannot run: the suite alone.
    default=split
    [ $# -eq 0 ] || default=none
    hosts="${ONAIR_TEST_HOSTS:-$default}"
    case "$hosts" in
      none) hosts="" ;;
      split)
        if [ "$(id -u)" -ne 0 ]; then
          echo "dev.sh test: not root, so the split lab (network namespaces, systemd-nspawn) is left out"
          hosts=""
        fi ;;
      *) echo "dev.sh test: ONAIR_TEST_HOSTS is split or none, not '$hosts'" >&2; exit 2 ;;
    esac
    install_apt "${APT_PACKAGES[@]}" "${APT_TEST_PACKAGES[@]}" ${hosts:+"${APT_HOSTS_PACKAGES[@]}"}
    install_python test
    install_js
    [ -n "$hosts" ] || exec "$VENV/bin/pytest" "$@"
    status=0
    "$VENV/bin/pytest" "$@" || status=$?
    "$VENV/bin/pytest" -m hosts tests/hosts/test_split.py || status=$?
    exit "$status"
    ;;
  test-hosts)
    shift
    if [ "$(id -u)" -ne 0 ]; then
      echo "dev.sh test-hosts: run as root (network namespaces, systemd-nspawn)" >&2
      exit 2
    fi
    install_apt "${APT_PACKAGES[@]}" "${APT_TEST_PACKAGES[@]}" "${APT_HOSTS_PACKAGES[@]}"
    install_python test
    install_js
    exec "$VENV/bin/pytest" -m hosts tests/hosts "$@"
    ;;
  *)
    echo "usage: ./dev.sh up [options] | ./dev.sh test [pytest options] | ./dev.sh test-hosts" >&2
    exit 2
    ;;
esac
