"""Fuzz the MU's HTTP endpoints (real gateway + SU + CU behind it): hostile input never gets a 5xx."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._mu import mu_network


@pytest.fixture(scope="module")
def mu(tmp_path_factory):
    with mu_network(tmp_path_factory.mktemp("mu-fuzz")) as n:
        n.pid = n.spawn([("Name", "fuzzed")])
        n.good = n.message(n.pid, [("Action", "Count")], data="fuzz").to_bytes()
        yield n


ids = st.one_of(st.just("A" * 43), st.text(max_size=50), st.sampled_from(["", "x" * 43, "-" * 43]))
params = st.dictionaries(st.sampled_from(["process-id", "assign", "base-layer", "exclude", "debug"]), ids, max_size=4)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT"]),
    where=st.sampled_from(["/", "/monitor/"]),
    target=ids,
    query=params,
    body=st.binary(max_size=600),
    mutate=st.one_of(st.none(), st.tuples(st.integers(0, 10_000), st.integers(0, 255)), st.integers(0, 10_000)),
)
def test_no_5xx(mu, method, where, target, query, body, mutate):
    if isinstance(mutate, tuple):  # flip a byte of a valid item
        raw = bytearray(mu.good)
        raw[mutate[0] % len(raw)] ^= mutate[1] or 1
        body = bytes(raw)
    elif isinstance(mutate, int):  # truncate a valid item
        body = mu.good[: mutate % len(mu.good)]
    path = where + (target if where != "/" else "")
    try:
        r = httpx.request(method, mu.mu + path, params=query, content=body, timeout=30)
    except httpx.InvalidURL:
        return
    assert r.status_code < 500, (method, path, query, r.status_code, r.text)
    if r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/json"):
        assert "error" in r.json()


def test_monitor_body_is_an_item(mu):
    r = httpx.post(f"{mu.mu}/monitor/{mu.pid}", content=b"not an item")
    assert r.status_code == 400 and "error" in r.json()
