from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xarch.attest.sbom._spdx_ids import EXCEPTION_IDS, LICENSE_IDS
from xarch.attest.sbom.licenses import license_ref, normalize, to_expression


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("MIT", "MIT"),
        ("mit", "MIT"),
        ("Expat", "MIT"),
        ("GPL-2+", "GPL-2.0-or-later"),
        ("GPL-2", "GPL-2.0-only"),
        ("GPL-2.0+", "GPL-2.0-or-later"),
        ("LGPL-2.1+", "LGPL-2.1-or-later"),
        ("GPLv3+", "GPL-3.0-or-later"),
        ("BSD-3-clause", "BSD-3-Clause"),
        ("Artistic or GPL-1+", "Artistic-1.0-Perl OR GPL-1.0-or-later"),
        ("(MIT OR Apache-2.0)", "MIT OR Apache-2.0"),
        ("(MIT OR Apache-2.0) AND Zlib", "(MIT OR Apache-2.0) AND Zlib"),
        ("GPL-2.0-or-later WITH Classpath-exception-2.0",
         "GPL-2.0-or-later WITH Classpath-exception-2.0"),
        ("MIT, BSD-2-Clause", "MIT AND BSD-2-Clause"),
        ("LicenseRef-custom", "LicenseRef-custom"),
        ("public-domain", None),
        ("GPL-2+ with OpenSSL exception", None),
        ("MIT AND", None),
        ("(MIT", None),
        ("MIT)", None),
        ("Some License 1.0", None),
        ("", None),
    ],
)  # fmt: skip
def test_to_expression(raw: str, want: str | None) -> None:
    assert to_expression(raw) == want


def test_license_ref_and_normalize() -> None:
    assert license_ref("GPL-2+ with OpenSSL exception") == "LicenseRef-GPL-2-with-OpenSSL-exception"
    exprs, refs = normalize(["Expat", "MIT", "public-domain"])
    assert exprs == ["MIT", "LicenseRef-public-domain"]
    assert refs == {"LicenseRef-public-domain": "public-domain"}


def test_id_list_is_loaded() -> None:
    assert {"MIT", "Apache-2.0", "GPL-2.0-only", "0BSD"} <= LICENSE_IDS
    assert "Classpath-exception-2.0" in EXCEPTION_IDS
    assert len(LICENSE_IDS) > 600


_ids = st.sampled_from(sorted(LICENSE_IDS))


@st.composite
def _expr(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 2 or draw(st.booleans()):
        return draw(_ids)
    op = draw(st.sampled_from([" AND ", " OR ", " and ", " or "]))
    left, right = draw(_expr(depth + 1)), draw(_expr(depth + 1))
    return f"({left}{op}{right})" if draw(st.booleans()) else f"{left}{op}{right}"


@settings(max_examples=200, deadline=None)
@given(_expr())
def test_valid_expressions_normalise_idempotently(raw: str) -> None:
    out = to_expression(raw)
    assert out is not None
    assert to_expression(out) == out


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_anything_becomes_valid_or_a_ref(raw: str) -> None:
    exprs, refs = normalize([raw])
    for e in exprs:
        assert e in refs or to_expression(e) == e
