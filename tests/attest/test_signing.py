"""Whole-image sign/verify over the local store: every platform manifest, and identity."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from helpers.images import make_index, write_image
from xarch.attest.signing import open_target, sign, verify
from xarch.errors import VerificationError
from xarch.transports.store import LocalStore


def test_signature_holds_for_its_digest_under_another_name(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store", fsync=False)
    img = make_index(["linux/amd64", "linux/arm64"])
    write_image(store.sink("team/app:1"), img)
    key = ec.generate_private_key(ec.SECP256R1())
    signed = sign(open_target("team/app:1", local=store), key)
    assert len(signed) == 3  # the index and both platform manifests
    pub = key.public_key()
    assert len(verify(open_target("team/app:1", local=store), pub, check_identity=True)) == 3

    # the same image (same digests) under another repository, signatures copied as they are
    write_image(store.sink("mirror/app:1"), img)
    for subject, sig in signed:
        tag = f"sha256-{subject.digest.hex}.sig"
        store.set_name(f"docker.io/mirror/app:{tag}", sig)
    mirror = open_target("mirror/app:1", local=store)
    assert len(verify(mirror, pub)) == 3  # cosign semantics: the digest is what is signed
    want = "claims index.docker.io/team/app, not index.docker.io/mirror/app"
    with pytest.raises(VerificationError, match=re.escape(want)):
        verify(mirror, pub, check_identity=True)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(VerificationError):
        verify(mirror, other)
