"""Image commands: ``copy``, ``inspect``, ``tag``, ``ls``, ``rm``, ``prune``, ``store verify``.

Thin wrappers: parse flags, call :mod:`xarch.api`, render. Results go to stdout, progress
and errors to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from xarch import api
from xarch.cli.progress import Renderer, human_size, make_renderer
from xarch.errors import StoreError
from xarch.oci.platform import parse_platform, parse_platforms
from xarch.transports.remote import RegistryOptions

T = TypeVar("T")


# -- shared by the other command modules -------------------------------------------------------
def progress_mode(ctx: click.Context) -> str:
    obj = ctx.find_root().obj
    return str(getattr(obj, "progress", "auto"))


@contextmanager
def renderer(ctx: click.Context) -> Iterator[Renderer]:
    r = make_renderer(progress_mode(ctx))
    try:
        yield r
    finally:
        r.close()


def registry_options(
    *, insecure: bool = False, ca_file: str | None = None, jobs: int = 4
) -> RegistryOptions:
    return RegistryOptions(insecure=insecure, ca_file=ca_file, parallelism=max(jobs, 1))


def guard(fn: Callable[[], T], what: str) -> T:
    """Run ``fn``; an OSError that escaped the library (disk full, permission denied) becomes
    one StoreError line instead of an internal error."""
    try:
        return fn()
    except OSError as e:
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        raise StoreError(
            f"{what}: {e.strerror or e}{where}",
            hint="check the path, its permissions and free space",
        ) from None


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2))


def short(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}"


insecure_option = click.option(
    "--insecure",
    is_flag=True,
    help="Allow plain HTTP and skip TLS verification for the registry.",
)
ca_file_option = click.option(
    "--ca-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="PEM file of CA certificates to trust for the registry.",
)


# -- copy --------------------------------------------------------------------------------------
@click.command("copy")
@click.argument("src")
@click.argument("dst")
@click.option(
    "--all",
    "all_platforms",
    is_flag=True,
    help="Copy every platform of an index (the default; accepted for skopeo users).",
)
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    metavar="P[,P...]",
    help="Copy only these platforms (e.g. linux/amd64,linux/arm64). One platform copies its "
    "manifest alone (needed for docker-archive:).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Blobs transferred in parallel.",
)
@click.option("--insecure", is_flag=True, help="Plain HTTP / no TLS verification for both sides.")
@click.option("--src-insecure", is_flag=True, help="Plain HTTP / no TLS verification for SRC.")
@click.option("--dest-insecure", is_flag=True, help="Plain HTTP / no TLS verification for DST.")
@click.option(
    "--no-referrers",
    is_flag=True,
    help="Copy the image only, not the SBOMs, provenance and signatures that refer to it.",
)
@ca_file_option
@click.pass_context
def copy_cmd(
    ctx: click.Context,
    src: str,
    dst: str,
    all_platforms: bool,
    platforms: tuple[str, ...],
    jobs: int,
    insecure: bool,
    src_insecure: bool,
    dest_insecure: bool,
    no_referrers: bool,
    ca_file: str | None,
) -> None:
    """Copy an image (all platforms by default) from SRC to DST.

    SRC and DST are locations: REF or docker://REF (registry), oci:DIR[:TAG],
    oci-archive:FILE[:TAG], docker-archive:FILE[:REF], store:NAME[:TAG] or a bare NAME:TAG
    (local store). Without --platform every manifest is copied byte for byte, so digests are
    the same at the destination. Referrers of the copied manifests (SBOMs, provenance,
    signatures, cosign's sha256-*.sig/.att tags) come along unless --no-referrers.
    """
    if all_platforms and platforms:
        raise click.UsageError("--all and --platform exclude each other")
    plats = list(parse_platforms(platforms)) if platforms else None
    src_opts = registry_options(insecure=insecure or src_insecure, ca_file=ca_file, jobs=jobs)
    dst_opts = registry_options(insecure=insecure or dest_insecure, ca_file=ca_file, jobs=jobs)
    with renderer(ctx) as r:
        result = guard(
            lambda: api.copy(
                src,
                dst,
                platforms=plats,
                jobs=jobs,
                on_event=r,
                registry_options=src_opts,
                dest_registry_options=dst_opts,
                referrers=not no_referrers,
            ),
            f"copy to {dst}",
        )
        carried = ""
        if result.referrers or result.referrer_tags:
            carried = (f", {result.referrers} referrer(s) and {result.referrer_tags} cosign "
                       "tag(s) carried")
        r.message(
            f"copied {result.root.digest} to {result.destination}: "
            f"{len(result.manifests)} manifest(s), {result.blobs_copied} blob(s) copied "
            f"({result.bytes} bytes), {result.blobs_skipped} skipped, "
            f"{result.blobs_mounted} mounted in {result.seconds:.2f}s{carried}"
        )
    click.echo(str(result.root.digest))


# -- inspect -----------------------------------------------------------------------------------
def _list(v: tuple[str, ...] | None) -> str:
    return json.dumps(list(v)) if v is not None else "-"


def render_inspect(res: api.InspectResult) -> str:
    d = res.descriptor
    lines = [
        f"Name:       {res.name}",
        f"MediaType:  {d.media_type}",
        f"Digest:     {d.digest}",
        f"Size:       {d.size}",
    ]
    if res.is_index:
        plats = [i.platform or "unknown" for i in res.images if not i.attestation_for]
        lines.append(f"Platforms:  {', '.join(plats) or '-'}")
    for k, v in sorted(res.annotations.items()):
        lines.append(f"Annotation: {k}={v}")
    for img in res.images:
        lines.append("")
        if img.attestation_for:
            lines.append(f"Attestation {img.digest} (for {img.attestation_for})")
            continue
        lines.append(f"Manifest {img.digest} ({img.platform or 'unknown platform'})")
        lines.append(f"  MediaType:  {img.media_type}")
        if img.created is not None:
            lines.append(f"  Created:    {img.created}")
        for e in img.env:
            lines.append(f"  Env:        {e}")
        lines.append(f"  Entrypoint: {_list(img.entrypoint)}")
        lines.append(f"  Cmd:        {_list(img.cmd)}")
        if img.workdir:
            lines.append(f"  WorkingDir: {img.workdir}")
        if img.user:
            lines.append(f"  User:       {img.user}")
        for k, v in sorted(img.labels.items()):
            lines.append(f"  Label:      {k}={v}")
        lines.append(f"  Layers:     {img.layers} ({human_size(img.layers_size)})")
    return "\n".join(lines)


@click.command("inspect")
@click.argument("ref")
@click.option("--raw", is_flag=True, help="Print the exact manifest/index bytes.")
@click.option("--platform", default=None, help="Pick this platform's image from an index.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Readable summary or machine-readable JSON.",
)
@insecure_option
@ca_file_option
def inspect_cmd(
    ref: str, raw: bool, platform: str | None, fmt: str, insecure: bool, ca_file: str | None
) -> None:
    """Show the image REF names (any location): platforms, config summary, layers."""
    res = api.inspect(
        ref,
        platform=None if platform is None else parse_platform(platform),
        summarize=not raw,
        registry_options=registry_options(insecure=insecure, ca_file=ca_file),
    )
    if raw:
        out = sys.stdout.buffer
        out.write(res.raw)
        out.flush()
        return
    if fmt == "json":
        echo_json(res.to_json())
    else:
        click.echo(render_inspect(res))


# -- tag / ls / rm / prune / store verify ------------------------------------------------------
@click.command("tag")
@click.argument("src")
@click.argument("dst")
@insecure_option
@ca_file_option
def tag_cmd(src: str, dst: str, insecure: bool, ca_file: str | None) -> None:
    """Name the image SRC also DST (store names, or two registry references)."""
    desc = guard(
        lambda: api.tag(
            src, dst, registry_options=registry_options(insecure=insecure, ca_file=ca_file)
        ),
        f"tag {dst}",
    )
    click.echo(str(desc.digest))


@click.command("ls")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@click.option("-q", "--quiet", is_flag=True, help="Names only.")
def ls_cmd(fmt: str, quiet: bool) -> None:
    """List the images in the local store."""
    images = guard(api.list_images, "list the local store")
    if fmt == "json":
        echo_json([i.to_json() for i in images])
        return
    if quiet:
        for i in images:
            click.echo(i.name)
        return
    rows = [("NAME", "DIGEST", "SIZE", "PLATFORMS", "CREATED")]
    for i in images:
        created = i.created.strftime("%Y-%m-%d %H:%M:%S") if i.created else "-"
        rows.append(
            (i.name, short(i.digest), human_size(i.size), ",".join(i.platforms) or "-", created)
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo(
            "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + "  " + r[-1]
        )


@click.command("rm")
@click.argument("names", nargs=-1, required=True)
def rm_cmd(names: tuple[str, ...]) -> None:
    """Remove NAMES from the local store (content is freed by 'xarch prune')."""
    for name, digest in guard(lambda: api.remove(names), "remove"):
        click.echo(f"untagged {name} ({digest})")


@click.command("prune")
@click.option("--dry-run", is_flag=True, help="Report what would be removed, remove nothing.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def prune_cmd(dry_run: bool, fmt: str) -> None:
    """Delete blobs of the local store no named image references."""
    res = guard(lambda: api.prune(dry_run=dry_run), "prune the local store")
    verb = "would remove" if dry_run else "removed"
    if fmt == "json":
        echo_json(
            {
                "dryRun": dry_run,
                "removed": [{"digest": str(d), "size": s} for d, s in res.removed],
                "blobs": len(res.removed),
                "freedBytes": res.freed_bytes,
            }
        )
        return
    for d, size in res.removed:
        click.echo(f"{verb} {d} {size} bytes")
    click.echo(
        f"{verb} {len(res.removed)} blob(s), {'would free' if dry_run else 'freed'} "
        f"{res.freed_bytes} bytes ({human_size(res.freed_bytes)})"
    )


@click.group("store")
def store_group() -> None:
    """Local store maintenance."""


@store_group.command("verify")
def store_verify_cmd() -> None:
    """Check every blob's digest and every image's references; exit 1 on problems."""
    problems = guard(api.verify_store, "verify the local store")
    for p in problems:
        click.echo(p)
    if problems:
        raise StoreError(
            f"local store has {len(problems)} problem(s)",
            hint="remove the broken images with 'xarch rm' and copy them again",
        )
    n = len(guard(api.list_images, "list the local store"))
    click.echo(f"store ok: {n} image(s)")


# docker's spelling; the store's own hints say 'xarch images'.
images_cmd = click.Command(
    "images",
    callback=ls_cmd.callback,
    params=list(ls_cmd.params),
    help="List the images in the local store (same as 'xarch ls').",
)

COMMANDS = [copy_cmd, inspect_cmd, tag_cmd, ls_cmd, images_cmd, rm_cmd, prune_cmd, store_group]
