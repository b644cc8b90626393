"""The differential tier: every corpus case built by xarch and by Docker BuildKit, compared.

One test per (case, platform). A difference fails with one line per difference
(``path: field: xarch=… docker=…``). Cases Docker 20.10 cannot build are checked against
hand-written expectations (case.toml ``[expect]``) and, where the case gives one, against
Docker's build of an equivalent Dockerfile.
"""

from __future__ import annotations

import pytest

from conformance.differential import ImageView, check_expectations, diff_images
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
    problems: list[str] = []
    if built.xarch_error:
        theirs_note = (f"docker failed too: {built.docker_error}" if built.docker_error
                       else "docker built it" if built.docker else "")
        pytest.fail(f"{case.name} [{platform}]: xarch build failed: {built.xarch_error}\n"
                    f"{theirs_note}", pytrace=False)
    ours = _pick(built.xarch, platform)
    if built.docker_error:
        pytest.fail(f"{case.name} [{platform}]: docker build failed (harness or corpus "
                    f"problem): {built.docker_error}", pytrace=False)
    if built.docker:
        theirs = _pick(built.docker, platform)
        diffs = diff_images(ours, theirs, history=case.compare_history,
                            ignore_paths=case.spec.get("ignore_paths", ()),
                            mount_targets=case.mount_targets)
        # Docker 20.10 is wrong here and docs/compat.md says why; anything else still fails
        accepted = set(case.spec.get("docker_deviations") or ())
        problems += [d for d in diffs if d not in accepted]
    expect = case.spec.get("expect")
    if expect:
        per_platform = (expect.get("platform") or {}).get(platform.replace("/", "_"), {})
        problems += check_expectations(ours, {**expect, **per_platform})
    if not built.docker and not expect:
        pytest.fail(f"{case.name}: nothing to compare with (no docker build, no [expect])")
    if problems:
        pytest.fail(f"{case.name} [{platform}]: {len(problems)} difference(s):\n  "
                    + "\n  ".join(problems), pytrace=False)
