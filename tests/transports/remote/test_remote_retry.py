"""RetryTransport: the one place requests are replayed, and what each request allows."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xarch.transports.remote.retry import (
    REPLAY,
    Replay,
    RetryPolicy,
    RetryTransport,
    is_retryable_status,
)


def run(
    answers: list[int | Exception], replay: Replay, retries: int = 5
) -> tuple[httpx.Response | Exception, int, list[float], list[str]]:
    """Send one request through a RetryTransport whose wire gives ``answers`` in turn."""
    sent: list[httpx.Request] = []
    sleeps: list[float] = []
    notes: list[str] = []

    def wire(request: httpx.Request) -> httpx.Response:
        answer = answers[min(len(sent), len(answers) - 1)]
        sent.append(request)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, headers={"Retry-After": "99999"} if answer == 429 else {})

    policy = RetryPolicy(retries, 0.5, 30.0, sleeps.append, notes.append)
    transport = RetryTransport(httpx.MockTransport(wire), policy)
    request = httpx.Request(
        "PATCH", "https://r.test/v2/x/blobs/uploads/u", extensions={REPLAY: replay}
    )
    try:
        result: httpx.Response | Exception = transport.handle_request(request)
    except httpx.TransportError as exc:
        result = exc
    return result, len(sent), sleeps, notes


def test_a_request_that_may_not_be_replayed_is_sent_once() -> None:
    result, sends, sleeps, _ = run([503, 201], Replay.NO)
    assert isinstance(result, httpx.Response) and result.status_code == 503
    assert sends == 1 and sleeps == []
    result, sends, _, _ = run([httpx.ReadError("reset"), 201], Replay.NO)
    assert isinstance(result, httpx.ReadError) and sends == 1


def test_a_probe_takes_a_refusal_as_the_answer() -> None:
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    result, sends, sleeps, _ = run([refused, 200], Replay.PROBE)
    assert isinstance(result, httpx.ConnectError) and sends == 1 and sleeps == []
    result, sends, _, _ = run([httpx.ConnectError("[Errno 104] reset by peer"), 200], Replay.PROBE)
    assert isinstance(result, httpx.Response) and result.status_code == 200 and sends == 2
    result, sends, _, _ = run([refused, 200], Replay.YES)  # mid-operation: maybe a restart
    assert isinstance(result, httpx.Response) and sends == 2


def test_tls_failures_are_not_retried() -> None:
    tls = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    result, sends, _, _ = run([tls, 200], Replay.YES)
    assert isinstance(result, httpx.ConnectError) and sends == 1


def test_a_hostile_retry_after_is_capped() -> None:
    result, _, sleeps, notes = run([429, 200], Replay.YES)
    assert isinstance(result, httpx.Response) and result.status_code == 200
    assert sleeps == [60.0]
    assert notes == ["PATCH /v2/x/blobs/uploads/u: HTTP 429 (attempt 2/6, waiting 60.0s)"]


@given(
    answers=st.lists(
        st.sampled_from([200, 201, 404, 408, 429, 500, 501, 502, 503]), min_size=1, max_size=8
    ),
    retries=st.integers(0, 4),
)
def test_replays_stop_at_the_first_real_answer_or_the_bound(
    answers: list[int], retries: int
) -> None:
    result, sends, sleeps, notes = run(list(answers), Replay.YES, retries)

    def seen(i: int) -> int:  # the wire repeats its last answer
        return answers[min(i, len(answers) - 1)]

    real = next((i for i in range(retries + 1) if not is_retryable_status(seen(i))), retries)
    assert sends == real + 1
    assert len(sleeps) == len(notes) == real
    assert isinstance(result, httpx.Response) and result.status_code == seen(real)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 416, 501])
def test_definitive_answers_are_returned_at_once(status: int) -> None:
    result, sends, _, _ = run([status, 200], Replay.YES)
    assert isinstance(result, httpx.Response) and result.status_code == status and sends == 1
