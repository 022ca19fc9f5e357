"""Hostile HTTP input: no request to the gateway gets a 5xx, and refused ones change nothing."""

from __future__ import annotations

import json
from urllib.parse import quote

import anyio.from_thread
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyao.config import GatewayConfig
from pyao.data import Bundle, DataItem, Ed25519Signer
from pyao.gateway import create_app, open_store

ED = Ed25519Signer.from_seed(b"\x05" * 32)
ITEM = DataItem.create(b"0123456789" * 10, signer=ED, tags=[("Type", "Process"), ("Content-Type", "text/plain")])
BUNDLE = Bundle.of([ITEM, DataItem.create(b"x", signer=ED)]).to_item(ED)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class _SyncClient:
    """httpx over ASGITransport (app exceptions raise), driven from sync hypothesis tests."""

    def __init__(self, portal, http: httpx.AsyncClient) -> None:
        self.portal, self.http = portal, http

    def request(self, method: str, path: str, **kwargs):
        async def call():
            response = await self.http.request(method, "http://gateway" + path, **kwargs)
            await response.aread()
            return response

        return self.portal.call(call)

    def post(self, path: str, **kwargs):
        return self.request("POST", path, **kwargs)


@pytest.fixture(scope="module")
def client():
    store = open_store("sqlite://:memory:")
    app = create_app(store, GatewayConfig(block_seconds=0, max_upload_bytes=4096))
    with anyio.from_thread.start_blocking_portal() as portal:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")
        client = _SyncClient(portal, http)
        assert client.post("/tx/arweave", content=BUNDLE.to_bytes()).status_code == 200
        yield client
        portal.call(http.aclose)
        portal.call(store.close)


def _ok(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    json_type = response.headers.get("content-type", "").startswith("application/json")
    if response.status_code >= 400 and json_type and response.request.method != "HEAD":
        body = response.json()
        assert "error" in body or "errors" in body


segment = st.one_of(
    st.sampled_from(
        [ITEM.id, BUNDLE.id, "n" * 42 + "A", "raw", "tx", "status", "block", "height", "graphql", "0", "-1"]
    ),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=50).map(lambda t: quote(t, safe="")),
)
paths = st.lists(segment, min_size=0, max_size=4).map(lambda parts: "/" + "/".join(parts))
ranges = st.one_of(
    st.none(),
    st.from_regex(r"bytes=-?\d{0,25}-?\d{0,25}(,\d*-\d*)?", fullmatch=True),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)


@SETTINGS
@given(method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]), path=paths, range_=ranges)
def test_any_path_any_method(client, method, path, range_):
    headers = {"range": range_.encode("utf-8")} if range_ is not None else {}
    _ok(client.request(method, path, headers=headers))


def _mutate(raw: bytes, data) -> bytes:
    ops = data.draw(st.lists(st.tuples(st.integers(0, len(raw)), st.binary(max_size=8), st.integers(0, 8)), max_size=4))
    for at, insert, cut in ops:
        raw = raw[:at] + insert + raw[at + cut :]
    return raw


@SETTINGS
@given(data=st.data())
def test_uploads_of_mutated_items(client, data):
    before = _count(client)
    base = data.draw(st.sampled_from([ITEM.to_bytes(), BUNDLE.to_bytes(), b""]))
    body = _mutate(base, data) if data.draw(st.booleans()) else data.draw(st.binary(max_size=5000))
    response = client.post(data.draw(st.sampled_from(["/tx/arweave", "/tx"])), content=body)
    _ok(response)
    if response.status_code != 200:
        assert _count(client) == before
    else:
        assert response.json()["id"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
QUERIES = [
    "query ($ids: [ID!], $first: Int, $after: String) { transactions(ids: $ids, first: $first, after: $after) "
    "{ pageInfo { hasNextPage } edges { cursor node { id tags { name value } data { size type } block { height } } } } "
    "}",
    "query ($tags: [TagFilter!], $owners: [String!], $sort: SortOrder) { transactions(tags: $tags, owners: $owners, "
    "sort: $sort) { edges { node { id owner { address key } recipient anchor bundledIn { id } } } } }",
    "query ($min: Int!, $limit: Int!, $after: String) { blocks(height: {min: $min}, first: $limit, after: $after, "
    "sort: HEIGHT_ASC) { pageInfo { hasNextPage } edges { cursor node { timestamp height id previous } } } }",
    "query ($block: BlockFilter, $b: [ID!]) { transactions(block: $block, bundledIn: $b) { edges { cursor } } }",
]
variables = st.fixed_dictionaries(
    {},
    optional={
        "ids": json_values,
        "first": json_values,
        "after": json_values,
        "tags": st.lists(
            st.fixed_dictionaries({"name": st.text(max_size=10), "values": st.lists(st.text(max_size=10), max_size=3)}),
            max_size=3,
        )
        | json_values,
        "owners": json_values,
        "sort": st.sampled_from(["HEIGHT_ASC", "HEIGHT_DESC", "nope"]) | json_values,
        "min": json_values,
        "limit": json_values,
        "block": st.fixed_dictionaries({}, optional={"min": st.integers(-(2**40), 2**40), "max": json_values}),
        "b": json_values,
    },
)


@SETTINGS
@given(query=st.sampled_from(QUERIES) | st.text(max_size=200), variables=variables | json_values)
def test_graphql_with_hostile_variables(client, query, variables):
    _ok(client.post("/graphql", json={"query": query, "variables": variables}))


@SETTINGS
@given(body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_graphql_with_hostile_bodies(client, body):
    _ok(client.post("/graphql", content=body))


def _count(client) -> int:
    query = "{ transactions(first: 100) { edges { cursor } } }"
    return len(client.post("/graphql", json={"query": query}).json()["data"]["transactions"]["edges"])
