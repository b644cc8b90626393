"""Supply-chain commands: ``xarch key generate``, ``sign``, ``verify`` (cosign-compatible)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from xarch.cli.main import GlobalOptions
from xarch.errors import InputError

if TYPE_CHECKING:
    from xarch.attest.keys import PrivateKey


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None


def load_signing_key(path: str, password_env: str | None) -> PrivateKey:
    from xarch.attest.keys import load_private_key, password_from

    pem = _read(path, "key file")
    return load_private_key(pem, password_from(password_env, True), source=path)


@click.group("key")
def key_group() -> None:
    """Key pairs in cosign's format."""


@key_group.command("generate")
@click.option("--output-prefix", default="cosign", show_default=True, help="Writes PREFIX.key and PREFIX.pub.")
@click.option("--dir", "directory", default=".", show_default=True, type=click.Path(file_okay=False))
@click.option("--password-env", help="Environment variable holding the password (else COSIGN_PASSWORD, else a prompt).")
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
def key_generate(output_prefix: str, directory: str, password_env: str | None, force: bool) -> None:
    """Generate an ECDSA P-256 key pair (ENCRYPTED SIGSTORE PRIVATE KEY, as cosign)."""
    from xarch.attest.keys import generate_key_pair, password_from, write_key_pair

    pw = password_from(password_env, True, confirm=True)
    key, pub = write_key_pair(Path(directory), generate_key_pair(pw), output_prefix, force=force)
    click.echo(f"Private key written to {key}")
    click.echo(f"Public key written to {pub}")


@click.command("sign")
@click.argument("image")
@click.option("--key", "key_path", required=True, help="cosign.key (encrypted private key).")
@click.option("--password-env", help="Environment variable holding the key password.")
@click.option("-a", "--annotation", "annotations", multiple=True, help="KEY=VALUE added to the payload.")
@click.option("--recursive/--no-recursive", default=True, show_default=True,
              help="Also sign every platform manifest of an index.")
@click.option("--insecure", is_flag=True)
@click.pass_obj
def sign_cmd(g: GlobalOptions, image: str, key_path: str, password_env: str | None,
             annotations: tuple[str, ...], recursive: bool, insecure: bool) -> None:
    """Sign IMAGE (registry ref or local store name) as cosign does (sha256-<hex>.sig tags)."""
    from xarch.attest.signing import open_target, parse_annotations, sign
    from xarch.transports.remote.options import RegistryOptions

    key = load_signing_key(key_path, password_env)
    t = open_target(image, registry_options=RegistryOptions(insecure=insecure))
    try:
        for subject, sig in sign(t, key, recursive=recursive, annotations=parse_annotations(annotations) or None):
            what = f" ({subject.platform})" if subject.platform else ""
            click.echo(f"signed {subject.digest}{what} -> {sig.digest}")
    finally:
        t.close()


@click.command("verify")
@click.argument("image")
@click.option("--key", "key_path", required=True, help="cosign.pub (PEM public key).")
@click.option("-a", "--annotation", "annotations", multiple=True, help="Required payload annotation KEY=VALUE.")
@click.option("--recursive/--no-recursive", default=True, show_default=True,
              help="Also verify every platform manifest of an index.")
@click.option("--check-identity", is_flag=True,
              help="Also require each signature to claim IMAGE's repository (cosign does not: a "
                   "signature holds for its digest wherever the image is copied).")
@click.option("--insecure", is_flag=True)
def verify_cmd(image: str, key_path: str, annotations: tuple[str, ...], recursive: bool,
               check_identity: bool, insecure: bool) -> None:
    """Verify IMAGE's cosign signatures; fails (exit 1) unless every subject verifies."""
    from xarch.attest.keys import load_public_key
    from xarch.attest.signing import open_target, parse_annotations, verify
    from xarch.transports.remote.options import RegistryOptions

    pub = load_public_key(_read(key_path, "public key"), source=key_path)
    t = open_target(image, registry_options=RegistryOptions(insecure=insecure))
    try:
        for subject, sigs in verify(t, pub, recursive=recursive, check_identity=check_identity,
                                   annotations=parse_annotations(annotations) or None):
            what = f" ({subject.platform})" if subject.platform else ""
            click.echo(f"verified {subject.digest}{what}: {len(sigs)} signature(s)")
    finally:
        t.close()


@click.command("attestations")
@click.argument("image")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--insecure", is_flag=True)
def attestations_cmd(image: str, fmt: str, insecure: bool) -> None:
    """List what is attached to IMAGE and each of its platforms: OCI referrers (SBOM,
    provenance…), cosign signature tags, and buildx-style attestation manifests."""
    import json

    from xarch.attest import referrers as refs
    from xarch.attest.signing import open_target
    from xarch.transports.remote.options import RegistryOptions
    from xarch.transports.store import LocalStore

    opts = RegistryOptions(insecure=insecure)
    t = open_target(image, registry_options=opts)
    try:
        from xarch.attest.signing import RegistrySignatureStore

        if isinstance(t.store, RegistrySignatureStore):
            target: refs.ReferrerTarget = refs.RegistryTarget(t.store.client, t.store.repo)
        else:
            target = refs.LocalTarget.for_store(LocalStore.default(), image.removeprefix("store:"))
        rows = refs.attachments(target, t.root)
    finally:
        t.close()
    if fmt == "json":
        click.echo(json.dumps([{
            "subject": a.subject.to_json(),
            "referrers": [r.to_json() for r in a.referrers],
            "cosign": {tag: d.to_json() for tag, d in a.cosign_tags},
            "buildx": [b.to_json() for b in a.buildx],
        } for a in rows], indent=2))
        return
    for a in rows:
        what = str(a.subject.platform) if a.subject.platform else "index/root"
        click.echo(f"{a.subject.digest} ({what})")
        for r in a.referrers:
            pred = r.annotations.get("in-toto.io/predicate-type", "")
            click.echo(f"  referrer  {r.artifact_type or r.media_type}  {r.digest}" + (f"  {pred}" if pred else ""))
        for tag, d in a.cosign_tags:
            click.echo(f"  cosign    {tag}  {d.digest}")
        for b in a.buildx:
            click.echo(f"  buildx    attestation-manifest  {b.digest}")
        if not (a.referrers or a.cosign_tags or a.buildx):
            click.echo("  (nothing attached)")


@click.command("sbom")
@click.argument("image")
@click.option("--platform", "platforms", multiple=True, help="Only these platforms (default: all).")
@click.option("--format", "fmt", type=click.Choice(["spdx-json", "cyclonedx-json"]), default="spdx-json",
              show_default=True)
@click.option("-o", "--output", "output", type=click.Path(dir_okay=True, path_type=Path),
              help="File (one platform) or directory (one file per platform); default stdout.")
@click.option("--insecure", is_flag=True)
def sbom_cmd(image: str, platforms: tuple[str, ...], fmt: str, output: Path | None, insecure: bool) -> None:
    """SBOM of IMAGE (any location): one document per platform image, never one for an index.
    Catalogs dpkg, apk, rpm, Python, npm and Go binaries from the layers, whiteouts applied."""
    from xarch.attest.sbom.api import generate_sboms
    from xarch.oci.platform import parse_platforms
    from xarch.transports.remote.options import RegistryOptions
    from xarch.transports.store import LocalStore

    wanted = parse_platforms(platforms) or None
    docs = generate_sboms(image, platforms=wanted, fmt=fmt, registry_options=RegistryOptions(insecure=insecure),
                          store=LocalStore.default())
    if output is None:
        if len(docs) > 1:
            raise InputError(f"{image} has {len(docs)} platforms: pass --platform or -o DIR")
        click.echo(next(iter(docs.values())).decode())
        return
    if len(docs) == 1 and not output.is_dir():
        output.write_bytes(next(iter(docs.values())))
        click.echo(str(output))
        return
    output.mkdir(parents=True, exist_ok=True)
    ext = "spdx.json" if fmt == "spdx-json" else "cdx.json"
    for p, doc in sorted(docs.items(), key=lambda kv: str(kv[0])):
        f = output / f"{str(p).replace('/', '_')}.{ext}"
        f.write_bytes(doc)
        click.echo(str(f))


COMMANDS = [key_group, sign_cmd, verify_cmd, attestations_cmd, sbom_cmd]
