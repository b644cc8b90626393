#!/usr/bin/env bash
# Newcomer's first command: install everything, then run the main job — a real
# multi-platform build of examples/hello for linux/amd64, linux/arm64 and linux/arm/v7
# (foreign RUN steps under QEMU), tested on every platform. No image registry involved.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
scripts/install-deps.sh
exec scripts/demo.sh
