"""``xarch build``, ``bootstrap``, ``run`` and ``test``: thin wrappers over xarch.builder."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from xarch.cli.main import GlobalOptions
from xarch.errors import UsageError

if TYPE_CHECKING:
    from xarch.builder.api import BuildEvent
    from xarch.oci.platform import Platform


def _kv(values: tuple[str, ...], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not k:
            raise UsageError(f"invalid {what} {v!r}", hint=f"use {what} KEY=VALUE")
        if not sep:
            import os

            # buildx: --build-arg NAME takes the value from the environment
            if k in os.environ:
                val = os.environ[k]
            else:
                continue
        out[k] = val
    return out


def _csv_attrs(s: str) -> dict[str, str]:
    out = {}
    for part in s.split(","):
        if not part:
            continue
        k, sep, v = part.partition("=")
        if not sep:
            raise UsageError(f"invalid attribute {part!r} in {s!r}", hint="use key=value pairs")
        out[k.strip()] = v.strip()
    return out


def _platforms(values: tuple[str, ...]) -> tuple[Platform, ...]:
    # the one reader (xarch.builder.bootstrap re-exports it); not worth importing bootstrap
    from xarch.oci.platform import parse_platforms

    return parse_platforms(values)


class _Printer:
    """buildx-style plain progress: '#N [platform stage i/n] STEP', then CACHED/DONE/ERROR."""

    def __init__(self, mode: str) -> None:
        self.mode = "plain" if mode in ("auto", "tty") else mode
        self.lock = threading.Lock()
        self.started: set[int] = set()

    def __call__(self, e: BuildEvent) -> None:
        if e.kind == "warning" and self.mode != "json":
            with self.lock:
                click.echo(e.name if e.name.startswith("warning") else f"warning: {e.name}", err=True)
            return
        if self.mode == "quiet":
            return
        with self.lock:
            if self.mode == "json":
                import json

                click.echo(json.dumps({"kind": e.kind, "id": e.id, "name": e.name, "detail": e.detail,
                                       "duration": round(e.duration, 3)}), err=True)
                return
            if e.kind == "info":
                click.echo(f"#0 {e.name}", err=True)
            elif e.kind == "start":
                self.started.add(e.id)
                click.echo(f"#{e.id} {e.name}", err=True)
            elif e.kind == "cached":
                if e.id not in self.started:
                    click.echo(f"#{e.id} {e.name}", err=True)
                click.echo(f"#{e.id} CACHED", err=True)
            elif e.kind == "log":
                click.echo(f"#{e.id} {e.detail}", err=True)
            elif e.kind == "done":
                click.echo(f"#{e.id} DONE {e.duration:.1f}s", err=True)
            elif e.kind == "error":
                click.echo(f"#{e.id} ERROR: {e.detail}", err=True)


@click.command("build")
@click.argument("context", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("-f", "--file", "dockerfile", type=click.Path(dir_okay=False, path_type=Path),
              help="Dockerfile (default: CONTEXT/Dockerfile).")
@click.option("--platform", "platforms", multiple=True, help="Target platforms, comma-separated.")
@click.option("-t", "--tag", "tags", multiple=True, help="Name (and tag) of the image.")
@click.option("--build-arg", "build_args", multiple=True, help="Build-time variable KEY=VALUE.")
@click.option("--target", help="Build this stage.")
@click.option("--no-cache", is_flag=True, help="Do not use the cache.")
@click.option("--pull", is_flag=True,
              help="Always resolve and fetch registry base images again (ignore the pull cache).")
@click.option("--secret", "secrets", multiple=True, help="id=ID,src=FILE or id=ID,env=VAR.")
@click.option("--label", "labels", multiple=True, help="Image label KEY=VALUE.")
@click.option("--annotation", "annotations", multiple=True, help="Manifest/index annotation KEY=VALUE.")
@click.option("--network", type=click.Choice(["default", "none", "host"]), default="default",
              show_default=True, help="Network for RUN steps.")
@click.option("--jobs", type=int, default=4, show_default=True, help="Steps that run at once.")
@click.option("-o", "--output", "outputs", multiple=True,
              help="type=store|registry|oci|docker|local|tar[,dest=PATH][,name=…][,compression=zstd]")
@click.option("--push", is_flag=True, help="Shorthand for --output type=registry.")
@click.option("--metadata-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write build result metadata (digests, descriptors) as JSON.")
@click.option("--iidfile", type=click.Path(dir_okay=False, path_type=Path), help="Write the image digest.")
@click.option("--insecure", is_flag=True, help="Allow plain-HTTP registries for pulls and pushes.")
@click.option("--sbom", "sbom", is_flag=False, flag_value="true", default=None,
              help="Attach an SPDX SBOM to every platform image (--sbom or --sbom=true).")
@click.option("--provenance", is_flag=False, flag_value="mode=min", default=None,
              help="Attach SLSA provenance: --provenance, --provenance=mode=max.")
@click.option("--attest-style", type=click.Choice(["referrers", "buildx"]), default="referrers",
              show_default=True, help="OCI 1.1 referrers, or buildx's unknown/unknown index entries.")
@click.option("--sign", is_flag=True, help="Sign what is pushed/stored (cosign-compatible); needs --key.")
@click.option("--key", "key_path", help="cosign.key for --sign.")
@click.option("--password-env", help="Environment variable holding the key password.")
@click.pass_obj
def build_cmd(g: GlobalOptions, context: Path, dockerfile: Path | None, platforms: tuple[str, ...],
              tags: tuple[str, ...], build_args: tuple[str, ...], target: str | None, no_cache: bool,
              pull: bool, secrets: tuple[str, ...], labels: tuple[str, ...], annotations: tuple[str, ...],
              network: str, jobs: int, outputs: tuple[str, ...], push: bool,
              metadata_file: Path | None, iidfile: Path | None, insecure: bool, sbom: str | None,
              provenance: str | None, attest_style: str, sign: bool, key_path: str | None,
              password_env: str | None) -> None:
    """Build CONTEXT's Dockerfile for every --platform at once, daemonless."""
    from xarch.builder.api import BuildOptions, Output, Secret, build, write_metadata
    from xarch.builder.attestations import AttestOptions
    from xarch.transports.remote.options import RegistryOptions
    from xarch.transports.store import LocalStore

    outs: list[Output] = []
    compression, oci = "gzip", True
    for o in outputs:
        attrs = _csv_attrs(o) if "=" in o else {"type": o}
        t = attrs.pop("type", "store")
        dest = attrs.pop("dest", None)
        if "compression" in attrs:
            compression = attrs["compression"]
        if "oci-mediatypes" in attrs:
            oci = attrs["oci-mediatypes"].lower() != "false"
        outs.append(Output(t, dest, attrs))
    sec = []
    for s in secrets:
        a = _csv_attrs(s)
        if "id" not in a:
            raise UsageError(f"invalid --secret {s!r}", hint="id=ID,src=FILE or id=ID,env=VAR")
        sec.append(Secret(a["id"], src=a.get("src") or a.get("source"), env=a.get("env")))
    prov_mode = None
    if provenance is not None and provenance.lower() not in ("false", "0"):
        attrs = _csv_attrs(provenance) if "=" in provenance else {}
        prov_mode = attrs.get("mode", "min")
        if prov_mode not in ("min", "max"):
            raise UsageError(f"invalid --provenance mode {prov_mode!r}", hint="mode=min or mode=max")
    key = None
    if sign:
        if not key_path:
            raise UsageError("--sign needs --key cosign.key")
        from xarch.cli.attest import load_signing_key

        key = load_signing_key(key_path, password_env)
    attest = AttestOptions(sbom=(sbom or "false").lower() not in ("false", "0"), provenance=prov_mode,
                           style=attest_style, sign_key=key)
    opts = BuildOptions(
        context=context, dockerfile=dockerfile, platforms=_platforms(platforms), tags=tags,
        build_args=_kv(build_args, "--build-arg"), target=target, no_cache=no_cache,
        secrets=tuple(sec), labels=_kv(labels, "--label"), annotations=_kv(annotations, "--annotation"),
        network=network, jobs=jobs, outputs=tuple(outs), push=push, compression=compression,
        oci_media_types=oci, registry_options=RegistryOptions(insecure=insecure), attest=attest,
        pull=pull,
    )
    t0 = time.monotonic()
    res = build(opts, store=LocalStore.default(), on_event=_Printer(g.progress))
    if metadata_file:
        write_metadata(metadata_file, res)
    if iidfile:
        iidfile.write_text(str(res.root.digest))
    if g.progress != "quiet":
        click.echo(
            f"built {res.root.digest} for {', '.join(str(m.platform) for m in res.manifests)} "
            f"in {time.monotonic() - t0:.1f}s: {res.runs} RUN executed, {res.executed} steps run, "
            f"{res.cached} cached" + (f" (runtime {res.runtime})" if res.runtime else ""),
            err=True,
        )
    click.echo(str(res.root.digest))


@click.command("bootstrap")
@click.argument("distro", type=click.Choice(["debian"]))
@click.option("--suite", default="bookworm", show_default=True)
@click.option("--variant", default="minbase", show_default=True, help="mmdebstrap variant.")
@click.option("--include", "include", multiple=True, help="Extra packages, comma-separated.")
@click.option("--platform", "platforms", multiple=True, required=True)
@click.option("--mirror", default="http://deb.debian.org/debian", show_default=True)
@click.option("--busybox-links", is_flag=True, help="Link busybox applets into /bin (busybox-static).")
@click.option("-t", "--tag", "tag", required=True, help="Local store name for the index.")
@click.option("--source-date-epoch", type=int, help="Timestamp for reproducible output.")
@click.pass_obj
def bootstrap_cmd(g: GlobalOptions, distro: str, suite: str, variant: str, include: tuple[str, ...],
                  platforms: tuple[str, ...], mirror: str, busybox_links: bool, tag: str,
                  source_date_epoch: int | None) -> None:
    """Build a reproducible Debian base image for every --platform with mmdebstrap."""
    from xarch.builder.bootstrap import BootstrapOptions, bootstrap
    from xarch.transports.store import LocalStore

    store = LocalStore.default()
    store.content.init()
    pkgs = tuple(p for s in include for p in s.split(",") if p)
    opts = BootstrapOptions(platforms=_platforms(platforms), suite=suite, variant=variant,
                            include=pkgs, mirror=mirror, busybox_links=busybox_links,
                            source_date_epoch=source_date_epoch)
    log = (lambda s: None) if g.progress == "quiet" else (lambda s: click.echo(s, err=True))
    res = bootstrap(store.content, opts, log=log)
    store.set_name(tag, res.root)
    click.echo(str(res.root.digest))


@click.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--platform", help="Platform of the image to run (default: this machine's).")
@click.option("--entrypoint", help="Override the entrypoint.")
@click.option("-e", "--env", "env", multiple=True, help="KEY=VALUE for the process.")
@click.option("--network", type=click.Choice(["host", "none"]), default="host", show_default=True)
@click.option("--insecure", is_flag=True)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run_cmd(platform: str | None, entrypoint: str | None, env: tuple[str, ...], network: str,
            insecure: bool, image: str, command: tuple[str, ...]) -> None:
    """Run IMAGE (store name, registry ref, oci:DIR…) in the OCI runtime, emulated if needed."""
    from xarch.builder.run import ensure_local, run_image
    from xarch.oci.platform import Platform
    from xarch.transports.remote.options import RegistryOptions
    from xarch.transports.store import LocalStore

    store = LocalStore.default()
    ref = ensure_local(store, image, registry_options=RegistryOptions(insecure=insecure))

    def out(chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    o = run_image(store, ref, platform=Platform.parse(platform) if platform else None,
                  args=command, entrypoint=[entrypoint] if entrypoint else None, env=env,
                  network="none" if network == "none" else "host", on_output=out)
    if o.exit_code:
        raise SystemExit(o.exit_code)


@click.command("test")
@click.argument("image")
@click.option("--cmd", help="Shell command to run (default: the image's entrypoint/cmd).")
@click.option("--expect", help="Regex the output must match on every platform.")
@click.option("--expect-machine/--no-expect-machine", default=True, show_default=True,
              help="Fail a platform whose `uname -m` is not that platform's machine.")
@click.option("--platform", "platforms", multiple=True, help="Only these platforms.")
@click.option("--insecure", is_flag=True)
def test_cmd(image: str, cmd: str | None, expect: str | None, expect_machine: bool,
             platforms: tuple[str, ...], insecure: bool) -> None:
    """Run a command on every platform of IMAGE and print a pass/fail table."""
    from rich.console import Console
    from rich.table import Table

    from xarch.builder.run import check_image, ensure_local
    from xarch.transports.remote.options import RegistryOptions
    from xarch.transports.store import LocalStore

    store = LocalStore.default()
    ref = ensure_local(store, image, registry_options=RegistryOptions(insecure=insecure))
    rows = check_image(store, ref, cmd=cmd, expect=expect, expect_machine=expect_machine,
                       platforms=_platforms(platforms) or None)
    table = Table(title=f"xarch test {ref.name}")
    for col in ("platform", "result", "exit", "output", "why"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r.platform), "PASS" if r.ok else "FAIL", str(r.exit_code),
                      r.output.strip().splitlines()[-1] if r.output.strip() else "", r.reason)
    Console(width=160).print(table)
    failed = [r for r in rows if not r.ok]
    click.echo(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise SystemExit(1)


COMMANDS = [build_cmd, bootstrap_cmd, run_cmd, test_cmd]
