"""Stage graphs deeper than Python's recursion limit: long FROM chains and long dependency
chains (BuildKit walks them without a depth limit)."""

from __future__ import annotations

import pytest

from xarch.frontend.dockerfile.errors import DockerfileError
from xarch.frontend.dockerfile.parser import parse
from xarch.frontend.dockerfile.stages import parse_stages
from xarch.oci.platform import Platform

AMD64 = Platform("linux", "amd64")
N = 3000


def _from_chain(n: int) -> str:
    return "FROM scratch AS s0\nENV X=0\n" + "".join(
        f"FROM s{i} AS s{i + 1}\nENV X=${{X}}.{i + 1}\n" for i in range(n)
    )


@pytest.mark.timeout(120)
def test_long_from_chain_expands_from_the_last_stage() -> None:
    plan = parse_stages(parse(_from_chain(N)), target_platform=AMD64)
    # asked for the last stage first: nothing above it is expanded yet
    (cmd,) = plan.stage_commands(N)
    assert dict(plan.final_state(N).env)["X"] == "0." + ".".join(str(i) for i in range(1, N + 1))
    assert cmd is not None
    assert len(plan.expand_all(only_needed=False)) == N + 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("cycle", [False, True])
def test_long_dependency_chain_and_cycle(cycle: bool) -> None:
    # stage i copies from stage i+1 (defined later): the cycle check walks N deep before the
    # order check rejects the forward reference; either way one clean error, no crash
    df = "".join(f"FROM scratch AS s{i}\nCOPY --from=s{i + 1} /a /a\n" for i in range(N))
    df += f"FROM scratch AS s{N}\n" + ("COPY --from=s0 /a /a\n" if cycle else "")
    want = "circular dependency detected on stage: s0" if cycle else "needs to be defined before"
    with pytest.raises(DockerfileError, match=want):
        parse_stages(parse(df), target_platform=AMD64, all_stages=True)
