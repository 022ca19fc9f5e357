"""``pyao console [name]``: an aos-like REPL on a process, over the Python SDK.

What it does, as the aos CLI (spec ``ao-protocol.md`` §4.2):

1. Checks that the gateway, messenger unit and compute unit answer (one clear
   line and exit 1 when one does not).
2. Finds the wallet's process called ``name`` on the gateway (GraphQL by owner
   and ``Name`` tag, newest first); none → spawns one of the aos module with
   ``Name``, ``App-Name=pyao`` and ``Authority=<MU address>`` (and
   ``Cron-Interval``/``Cron-Tag-Action=Cron`` with ``--cron``). Prints its id.
3. Sends one ``Eval`` to read the process's prompt, then reads lines: each is
   an ``Action=Eval`` message whose result's ``Output.data`` (or ``Error``) is
   printed. Dot-commands: ``.load FILE``, ``.monitor``, ``.unmonitor``,
   ``.help``, ``.exit`` (EOF exits too).
4. A background thread reads ``results(process, sort=DESC, limit=10)`` every
   2 s and prints the new ones with ``Output.print`` that are not the console's
   own Evals (messages from others, cron ticks, handlers' replies). It never
   replays history from before the console started, and it sees at most 10
   new results per poll: a busier process loses some of its prints.

Defaults: URLs from the flags, then ``MU_URL``/``CU_URL``/``GATEWAY_URL``, then the
``network.json`` that ``pyao up`` wrote in ``--data-dir``, then ``pyao up``'s ports;
wallet ``~/.aos.json`` (created if missing); module ``<data-dir>/modules.json``
``"aos"`` (written by ``pyao up``); scheduler: the newest ``Scheduler-Location``
on the gateway. History in ``<data-dir>/console_history`` (readline, when present).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import contextlib
import glob
import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

from pyao.cli._target import add_target_arguments, resolve
from pyao.client.connect import Connection, connect
from pyao.client.locate import ALL_LOCATIONS_QUERY, tag_value
from pyao.data import Wallet, is_id
from pyao.errors import PyaoError, RequestError, UnitError

PROCESS_QUERY = """query ($owners: [String!]!, $name: String!) {
  transactions(first: 10, owners: $owners, tags: [
      { name: "Data-Protocol", values: ["ao"] }, { name: "Type", values: ["Process"] },
      { name: "Name", values: [$name] } ]) { edges { node { id tags { name value } } } } }"""

POLL_SECONDS = 2.0
POLL_LIMIT = 10
DOT_COMMANDS = (".load", ".monitor", ".unmonitor", ".help", ".exit")
HELP = """Type Lua; each line is evaluated in the process (Action=Eval).
  .load FILE    evaluate the file's content
  .monitor      ask the messenger unit to run this process's cron
  .unmonitor    stop that
  .help         this text
  .exit         leave (Ctrl-D too)"""
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def console_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", default="default", help="the process's Name (default: default)")
    add_target_arguments(parser)
    parser.add_argument("--module", help="module id to spawn (default: the aos module pyao up published)")
    parser.add_argument("--scheduler", help="SU wallet address to spawn on (default: newest Scheduler-Location)")
    parser.add_argument("--cron", help="spawn with a cron, e.g. 10-minutes (Cron-Interval, Cron-Tag-Action=Cron)")


def _get_json(unit: str, url: str, path: str, **kwargs: Any) -> Any:
    """One blocking request to a unit; UnitError naming the unit when it cannot be read."""
    method = "POST" if "json" in kwargs else "GET"
    try:
        response = httpx.request(method, url + path, timeout=15.0, **kwargs)
    except httpx.HTTPError as exc:
        raise UnitError(f"{unit} at {url} is unreachable ({type(exc).__name__}: {exc})") from None
    if response.status_code >= 400:
        raise UnitError(f"{unit} at {url} answered {method} {path} with {response.status_code}: {response.text[:200]}")
    try:
        return response.json()
    except ValueError:
        raise UnitError(f"{unit} at {url} answered {method} {path} with non-JSON: {response.text[:200]}") from None


def _graphql(gateway_url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = _get_json("gateway", gateway_url, "/graphql", json={"query": query, "variables": variables})
    if not isinstance(body, dict) or body.get("errors") or not isinstance(body.get("data"), dict):
        raise UnitError(f"gateway at {gateway_url} answered GraphQL badly: {str(body)[:200]}")
    return body["data"]


def _edges(data: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        return [edge["node"] for edge in data["transactions"]["edges"]]
    except (KeyError, TypeError) as exc:
        raise UnitError(f"gateway answered GraphQL without transactions.edges: {exc!r}") from None


def _default_module(data_dir: Path) -> str:
    record = data_dir / "modules.json"
    try:
        module = json.loads(record.read_text()).get("aos")
    except (OSError, ValueError, AttributeError):
        module = None
    if not module:
        raise RequestError(f"no aos module recorded in {record}: run `pyao up` first, or pass --module <id>")
    return str(module)


def _default_scheduler(gateway_url: str) -> str:
    for node in _edges(_graphql(gateway_url, ALL_LOCATIONS_QUERY, {})):
        address = (node.get("owner") or {}).get("address")
        if address:
            return str(address)
    raise RequestError(f"the gateway at {gateway_url} knows no Scheduler-Location: pass --scheduler <SU address>")


def _cron_tags(cron: str | None) -> list[tuple[str, str]]:
    if not cron:
        return []
    if not re.fullmatch(r"\d+-(millisecond|second|minute|hour|day|month|year|block)s?", cron):
        raise RequestError(f"--cron must look like 10-minutes or 1-hour, got {cron!r}")
    return [("Cron-Interval", cron), ("Cron-Tag-Action", "Cron")]


def find_or_spawn(ao: Connection, args: argparse.Namespace, wallet: Wallet, gateway_url: str, mu_address: str) -> str:
    """The id of the wallet's newest process called ``args.name``, spawning one if there is none."""
    nodes = _edges(_graphql(gateway_url, PROCESS_QUERY, {"owners": [wallet.address], "name": args.name}))
    for node in nodes:
        if is_id(str(node.get("id"))) and tag_value(node.get("tags") or [], "Name") == args.name:
            return str(node["id"])
    module = args.module or _default_module(args.data_dir)
    scheduler = args.scheduler or _default_scheduler(gateway_url)
    tags = [("App-Name", "pyao"), ("Name", args.name), ("Authority", mu_address), *_cron_tags(args.cron)]
    print(f"spawning a new process called {args.name!r} ...", flush=True)
    return ao.spawn(module, scheduler, tags=tags)


def _cursor_key(cursor: str) -> str:
    """A result's identity, whatever the page's sort: the cursor less its ``sort``."""
    try:
        decoded = json.loads(base64.b64decode(cursor, validate=True))
        return f"{decoded['timestamp']}:{decoded['ordinate']}:{decoded.get('cron')}"
    except (binascii.Error, ValueError, KeyError, TypeError):
        return cursor


def _fingerprint(node: dict[str, Any]) -> str:
    keys = ("Output", "Messages", "Spawns", "Assignments", "Error")
    return json.dumps({k: node.get(k) for k in keys}, sort_keys=True, default=str)


def _output_text(result: dict[str, Any]) -> str:
    if result.get("Error"):
        return f"Error: {result['Error']}"
    data = (result.get("Output") or {}).get("data")
    if isinstance(data, dict):
        data = data.get("output", json.dumps(data))
    return "" if data is None else str(data)


class Console:
    """The REPL: one process, one SDK connection, one poller thread."""

    def __init__(self, ao: Connection, process: str, name: str, history: Path | None) -> None:
        self.ao = ao
        self.process = process
        self.prompt = f"{name}> "
        self.history = history
        self.lock = threading.Lock()  # one Eval (message + result) or one poll at a time
        self.own: collections.deque[str] = collections.deque(maxlen=100)
        self.seen: collections.deque[str] = collections.deque(maxlen=1000)
        self.stop = threading.Event()
        self.reading = False  # the main thread is waiting for a line
        self.readline: Any = None
        self.tty = sys.stdin.isatty() and sys.stdout.isatty()

    # ------------------------------------------------------------ evaluation

    def evaluate(self, code: str) -> dict[str, Any]:
        with self.lock:
            message = self.ao.message(self.process, tags=[("Action", "Eval")], data=code)
            result = self.ao.result(message, self.process)
            self.own.append(_fingerprint(result))
        prompt = (result.get("Output") or {}).get("prompt")
        if isinstance(prompt, str) and prompt:
            self.prompt = prompt
        return result

    def show(self, result: dict[str, Any]) -> None:
        text = _output_text(result)
        if text:
            print(text, flush=True)

    # ------------------------------------------------------------ new messages

    def poll_once(self, *, announce: bool = True) -> list[str]:
        """Read the newest results; return the texts of new ones that are not ours."""
        with self.lock:
            page = self.ao.results(self.process, sort="DESC", limit=POLL_LIMIT)
            texts = []
            for edge in reversed(page.get("edges") or []):
                key = _cursor_key(str(edge.get("cursor")))
                if key in self.seen:
                    continue
                self.seen.append(key)
                node = edge.get("node") or {}
                fingerprint = _fingerprint(node)
                if fingerprint in self.own:
                    self.own.remove(fingerprint)
                    continue
                prompt = (node.get("Output") or {}).get("prompt")
                if isinstance(prompt, str) and prompt:  # the newest result's prompt: its Inbox count is current
                    self.prompt = prompt
                if announce and (node.get("Output") or {}).get("print") is True:
                    text = _output_text(node)
                    if text:
                        texts.append(text)
            return texts

    def _poller(self) -> None:
        while not self.stop.wait(POLL_SECONDS):
            try:
                texts = self.poll_once()
            except Exception:  # a unit hiccup must not kill the REPL; try again next time
                continue
            for text in texts:
                self._print_async(text)

    def _print_async(self, text: str) -> None:
        if self.reading and self.readline is not None:
            line = self.readline.get_line_buffer()
            sys.stdout.write(f"\r\x1b[K{text}\n{self._shown_prompt()}{line}")
        else:
            sys.stdout.write(f"{text}\n")
        sys.stdout.flush()

    # ------------------------------------------------------------ terminal

    def _shown_prompt(self) -> str:
        if not self.tty:
            return _ANSI.sub("", self.prompt)
        return self.prompt

    def _input_prompt(self) -> str:
        prompt = self._shown_prompt()
        if self.readline is not None:  # readline must not count colour codes as width
            prompt = _ANSI.sub(lambda m: f"\001{m.group(0)}\002", prompt)
        return prompt

    def _setup_readline(self) -> None:
        if not sys.stdin.isatty():  # piped input: no line editing, no history
            return
        try:
            import readline
        except ImportError:
            return
        self.readline = readline
        if self.history is not None:
            with contextlib.suppress(OSError):
                readline.read_history_file(self.history)
            readline.set_history_length(1000)

        def complete(text: str, state: int) -> str | None:
            buffer = readline.get_line_buffer()
            if buffer.startswith(".load "):
                options = [p + ("/" if os.path.isdir(p) else "") for p in glob.glob(os.path.expanduser(text) + "*")]
            elif buffer.startswith("."):
                options = [c for c in DOT_COMMANDS if c.startswith(text)]
            else:
                options = []
            return options[state] if state < len(options) else None

        readline.set_completer(complete)
        readline.set_completer_delims(" \t\n")
        readline.parse_and_bind("tab: complete")

    def _save_history(self) -> None:
        if self.readline is not None and self.history is not None:
            with contextlib.suppress(OSError):
                self.history.parent.mkdir(parents=True, exist_ok=True)
                self.readline.write_history_file(self.history)

    # ------------------------------------------------------------ the loop

    def command(self, line: str) -> bool:
        """Run one dot-command; False to leave."""
        verb, _, rest = line.partition(" ")
        if verb == ".exit":
            return False
        if verb == ".help":
            print(HELP)
        elif verb == ".load":
            path = Path(rest.strip()).expanduser()
            if not rest.strip():
                print("usage: .load FILE")
                return True
            try:
                code = path.read_text()
            except OSError as exc:
                print(f"Error: cannot read {path}: {exc.strerror}")
                return True
            print(f"loading {path} ...")
            self.show(self.evaluate(code))
        elif verb == ".monitor":
            print(self.ao.monitor(self.process) or "monitoring")
        elif verb == ".unmonitor":
            print(self.ao.unmonitor(self.process) or "stopped monitoring")
        else:
            print(f"unknown command {verb}; .help lists them")
        return True

    def run(self) -> int:
        self._setup_readline()
        self.poll_once(announce=False)  # what happened before the console started is not news
        poller = threading.Thread(target=self._poller, name="pyao-console-poll", daemon=True)
        poller.start()
        try:
            while True:
                self.reading = True
                try:
                    line = input(self._input_prompt())
                except EOFError:
                    print()
                    return 0
                except KeyboardInterrupt:
                    print()
                    continue
                finally:
                    self.reading = False
                line = line.strip()
                if not line:
                    continue
                try:
                    if line.startswith("."):
                        if not self.command(line):
                            return 0
                    else:
                        self.show(self.evaluate(line))
                except PyaoError as exc:
                    print(f"Error: {exc}", flush=True)
                except KeyboardInterrupt:
                    print("\n(interrupted; the message may still be evaluated)")
        finally:
            self.stop.set()
            self._save_history()


def console(args: argparse.Namespace) -> int:
    target = resolve(args)
    mu_url, cu_url, gateway_url = target.mu_url, target.cu_url, target.gateway_url
    # every unit first, so a down one is one clear line rather than a failure halfway
    _get_json("gateway", gateway_url, "/info")
    mu_address = (_get_json("messenger unit", mu_url, "/", params={"debug": "1"}) or {}).get("address")
    if not isinstance(mu_address, str) or not mu_address:
        raise UnitError(f"messenger unit at {mu_url} did not say its address (GET /?debug=1)")
    _get_json("compute unit", cu_url, "/")
    wallet = Wallet.load_or_create(args.wallet)
    with connect(mu_url=mu_url, cu_url=cu_url, gateway_url=gateway_url, signer=wallet) as ao:
        process = find_or_spawn(ao, args, wallet, gateway_url, mu_address)
        print(f"process {process} ({args.name}), wallet {wallet.address}")
        repl = Console(ao, process, args.name, args.data_dir / "console_history")
        first = repl.evaluate("")  # the prompt, as aos reads it
        if first.get("Error"):
            print(f"Error: {first['Error']}")
        print("Type Lua to evaluate it in the process; .help for commands, .exit or Ctrl-D to leave.", flush=True)
        return repl.run()
