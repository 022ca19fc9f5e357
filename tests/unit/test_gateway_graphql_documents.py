"""Validated GraphQL documents are reused by query text: the answers are those of a fresh parse,
with each request's own variables; a refused query is refused every time; the memo is bounded."""

from __future__ import annotations

import asyncio

from pyao.data import DataItem, Ed25519Signer
from pyao.gateway import _graphql, open_store
from pyao.gateway._core import prepare_upload

SIGNER = Ed25519Signer.from_seed(bytes([77]) * 32)
QUERY = "query($ids:[ID!]){transactions(ids:$ids){edges{node{id tags{name value}}}}}"


def test_documents_are_reused_with_each_requests_variables():
    async def scenario() -> None:
        store = open_store("sqlite://:memory:")
        items = [DataItem.create(f"{n}", signer=SIGNER, tags=[("N", str(n))]) for n in range(3)]
        for item in items:
            await store.put(prepare_upload(item.to_bytes()))
        _graphql._VALID_DOCUMENTS.clear()
        for item in items:
            answer = await _graphql.run_query(store, {"query": QUERY, "variables": {"ids": [item.id]}})
            assert answer.status == 200
            (edge,) = answer.body["data"]["transactions"]["edges"]
            assert edge["node"]["id"] == item.id and edge["node"]["tags"] == [{"name": "N", "value": item.tag("N")}]
        assert list(_graphql._VALID_DOCUMENTS) == [QUERY]
        for bad in (
            "query{nope}",
            "query{",
            "{" + " ".join(f"a{n}: blocks{{edges{{cursor}}}}" for n in range(99)) + "}",
        ):
            for _ in range(2):
                answer = await _graphql.run_query(store, {"query": bad})
                assert answer.status == 400 and answer.body["errors"]
        assert list(_graphql._VALID_DOCUMENTS) == [QUERY]
        await store.close()

    asyncio.run(scenario())


def test_the_document_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(_graphql, "_VALID_DOCUMENTS_MAX", 3)
    _graphql._VALID_DOCUMENTS.clear()
    queries = [f"query{{ transactions(first: {n}) {{ edges {{ cursor }} }} }}" for n in range(1, 6)]
    for q in queries:
        assert not isinstance(_graphql._valid_document(q), _graphql.GraphQLAnswer)
    assert list(_graphql._VALID_DOCUMENTS) == queries[2:]
