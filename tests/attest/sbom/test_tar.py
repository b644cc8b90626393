from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xarch.attest.sbom._tar import DIR, LNK, OTHER, REG, SYM, TarFormatError, TarReader

_KIND = {tarfile.REGTYPE: REG, tarfile.DIRTYPE: DIR, tarfile.SYMTYPE: SYM, tarfile.LNKTYPE: LNK,
         tarfile.FIFOTYPE: OTHER}  # fmt: skip
_seg = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-é", min_size=1, max_size=60)
_entry = st.tuples(
    st.lists(_seg, min_size=1, max_size=5).map("/".join),
    st.sampled_from(list(_KIND)),
    st.binary(max_size=1500),
    st.lists(_seg, min_size=1, max_size=4).map("/".join),
    st.integers(0, 0o7777),
)


def _archive(entries: list[tuple[str, bytes, bytes, str, int]], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, typ, data, link, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime = typ, mode, 0
            if typ == tarfile.REGTYPE:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                if typ in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                    ti.linkname = link
                tf.addfile(ti)
    return buf.getvalue()


class _Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes per read (as a decompressor may), so
    headers and contents straddle the reader's chunks."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._pos, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self._step if n < 0 else min(n, self._step)
        out = self._data[self._pos : self._pos + n]
        self._pos += len(out)
        return out


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_entry, max_size=8),
    st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]),
    st.integers(0, 10),
    st.one_of(st.none(), st.integers(1, 1100)),
)
def test_matches_tarfile(
    entries: list[tuple[str, bytes, bytes, str, int]], fmt: int, read_every: int, step: int | None
) -> None:
    try:
        raw = _archive(entries, fmt)
    except ValueError:
        return  # ustar cannot hold such a long name: nothing to compare
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        want = [(m.name, _KIND[m.type], m.size if m.isreg() else 0, m.linkname, m.mode,
                 tf.extractfile(m).read() if m.isreg() else b"")  # type: ignore[union-attr]
                for m in tf]  # fmt: skip
    got = []
    r = TarReader(io.BytesIO(raw) if step is None else _Trickle(raw, step))  # type: ignore[arg-type]
    for i, m in enumerate(r):
        # read some contents, skip others: both must leave the stream at the next header
        data = r.read_content() if read_every and i % read_every == 0 else None
        got.append((m.name, m.type, m.size, m.linkname, m.mode, data))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g[:5] == w[:5]
        if g[5] is not None:
            assert g[5] == w[5]


def test_long_names_and_sizes() -> None:
    name = "d/" * 80 + "file"
    raw = _archive([(name, tarfile.REGTYPE, b"x" * 3000, "", 0o644)], tarfile.PAX_FORMAT)
    r = TarReader(io.BytesIO(raw))
    (m,) = list(r)
    assert m.name == name and m.size == 3000


def test_corrupt_header_and_truncation() -> None:
    raw = bytearray(_archive([("a", tarfile.REGTYPE, b"hello", "", 0o644)], tarfile.PAX_FORMAT))
    raw[0] ^= 1
    with pytest.raises(TarFormatError, match="checksum"):
        list(TarReader(io.BytesIO(bytes(raw))))
    trunc = _archive([("a", tarfile.REGTYPE, b"h" * 2000, "", 0o644)], tarfile.PAX_FORMAT)
    with pytest.raises(TarFormatError, match="end of tar"):
        list(TarReader(io.BytesIO(trunc[:1100])))
    assert list(TarReader(io.BytesIO(b""))) == []


def test_partial_reads() -> None:
    raw = _archive([("a", tarfile.REGTYPE, bytes(range(256)) * 10, "", 0o644),
                    ("b", tarfile.REGTYPE, b"second", "", 0o644)], tarfile.GNU_FORMAT)  # fmt: skip
    r = TarReader(io.BytesIO(raw))
    it = iter(r)
    next(it)
    assert r.read(3) == b"\x00\x01\x02"
    assert r.read(2) == b"\x03\x04"
    m = next(it)
    assert m.name == "b" and r.read_content() == b"second"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 2999), st.binary(min_size=1, max_size=8))
def test_mangled_archives_fail_cleanly(prefix: bytes, at: int, junk: bytes) -> None:
    raw = bytearray(_archive([("a/b", tarfile.REGTYPE, prefix, "", 0o644)], tarfile.PAX_FORMAT))
    at %= len(raw)
    raw[at : at + len(junk)] = junk
    r = TarReader(io.BytesIO(bytes(raw)))
    try:
        for _ in r:
            r.read_content()
    except TarFormatError:
        pass
