#!/usr/bin/env bash
# Run xarch's test suite. Installs what it needs, starts the services the interop tests use
# (a docker daemon on a private socket, bridge and iptables off; registries are started per
# test session by the fixtures on 127.0.0.1) and stops them again. Extra args go to pytest,
# e.g. `scripts/test.sh -m "not slow"` for the quick loop.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
# root is needed (runc, overlayfs, binfmt_misc): as another user, re-run through sudo
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "xarch: $0 needs root (runc, overlayfs, binfmt_misc); run it as root" >&2
    exit 1
  fi
  exec sudo -E "$here/scripts/$(basename "$0")" "$@"
fi

scripts/install-deps.sh

state="$(mktemp -d /tmp/xarch-test.XXXXXX)"
cleanup() {
  if [ -f "$state/dockerd.pid" ]; then
    pid="$(cat "$state/dockerd.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  umount -R "$state/docker/root" 2>/dev/null || true
  rm -rf "$state" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# dockerd for `docker load` / `docker run` interop checks: no bridge, no iptables, host
# networking only, so no private-range address is ever used.
if [ "${XARCH_TEST_NO_DOCKER:-}" != "1" ] && command -v dockerd >/dev/null 2>&1; then
  mkdir -p "$state/docker/root" "$state/docker/exec"
  dockerd --bridge=none --iptables=false --ip6tables=false \
    --data-root "$state/docker/root" --exec-root "$state/docker/exec" \
    --pidfile "$state/dockerd.pid" -H "unix://$state/docker.sock" \
    --insecure-registry 127.0.0.0/8 >"$state/dockerd.log" 2>&1 &
  for _ in $(seq 1 100); do
    DOCKER_HOST="unix://$state/docker.sock" docker version >/dev/null 2>&1 && break
    sleep 0.2
  done
  if DOCKER_HOST="unix://$state/docker.sock" docker version >/dev/null 2>&1; then
    export XARCH_TEST_DOCKER_HOST="unix://$state/docker.sock"
  else
    echo "xarch: dockerd did not start; docker interop tests will fail in CI" >&2
    tail -20 "$state/dockerd.log" >&2 || true
  fi
fi

# QEMU handlers for foreign-platform RUN steps (Debian leaves them disabled without systemd)
.venv/bin/xarch setup emulation >/dev/null || echo "xarch: emulation setup failed; emulated tests will fail" >&2

export XARCH_HYPOTHESIS_EXAMPLES="${XARCH_HYPOTHESIS_EXAMPLES:-10000}"
.venv/bin/python -m pytest "$@"
