#!/usr/bin/env bash
# Run xarch's test suite. Installs what it needs, starts the services the interop tests use
# (a docker daemon on a private socket, bridge and iptables off; the reference buildkitd of
# the differential tier; registries are started per test session by the fixtures on
# 127.0.0.1) and stops them again. Extra args go to pytest, e.g. `scripts/test.sh -m "not
# slow"` for the quick loop.
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
stop() {  # stop the daemon whose pid is in $1, then unmount what it left under $2
  if [ -f "$1" ]; then
    pid="$(cat "$1")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  umount -R "$2" 2>/dev/null || true
}
cleanup() {
  stop "$state/dockerd.pid" "$state/docker/root"
  umount "$state/docker/exec/netns/default" 2>/dev/null || true  # dockerd's netns (not a tree: -R misses it)
  stop "$state/buildkit/buildkitd.pid" "$state/buildkit/root"
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

# the reference BuildKit (v0.32) of the differential tier (tests/conformance): OCI worker,
# runc, host network; started after the QEMU handlers, so its worker lists the emulated ones.
# Its config (tests/helpers/buildkit.py) allows plain HTTP to the tier's registry on
# 127.0.0.1:5000-5009 and RUN --network=host.
buildkit="$here/../shared/tools/buildkit"
if [ -x "$buildkit/start.sh" ]; then
  mkdir -p "$state/buildkit"
  PYTHONPATH=tests .venv/bin/python -m helpers.buildkit config >"$state/buildkit/buildkitd.toml"
  if addr="$("$buildkit/start.sh" "$state/buildkit")"; then
    export XARCH_TEST_BUILDKIT_HOST="$addr"
  else
    echo "xarch: buildkitd did not start; the differential tier will start its own" >&2
  fi
fi

export XARCH_HYPOTHESIS_EXAMPLES="${XARCH_HYPOTHESIS_EXAMPLES:-10000}"
.venv/bin/python -m pytest "$@"
