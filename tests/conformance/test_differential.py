"""The differential tier: every corpus case built by xarch and by BuildKit v0.32, compared.

One test per (case, platform). A difference fails with one line per difference
(``path: field: xarch=… buildkit=…``). A case's hand-written expectations (case.toml
``[expect]``) are checked against both images: BuildKit missing one means the case is wrong.
A difference the case records (``deviations``: xarch differs on purpose; ``known_differences``:
an xarch bug not fixed yet; both listed in docs/compat.md) is accepted only as that exact line,
and a recorded line that no longer occurs fails, so a fix or a BuildKit change is noticed.
"""

from __future__ import annotations

import pytest

from conformance.differential import (
    ImageView,
    accept_recorded,
    check_expectations,
    diff_images,
)
from conformance.harness import Case, Harness, load_cases

pytestmark = [pytest.mark.conformance, pytest.mark.integration, pytest.mark.slow]


def _params() -> list[object]:
    out: list[object] = []
    for case in load_cases():
        marks = []
        if case.spec.get("xfail"):
            marks.append(pytest.mark.xfail(strict=True, reason=str(case.spec["xfail"])))
        for p in case.platforms:
            out.append(pytest.param(case, p, id=f"{case.name}[{p}]", marks=marks))
    return out


def _pick(views: dict[str, ImageView], platform: str) -> ImageView:
    from xarch.oci.platform import Platform

    want = Platform.parse(platform)
    for key, view in views.items():
        if key == platform or Platform.parse(key).matches(want) or want.matches(Platform.parse(key)):
            return view
    raise AssertionError(f"no image for {platform} (have: {', '.join(views)})")


def test_corpus_size() -> None:
    cases = load_cases()
    assert len(cases) >= 40, f"the corpus must hold at least 40 Dockerfiles, it has {len(cases)}"
    for c in cases:
        assert len(c.platforms) >= 2, f"{c.name}: at least two platforms (one emulated)"


@pytest.mark.parametrize(("case", "platform"), _params())
def test_differential(harness: Harness, case: Case, platform: str) -> None:
    built = harness.get(case.name)
    if built.buildkit_error:
        pytest.fail(f"{case.name} [{platform}]: BuildKit failed (harness or corpus problem): "
                    f"{built.buildkit_error}"
                    + (f"\nxarch failed too: {built.xarch_error}" if built.xarch_error else ""),
                    pytrace=False)
    if built.xarch_error:
        pytest.fail(f"{case.name} [{platform}]: xarch build failed: {built.xarch_error}\n"
                    "BuildKit built it", pytrace=False)
    ours, theirs = _pick(built.xarch, platform), _pick(built.buildkit, platform)
    expect = case.spec.get("expect")
    if expect:
        expect = {**expect, **(expect.get("platform") or {}).get(platform.replace("/", "_"), {})}
        wrong = check_expectations(theirs, expect, who="buildkit")
        if wrong:
            pytest.fail(f"{case.name} [{platform}]: the case's [expect] is wrong, BuildKit "
                        "disagrees:\n  " + "\n  ".join(wrong), pytrace=False)
    problems = diff_images(ours, theirs, ignore_paths=case.spec.get("ignore_paths", ()))
    # the HTTP server's port changes every session: recorded lines name it @HTTP@
    problems = [p.replace(harness.http_url, "@HTTP@") for p in problems]
    problems = accept_recorded(problems, case.spec)
    if expect:
        problems += check_expectations(ours, expect)
    if problems:
        pytest.fail(f"{case.name} [{platform}]: {len(problems)} difference(s):\n  "
                    + "\n  ".join(problems), pytrace=False)
