#!/usr/bin/env bash
# Install xarch's system packages (Debian 12) and xarch itself into ./.venv.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

SYSTEM_PACKAGES=(
  runc crun                      # OCI runtimes (crun preferred, runc fallback on hybrid cgroups)
  qemu-user-static binfmt-support  # foreign-architecture RUN steps
  busybox-static mmdebstrap arch-test  # offline base images; arch-test: mmdebstrap foreign arches
  docker-registry                # the CNCF distribution registry, for integration tests
  skopeo umoci docker.io buildah podman  # interop checks
  apache2-utils                  # htpasswd for registry auth tests
  golang-github-containers-common  # /usr/share/containers/seccomp.json: RUN's default filter
  uidmap fuse-overlayfs iproute2 ca-certificates
  git                            # ADD <git repository>; git daemon in the tests
)

missing=()
for p in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "xarch: installing system packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's docker-registry package starts a service on :5000 we do not want; tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import xarch, pytest, hypothesis, jsonschema" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.xarch-installed ]; then
  # pip's output goes to a log (this machine's pip config warns about every package); shown on failure
  if ! .venv/bin/pip install -q --disable-pip-version-check -e '.[test]' >.venv/pip-install.log 2>&1; then
    cat .venv/pip-install.log >&2
    exit 1
  fi
  touch .venv/.xarch-installed
fi
# This machine sets PYTHONDONTWRITEBYTECODE=1: without compiled bytecode every `xarch` call
# recompiles ~180 modules (≈0.15 s). Python still reads .pyc files, so compile them once.
.venv/bin/python -m compileall -q -j 0 src >/dev/null 2>&1 || true
echo "xarch: installed $(.venv/bin/xarch --version 2>/dev/null || echo '(cli not ready)') in $here/.venv"
