"""``xarch manifest create|inspect``: merge per-architecture images into one index."""

from __future__ import annotations

import json

import click

from xarch import api
from xarch.cli.images import ca_file_option, guard, insecure_option, registry_options, renderer
from xarch.errors import InputError
from xarch.oci.platform import parse_platform


@click.group("manifest")
def manifest_group() -> None:
    """Create and inspect multi-platform manifests (indexes)."""


@manifest_group.command("create")
@click.argument("target")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--annotation",
    "annotations",
    multiple=True,
    metavar="KEY=VALUE",
    help="Index annotation (repeatable); 'manifest-descriptor:KEY=VALUE' annotates each entry.",
)
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--dry-run", is_flag=True, help="Print the index, write nothing.")
@insecure_option
@ca_file_option
@click.pass_context
def create_cmd(
    ctx: click.Context,
    target: str,
    sources: tuple[str, ...],
    annotations: tuple[str, ...],
    jobs: int,
    dry_run: bool,
    insecure: bool,
    ca_file: str | None,
) -> None:
    """Make TARGET an index of SOURCES (e.g. images pushed by digest from native runners).

    Index sources contribute their entries; each entry's platform comes from the source
    index or the image config. TARGET is a registry reference, oci:DIR[:TAG] or a store name;
    what the index references is copied there when missing. Prints the index digest.
    """
    opts = registry_options(insecure=insecure, ca_file=ca_file, jobs=jobs)
    with renderer(ctx) as r:
        res = guard(
            lambda: api.manifest_create(
                target,
                sources,
                annotations=annotations,
                jobs=jobs,
                on_event=r,
                registry_options=opts,
                dry_run=dry_run,
            ),
            f"write {target}",
        )
        if dry_run:
            click.echo(res.raw.decode())
            return
        r.message(
            f"created {res.descriptor.media_type} {res.descriptor.digest} with "
            f"{len(res.entries)} entr{'y' if len(res.entries) == 1 else 'ies'} at {res.target}"
        )
    click.echo(str(res.descriptor.digest))


@manifest_group.command("inspect")
@click.argument("ref")
@click.option("--platform", default=None, help="Show this platform's manifest from an index.")
@insecure_option
@ca_file_option
def inspect_cmd(ref: str, platform: str | None, insecure: bool, ca_file: str | None) -> None:
    """Print the manifest or index REF names as indented JSON (digest-exact bytes: inspect --raw)."""
    res = api.inspect(
        ref,
        platform=None if platform is None else parse_platform(platform),
        summarize=False,
        registry_options=registry_options(insecure=insecure, ca_file=ca_file),
    )
    try:
        doc = json.loads(res.raw)
    except ValueError:
        raise InputError(f"{res.name}: manifest {res.descriptor.digest} is not JSON") from None
    click.echo(json.dumps(doc, indent=2))


COMMANDS = [manifest_group]
