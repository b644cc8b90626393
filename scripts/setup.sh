#!/usr/bin/env bash
# Newcomer's first command: install everything, then run the main job — a real
# multi-platform build of examples/hello for linux/amd64, linux/arm64 and linux/arm/v7
# (foreign RUN steps under QEMU), tested on every platform. No image registry involved.
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
exec scripts/demo.sh
