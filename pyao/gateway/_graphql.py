"""``POST /graphql``: the Arweave GraphQL subset the official ao software sends.

The schema follows arweave.net's (types, argument names and defaults), so the
queries of aoconnect, scheduler-utils, the CU, MU and SU validate unchanged.
Resolvers turn arguments into a ``TransactionQuery``/``BlockQuery`` and ask the
store; the nodes are plain dicts the default resolvers read.

Answers: a query that does not parse or validate gets HTTP 400 with
``{"errors": [...]}``; errors while resolving (a bad cursor, ``first`` < 0)
come back as GraphQL errors with HTTP 200; a store failure is HTTP 503.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from inspect import isawaitable
from typing import Any

from graphql import GraphQLError, build_schema, execute, parse, validate

from pyao.abc import GatewayStore
from pyao.data import b64url_encode
from pyao.errors import PyaoError, RequestError, StoreError, UnitError
from pyao.gateway._model import (
    DEFAULT_PAGE,
    Block,
    BlockQuery,
    ItemRecord,
    Page,
    Sort,
    TagFilter,
    TransactionQuery,
)

SDL = """
type Query {
  transaction(id: ID!): Transaction
  transactions(
    ids: [ID!], owners: [String!], recipients: [String!], tags: [TagFilter!],
    bundledIn: [ID!], block: BlockFilter, first: Int = 10, after: String, sort: SortOrder = HEIGHT_DESC
  ): TransactionConnection!
  block(id: String): Block
  blocks(
    ids: [ID!], height: BlockFilter, first: Int = 10, after: String, sort: SortOrder = HEIGHT_DESC
  ): BlockConnection!
}
enum SortOrder { HEIGHT_ASC HEIGHT_DESC INGESTED_AT_ASC INGESTED_AT_DESC }
enum TagOperator { EQ NEQ }
enum TagMatch { EXACT }
input TagFilter { name: String!, values: [String!]!, op: TagOperator = EQ, match: TagMatch = EXACT }
input BlockFilter { min: Int, max: Int }
type PageInfo { hasNextPage: Boolean! }
type TransactionConnection { pageInfo: PageInfo!, edges: [TransactionEdge!]! }
type TransactionEdge { cursor: String!, node: Transaction! }
type BlockConnection { pageInfo: PageInfo!, edges: [BlockEdge!]! }
type BlockEdge { cursor: String!, node: Block! }
type Transaction {
  id: ID!
  anchor: String!
  signature: String!
  recipient: String!
  owner: Owner!
  fee: Amount!
  quantity: Amount!
  data: MetaData!
  tags: [Tag!]!
  block: Block
  parent: Parent @deprecated(reason: "Use bundledIn")
  bundledIn: Bundle
}
type Owner { address: String!, key: String! }
type Amount { winston: String!, ar: String! }
type MetaData { size: String!, type: String }
type Tag { name: String!, value: String! }
type Block { id: ID!, timestamp: Int!, height: Int!, previous: ID! }
type Parent { id: ID! }
type Bundle { id: ID! }
"""

SCHEMA = build_schema(SDL)
#: Parser limit: a query longer than this many tokens is refused before it runs.
MAX_TOKENS = 5000
#: The most root fields (aliases included) one query may ask for.
MAX_ROOT_FIELDS = 16
_ZERO = {"winston": "0", "ar": "0.000000000000"}


def _sort(value: str) -> Sort:
    return Sort.ASC if value.endswith("_ASC") else Sort.DESC


def _first(value: int | None) -> int:
    return DEFAULT_PAGE if value is None else value


def _range(value: dict[str, Any] | None) -> tuple[int | None, int | None]:
    value = value or {}
    return value.get("min"), value.get("max")


def block_node(block: Block | None) -> dict[str, Any] | None:
    if block is None:
        return None
    return {"id": block.id, "timestamp": block.timestamp, "height": block.height, "previous": block.previous}


def transaction_node(record: ItemRecord) -> dict[str, Any]:
    bundle = {"id": record.bundled_in} if record.bundled_in else None
    return {
        "id": record.id,
        "anchor": record.anchor.decode("utf-8", "replace"),
        "signature": b64url_encode(record.signature),
        "recipient": record.target,
        "owner": {"address": record.owner_address, "key": b64url_encode(record.owner)},
        "fee": _ZERO,
        "quantity": _ZERO,
        "data": {"size": str(record.data_size), "type": record.content_type},
        "tags": [{"name": t.name, "value": t.value} for t in record.tags],
        "block": block_node(record.block),
        "parent": bundle,
        "bundledIn": bundle,
    }


def _connection(page: Page, node) -> dict[str, Any]:
    return {
        "pageInfo": {"hasNextPage": page.has_next},
        "edges": [{"cursor": cursor, "node": node(value)} for cursor, value in page.edges],
    }


async def _transactions(_root: Any, info: Any, **args: Any) -> dict[str, Any]:
    store: GatewayStore = info.context
    low, high = _range(args.get("block"))
    query = TransactionQuery(
        ids=tuple(args.get("ids") or ()),
        owners=tuple(args.get("owners") or ()),
        recipients=tuple(args.get("recipients") or ()),
        bundled_in=tuple(args.get("bundledIn") or ()),
        tags=tuple(
            TagFilter(t["name"], tuple(t["values"]), negate=t.get("op") == "NEQ") for t in args.get("tags") or ()
        ),
        min_height=low,
        max_height=high,
        first=_first(args.get("first")),
        after=args.get("after"),
        sort=_sort(args.get("sort") or "HEIGHT_DESC"),
    )
    return _connection(await store.transactions(query), transaction_node)


async def _transaction(_root: Any, info: Any, id: str) -> dict[str, Any] | None:
    page = await info.context.transactions(TransactionQuery(ids=(id,), first=1))
    return transaction_node(page.edges[0][1]) if page.edges else None


async def _blocks(_root: Any, info: Any, **args: Any) -> dict[str, Any]:
    low, high = _range(args.get("height"))
    query = BlockQuery(
        ids=tuple(args.get("ids") or ()),
        min_height=low,
        max_height=high,
        first=_first(args.get("first")),
        after=args.get("after"),
        sort=_sort(args.get("sort") or "HEIGHT_DESC"),
    )
    return _connection(await info.context.blocks(query), block_node)


async def _block(_root: Any, info: Any, id: str | None = None) -> dict[str, Any] | None:
    query = BlockQuery(ids=(id,), first=1) if id is not None else BlockQuery(first=1)
    page = await info.context.blocks(query)
    return block_node(page.edges[0][1]) if page.edges else None


_RESOLVERS = {"transactions": _transactions, "transaction": _transaction, "blocks": _blocks, "block": _block}
for _name, _resolve in _RESOLVERS.items():
    SCHEMA.query_type.fields[_name].resolve = _resolve


class GraphQLAnswer:
    """The JSON body and HTTP status for one GraphQL request."""

    def __init__(self, body: dict[str, Any], status: int = 200) -> None:
        self.body = body
        self.status = status


def _errors(errors: list[GraphQLError]) -> list[dict[str, Any]]:
    return [error.formatted for error in errors]


def parse_request(payload: Any) -> tuple[str, dict[str, Any] | None, str | None]:
    """``query``, ``variables`` and ``operationName`` of a JSON GraphQL request."""
    if not isinstance(payload, dict):
        raise RequestError("a GraphQL request is a JSON object")
    query, variables, operation = payload.get("query"), payload.get("variables"), payload.get("operationName")
    if not isinstance(query, str) or not query.strip():
        raise RequestError("the GraphQL request has no query")
    if variables is not None and not isinstance(variables, dict):
        raise RequestError("GraphQL variables must be a JSON object")
    if operation is not None and not isinstance(operation, str):
        raise RequestError("operationName must be a string")
    return query, variables, operation


#: documents that parsed and validated, by query text (bounded, oldest out first): clients send a
#: few query shapes with new variables each time, and parsing and validating one costs ~2 ms,
#: more than answering it. A document is not changed by executing it.
_VALID_DOCUMENTS: OrderedDict[str, Any] = OrderedDict()
_VALID_DOCUMENTS_MAX = 256
_valid_lock = threading.Lock()


def _valid_document(query: str) -> Any:
    """The parsed, validated document of ``query``, or the 400 answer that refuses it."""
    document = _VALID_DOCUMENTS.get(query)
    if document is not None:
        return document
    try:
        document = parse(query, max_tokens=MAX_TOKENS, no_location=False)
    except GraphQLError as error:
        return GraphQLAnswer({"errors": _errors([error])}, 400)
    problems = validate(SCHEMA, document)
    if not problems and _root_fields(document) > MAX_ROOT_FIELDS:
        problems = [GraphQLError(f"a query may ask for at most {MAX_ROOT_FIELDS} root fields")]
    if problems:
        return GraphQLAnswer({"errors": _errors(problems)}, 400)
    with _valid_lock:
        _VALID_DOCUMENTS[query] = document
        while len(_VALID_DOCUMENTS) > _VALID_DOCUMENTS_MAX:
            _VALID_DOCUMENTS.popitem(last=False)
    return document


async def run_query(store: GatewayStore, payload: Any) -> GraphQLAnswer:
    query, variables, operation = parse_request(payload)
    document = _valid_document(query)
    if isinstance(document, GraphQLAnswer):
        return document
    result = execute(SCHEMA, document, context_value=store, variable_values=variables, operation_name=operation)
    if isawaitable(result):
        result = await result
    # No data and no resolver behind the errors: the variables or operation name were wrong.
    status = 400 if result.data is None and result.errors else 200
    for error in result.errors or ():
        original = error.original_error
        if isinstance(original, (StoreError, UnitError)):
            status = 503
        elif original is not None and not isinstance(original, (PyaoError, GraphQLError)):
            raise original  # a bug: let the HTTP layer log it and answer 500
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = _errors(result.errors)
    return GraphQLAnswer(body, status)


def _root_fields(document: Any) -> int:
    return sum(len(d.selection_set.selections) for d in document.definitions if hasattr(d, "selection_set"))


__all__ = ["SCHEMA", "GraphQLAnswer", "run_query"]
