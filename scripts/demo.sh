#!/usr/bin/env bash
# The main job: a real multi-platform build of examples/hello, tested on every platform.
#  1. register QEMU for foreign architectures (binfmt_misc, fix-binary flag)
#  2. make a busybox base image for each platform from Debian's busybox-static package
#  3. build examples/hello for linux/amd64, linux/arm64, linux/arm/v7 (one command)
#  4. run it on every platform and check each prints its own architecture
# No registry and no daemon are involved; everything lands in the local store.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
xarch() { "$here/.venv/bin/xarch" "$@"; }
PLATFORMS="${PLATFORMS:-linux/amd64,linux/arm64,linux/arm/v7}"

echo "== xarch doctor"
xarch setup emulation >/dev/null
xarch doctor || true

echo "== base image: busybox-static for $PLATFORMS"
xarch bootstrap debian --suite bookworm --variant extract --include busybox-static \
  --busybox-links --source-date-epoch 1700000000 \
  --platform "$PLATFORMS" -t xarch-examples/busybox:bookworm

echo "== build examples/hello for $PLATFORMS"
xarch --progress plain build examples/hello --platform "$PLATFORMS" -t xarch-examples/hello:latest

echo "== test on every platform"
xarch test xarch-examples/hello:latest --expect 'hello from'
xarch test xarch-examples/hello:latest --cmd 'uname -m'   # checks each platform's machine
xarch inspect xarch-examples/hello:latest 2>/dev/null || true
echo "== done: xarch-examples/hello:latest is a $(echo "$PLATFORMS" | tr ',' '\n' | wc -l)-platform image in the local store"
