"""One-shot client verbs over the Python SDK: ``pyao spawn``, ``send``, ``eval``, ``result``,
``results``, ``dryrun``, ``inbox``, ``state``, ``monitor`` and ``upload``.

Contract:
- assumes: a network to talk to, found as ``pyao console`` finds it (``pyao.cli._target``:
  flags, then ``MU_URL``/``CU_URL``/``GATEWAY_URL``, then ``<data-dir>/network.json`` written by
  ``pyao up``, then the default ports).
- produces: on stdout, an id (``spawn``, ``send``, ``upload``), the evaluated text (``eval``),
  a message list (``inbox``) or JSON (the rest); exit 0. A unit that is down or refuses the
  request is one line on stderr (``pyao VERB: …``) and exit 1; ``eval`` of code that raises
  prints the error on stderr and exits 1.
- side effects: ``spawn``, ``send``, ``eval`` and ``upload`` sign with the wallet (created if
  missing) and store items on the network; the others only read.

A PROCESS argument is a process id, or the ``Name`` of one of the wallet's processes (the
newest, as ``pyao console`` finds it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from pyao.cli._console import _ANSI, PROCESS_QUERY, _cron_tags, _default_scheduler, _edges, _get_json, _graphql
from pyao.cli._target import Target, add_target_arguments, resolve
from pyao.client.connect import Connection, connect
from pyao.client.locate import tag_value
from pyao.data import Wallet, is_id
from pyao.errors import NotFound, RequestError, UnitError

#: files at least this big get a progress bar on stderr
PROGRESS_FROM = 1 << 20

#: Lua run by ``pyao inbox`` in a dry run: the Inbox as JSON, newest last
INBOX_LUA = """local json = require("json")
local out = {}
for i = math.max(1, #Inbox - %d + 1), #Inbox do
  local m = Inbox[i]
  out[#out + 1] = { n = i, From = m.From, Action = m.Action, Data = type(m.Data) == "string" and m.Data or nil,
                    Id = m.Id, Timestamp = m.Timestamp }
end
return json.encode({ total = #Inbox, messages = out })"""


# ------------------------------------------------------------ shared parts


def _tag(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"a tag is NAME=VALUE, got {text!r}")
    return name, value


def _message_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--action", "-a", help="the Action tag")
    parser.add_argument("--tag", "-t", type=_tag, action="append", default=[], metavar="NAME=VALUE", help="a tag")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--data", "-d", help="the message's data")
    data.add_argument("--data-file", type=Path, help="read the data from a file ('-': stdin)")


def _tags(args: argparse.Namespace) -> list[tuple[str, str]]:
    return ([("Action", args.action)] if args.action else []) + list(args.tag)


def _data(args: argparse.Namespace) -> str | bytes | None:
    if args.data_file is not None:
        if str(args.data_file) == "-":
            return sys.stdin.buffer.read()
        try:
            return args.data_file.read_bytes()
        except OSError as exc:
            raise RequestError(f"cannot read {args.data_file}: {exc.strerror}") from None
    return args.data


def _connect(args: argparse.Namespace, *, signed: bool = False) -> tuple[Target, Connection, Wallet | None]:
    target = resolve(args)
    wallet = Wallet.load_or_create(args.wallet) if signed or not _is_id(getattr(args, "process", "")) else None
    return target, connect(target.mu_url, target.cu_url, target.gateway_url, signer=wallet), wallet


def _is_id(value: str | None) -> bool:
    return bool(value) and is_id(str(value))


def _process(args: argparse.Namespace, target: Target, wallet: Wallet | None) -> str:
    """``args.process`` as an id: given as one, or the wallet's newest process with that Name."""
    if _is_id(args.process):
        return args.process
    assert wallet is not None
    nodes = _edges(_graphql(target.gateway_url, PROCESS_QUERY, {"owners": [wallet.address], "name": args.process}))
    for node in nodes:
        if is_id(str(node.get("id"))) and tag_value(node.get("tags") or [], "Name") == args.process:
            return str(node["id"])
    raise NotFound(
        f"{args.process!r} is neither a process id nor the Name of a process of {wallet.address} "
        f"(on the gateway at {target.gateway_url})"
    )


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _output_text(result: dict[str, Any]) -> str:
    data = (result.get("Output") or {}).get("data")
    if isinstance(data, dict):
        data = data.get("output", json.dumps(data))
    return "" if data is None else str(data)


# ------------------------------------------------------------ spawn


def spawn_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="the process's Name tag")
    add_target_arguments(parser)
    parser.add_argument("--module", help="module id (default: the aos module pyao up published)")
    parser.add_argument("--scheduler", help="SU wallet address (default: network.json, else newest Scheduler-Location)")
    parser.add_argument("--tag", "-t", type=_tag, action="append", default=[], metavar="NAME=VALUE", help="a tag")
    parser.add_argument("--data", "-d", help="the process's data")
    parser.add_argument("--cron", help="a cron, e.g. 10-seconds (Cron-Interval, Cron-Tag-Action=Cron)")
    parser.add_argument(
        "--no-authority", action="store_true", help="do not list the MU's address as an Authority (aos trusts it)"
    )


def spawn(args: argparse.Namespace) -> int:
    target = resolve(args)
    wallet = Wallet.load_or_create(args.wallet)
    module = args.module or target.record.get("module")
    if not module:
        from pyao.cli._console import _default_module

        module = _default_module(args.data_dir)
    scheduler = args.scheduler or (target.record.get("addresses") or {}).get("su")
    scheduler = scheduler or _default_scheduler(target.gateway_url)
    tags = [("Name", args.name)] if args.name else []
    if not args.no_authority:
        mu = _get_json("messenger unit", target.mu_url, "/", params={"debug": "1"}) or {}
        if not isinstance(mu.get("address"), str):
            raise UnitError(f"messenger unit at {target.mu_url} did not say its address (GET /?debug=1)")
        tags.append(("Authority", mu["address"]))
    tags += [*args.tag, *_cron_tags(args.cron)]
    with connect(target.mu_url, target.cu_url, target.gateway_url, signer=wallet) as ao:
        print(ao.spawn(str(module), str(scheduler), tags=tags, data=args.data))
    return 0


# ------------------------------------------------------------ send / eval


def send_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("process", help="process id or Name")
    add_target_arguments(parser)
    _message_arguments(parser)
    parser.add_argument("--wait", "-w", action="store_true", help="wait for the result and print it (JSON)")


def send(args: argparse.Namespace) -> int:
    target, ao, wallet = _connect(args, signed=True)
    with ao:
        process = _process(args, target, wallet)
        if args.wait:
            _get_json("compute unit", target.cu_url, "/")  # down: say so before anything is sent
        message = ao.message(process, tags=_tags(args), data=_data(args))
        if not args.wait:
            print(message)
            return 0
        _print_json({"id": message, "result": ao.result(message, process)})
    return 0


def eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("process", help="process id or Name")
    parser.add_argument("code", nargs="?", help="Lua to evaluate ('-' or absent: stdin)")
    add_target_arguments(parser)
    parser.add_argument("--file", "-f", type=Path, help="evaluate this file's content")


def eval_(args: argparse.Namespace) -> int:
    if args.file is not None:
        try:
            code = args.file.read_text()
        except OSError as exc:
            raise RequestError(f"cannot read {args.file}: {exc.strerror}") from None
    elif args.code in (None, "-"):
        code = sys.stdin.read()
    else:
        code = args.code
    target, ao, wallet = _connect(args, signed=True)
    with ao:
        process = _process(args, target, wallet)
        _get_json("compute unit", target.cu_url, "/")  # down: say so before anything is sent
        message = ao.message(process, tags=[("Action", "Eval")], data=code)
        result = ao.result(message, process)
    if result.get("Error"):
        print(f"Error: {result['Error']}", file=sys.stderr)
        return 1
    text = _output_text(result)
    if text:
        print(text)
    return 0


# ------------------------------------------------------------ reads


def result_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("message", help="message id")
    parser.add_argument("process", help="process id or Name")
    add_target_arguments(parser)


def result(args: argparse.Namespace) -> int:
    target, ao, wallet = _connect(args)
    with ao:
        _print_json(ao.result(args.message, _process(args, target, wallet)))
    return 0


def results_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("process", help="process id or Name")
    add_target_arguments(parser)
    parser.add_argument("--from", dest="from_", help="cursor to start after")
    parser.add_argument("--to", help="cursor to stop at")
    parser.add_argument("--sort", choices=["ASC", "DESC"], default="ASC")
    parser.add_argument("--limit", type=int, default=25)


def results(args: argparse.Namespace) -> int:
    target, ao, wallet = _connect(args)
    with ao:
        _print_json(ao.results(_process(args, target, wallet), args.from_, args.to, args.sort, args.limit))
    return 0


def dryrun_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("process", help="process id or Name")
    add_target_arguments(parser)
    _message_arguments(parser)
    parser.add_argument("--owner", help="the message's Owner (default: your wallet's address)")


def dryrun(args: argparse.Namespace) -> int:
    target, ao, wallet = _connect(args, signed=True)
    data = _data(args)
    with ao:
        answer = ao.dryrun(
            _process(args, target, wallet), data=data, tags=_tags(args), owner=args.owner or wallet.address
        )
    _print_json(answer)
    return 0


def inbox_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("process", help="process id or Name")
    add_target_arguments(parser)
    parser.add_argument("--limit", type=int, default=20, help="show the newest N messages")
    parser.add_argument("--json", action="store_true", help="print JSON")


def inbox(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise RequestError("--limit must be at least 1")
    target, ao, wallet = _connect(args, signed=True)
    with ao:
        answer = ao.dryrun(
            _process(args, target, wallet),
            data=INBOX_LUA % args.limit,
            tags=[("Action", "Eval")],
            owner=wallet.address,
        )
    if answer.get("Error"):
        raise RequestError(f"the process could not list its Inbox: {answer['Error']}")
    try:
        listing = json.loads(_output_text(answer))
        messages, total = listing["messages"], listing["total"]
    except (ValueError, KeyError, TypeError):
        raise UnitError(f"the process answered the Inbox listing with {_output_text(answer)[:200]!r}") from None
    if args.json:
        _print_json(listing)
        return 0
    print(f"{total} message(s) in the Inbox" + (f", newest {len(messages)}:" if messages else ""))
    for m in messages:
        data = _ANSI.sub("", m.get("Data") or "").replace("\n", " ")
        print(f"  {m['n']:>4}  from {m.get('From')}  Action={m.get('Action') or '-'}  {data[:80]}")
    return 0


def state_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("process", help="process id or Name")
    add_target_arguments(parser)
    parser.add_argument("--out", "-o", type=Path, help="write the state's bytes to this file")


def state(args: argparse.Namespace) -> int:
    target, ao, wallet = _connect(args)
    with ao:
        process = _process(args, target, wallet)
        body, headers = ao.state(process)
    summary: dict[str, Any] = {"process": process, "bytes": len(body), **headers}
    if args.out is not None:
        args.out.write_bytes(body)
        summary["written"] = str(args.out)
    _print_json(summary)
    return 0


# ------------------------------------------------------------ monitor


def monitor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("process", help="process id or Name")
    add_target_arguments(parser)
    parser.add_argument("--stop", action="store_true", help="stop monitoring instead")


def monitor(args: argparse.Namespace) -> int:
    target, ao, wallet = _connect(args, signed=True)
    with ao:
        process = _process(args, target, wallet)
        print(ao.unmonitor(process) if args.stop else ao.monitor(process))
    return 0


# ------------------------------------------------------------ upload


def upload_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the file to store")
    add_target_arguments(parser)
    parser.add_argument("--tag", "-t", type=_tag, action="append", default=[], metavar="NAME=VALUE", help="a tag")
    parser.add_argument("--content-type", help="the Content-Type tag")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, help="progress bar (default: ≥1 MiB)")


class _ProgressBar:
    """``[#####.....]  42%  12.0/28.5 MiB  3.1 MiB/s`` on stderr, redrawn at most 10 times a second."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.drawn = 0.0

    def __call__(self, sent: int, total: int) -> None:
        now = time.monotonic()
        if sent < total and now - self.drawn < 0.1:
            return
        self.drawn = now
        share = sent / total if total else 1.0
        rate = sent / max(now - self.start, 1e-6) / (1 << 20)
        bar = "#" * int(share * 30)
        mib = 1 << 20
        sys.stderr.write(f"\r[{bar:<30}] {share:4.0%}  {sent / mib:.1f}/{total / mib:.1f} MiB  {rate:.1f} MiB/s")
        if sent >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def upload(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise RequestError(f"{args.file} is not a readable file")
    target = resolve(args)
    tags = list(args.tag)
    if args.content_type:
        tags.append(("Content-Type", args.content_type))
    show = args.progress if args.progress is not None else args.file.stat().st_size >= PROGRESS_FROM
    wallet = Wallet.load_or_create(args.wallet)
    with connect(target.mu_url, target.cu_url, target.gateway_url, signer=wallet) as ao:
        print(ao.upload(args.file, tags, progress=_ProgressBar() if show else None))
    return 0
