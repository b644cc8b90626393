"""``xarch bootstrap debian``: reproducible Debian base images for many platforms.

mmdebstrap builds each platform's root filesystem from Debian packages (a reachable Debian
mirror is all it needs; a local one for air-gapped users). xarch turns each tree into one
deterministic layer (sorted, numeric ids, mtimes clamped to SOURCE_DATE_EPOCH), writes a
config and a manifest per platform and one index, and names it in the local store. Same
packages + same epoch = same digests.

Variants are mmdebstrap's (extract, custom, essential, apt, required, minbase, buildd,
important, standard). ``extract`` only unpacks the named packages, so it needs no emulation
for foreign architectures; the others run maintainer scripts and need `xarch setup emulation`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from xarch.archive.tarwriter import entries_from_tree
from xarch.builder.layers import store_layer
from xarch.content.store import ContentStore
from xarch.errors import InputError, RuntimeFailure, UsageError
from xarch.exporter.image import ExportResult, PlatformImage, export
from xarch.oci.platform import Platform
from xarch.oci.platform import parse_platforms as _parse_platforms

# OCI platform -> Debian architecture name.
DEBIAN_ARCH: dict[str, str] = {
    "linux/amd64": "amd64",
    "linux/arm64": "arm64",
    "linux/arm/v7": "armhf",
    "linux/arm/v5": "armel",
    "linux/386": "i386",
    "linux/ppc64le": "ppc64el",
    "linux/s390x": "s390x",
    "linux/riscv64": "riscv64",
    "linux/mips64le": "mips64el",
}

VARIANTS = ("extract", "custom", "essential", "apt", "required", "minbase", "buildd",
            "important", "debootstrap", "standard")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class BootstrapOptions:
    platforms: tuple[Platform, ...]
    suite: str = "bookworm"
    variant: str = "minbase"
    include: tuple[str, ...] = ()
    mirror: str = DEFAULT_MIRROR
    source_date_epoch: int | None = None
    busybox_links: bool = False  # create /bin/<applet> -> busybox links (busybox-static bases)
    compression: str = "gzip"
    oci_media_types: bool = True
    mmdebstrap: str = "mmdebstrap"
    extra_args: tuple[str, ...] = field(default=())


def debian_arch(p: Platform) -> str:
    try:
        return DEBIAN_ARCH[str(p)]
    except KeyError:
        raise UsageError(
            f"Debian has no architecture for platform {p}",
            hint=f"choose from {', '.join(DEBIAN_ARCH)}",
        ) from None


def _epoch(opts: BootstrapOptions) -> int:
    if opts.source_date_epoch is not None:
        return opts.source_date_epoch
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env and env.isdigit():
        return int(env)
    return int(datetime.now(UTC).timestamp())


def _busybox_applets() -> list[str]:
    """Applet paths from the host's busybox (same Debian version, same applet list)."""
    bb = shutil.which("busybox")
    if bb is None:
        raise UsageError("--busybox-links needs the host's busybox to list applets",
                         hint="apt-get install busybox-static")
    out = subprocess.run([bb, "--list-full"], capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def _link_busybox(root: Path) -> int:
    target = root / "bin" / "busybox"
    if not target.exists():
        target = root / "usr" / "bin" / "busybox"
    if not target.exists():
        raise InputError("--busybox-links: no /bin/busybox in the image", hint="--include busybox-static")
    made = 0
    for applet in _busybox_applets():
        dest = root / applet
        if os.path.lexists(dest) or (root / "usr" / applet).exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        rel = os.path.relpath(target, dest.parent)
        os.symlink(rel, dest)
        made += 1
    return made


def _run_mmdebstrap(opts: BootstrapOptions, arch: str, dest: Path, epoch: int,
                    log: Callable[[str], None]) -> None:
    cmd = [
        opts.mmdebstrap, "--mode=root", "--format=directory", f"--variant={opts.variant}",
        f"--architectures={arch}",
    ]
    if opts.include:
        cmd.append("--include=" + ",".join(opts.include))
    cmd += list(opts.extra_args)
    cmd += [opts.suite, str(dest), opts.mirror]
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
    log(" ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    except FileNotFoundError:
        raise UsageError("mmdebstrap is not installed", hint="apt-get install mmdebstrap") from None
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise RuntimeFailure(f"mmdebstrap failed for {arch} (exit {proc.returncode}): {tail}")


def _clean_tree(root: Path) -> None:
    """Leave out what a container runtime provides: device nodes and runtime mounts."""
    for d in ("dev", "proc", "sys", "run"):
        p = root / d
        if p.is_dir() and not p.is_symlink():
            for child in p.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()


def bootstrap(
    store: ContentStore,
    opts: BootstrapOptions,
    *,
    work_dir: Path | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> ExportResult:
    if not opts.platforms:
        raise UsageError("bootstrap needs at least one --platform")
    if opts.variant not in VARIANTS:
        raise UsageError(f"unknown variant {opts.variant!r}", hint=f"choose from {', '.join(VARIANTS)}")
    if os.geteuid() != 0:
        raise UsageError("xarch bootstrap needs root (mmdebstrap --mode=root)", hint="run it with sudo")
    epoch = _epoch(opts)
    created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    images: list[PlatformImage] = []
    for p in opts.platforms:
        arch = debian_arch(p)
        with tempfile.TemporaryDirectory(prefix=f"xarch-bootstrap-{arch}-", dir=work_dir) as tmp:
            root = Path(tmp) / "rootfs"
            _run_mmdebstrap(opts, arch, root, epoch, log)
            _clean_tree(root)
            if opts.busybox_links:
                log(f"{p}: linked {_link_busybox(root)} busybox applets")
            desc, res = store_layer(
                store,
                entries_from_tree(root, source_date_epoch=epoch),
                compression=opts.compression,
                oci_media_types=opts.oci_media_types,
            )
            log(f"{p}: layer {desc.digest} ({res.size} bytes compressed, {res.uncompressed_size} tar)")
        shell_cmd = ["/bin/sh"] if opts.busybox_links or opts.variant in ("extract", "custom") else ["bash"]
        what = f"xarch bootstrap debian {opts.suite} --variant {opts.variant}"
        if opts.include:
            what += " --include " + ",".join(opts.include)
        config = {
            "created": created,
            "config": {"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": shell_cmd},
            "history": [{"created": created, "created_by": what, "comment": "xarch bootstrap"}],
        }
        images.append(PlatformImage(platform=p, layers=(desc,), diff_ids=(res.diff_id,), config=config))
    return export(store, images, oci_media_types=opts.oci_media_types, force_index=len(images) > 1)


def parse_platforms(values: Sequence[str]) -> tuple[Platform, ...]:
    """``--platform`` values: the one reader, :func:`xarch.oci.platform.parse_platforms`."""
    return _parse_platforms(values)
