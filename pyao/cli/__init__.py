"""The ``pyao`` command. Each verb is a small function registered in ``VERBS``."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable

from pyao.cli import _attest, _console, _data, _demo, _provenance, _units, _up, _verbs
from pyao.errors import PyaoError

# verb -> (help, add_arguments, run)
VERBS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "up": ("start the embedded ao network in one process", _up.up_arguments, _up.up),
    "console": (
        "an aos-like REPL on a named process",
        _console.console_arguments,
        _console.console,
    ),
    "spawn": ("spawn a process (default: the aos module); prints its id", _verbs.spawn_arguments, _verbs.spawn),
    "send": ("send a message to a process; prints its id (--wait: its result)", _verbs.send_arguments, _verbs.send),
    "eval": ("evaluate Lua in a process (Action=Eval) and print the output", _verbs.eval_arguments, _verbs.eval_),
    "result": ("print a message's result (JSON)", _verbs.result_arguments, _verbs.result),
    "results": ("print a page of a process's results (JSON)", _verbs.results_arguments, _verbs.results),
    "dryrun": ("evaluate a message without scheduling it (JSON)", _verbs.dryrun_arguments, _verbs.dryrun),
    "inbox": ("list the messages in a process's Inbox", _verbs.inbox_arguments, _verbs.inbox),
    "state": ("a process's latest state (size, Last-*; --out FILE)", _verbs.state_arguments, _verbs.state),
    "monitor": ("have the MU run a process's cron (--stop: no longer)", _verbs.monitor_arguments, _verbs.monitor),
    "upload": ("store a file on the gateway as a signed data item", _verbs.upload_arguments, _verbs.upload),
    "wallet": ("create or show a wallet (JWK key file)", _data.wallet_arguments, _data.wallet),
    "item": ("parse, verify and show an ANS-104 data item or bundle file", _data.item_arguments, _data.item),
    "attest": (
        "attest a stored item for WeaveDrive (sign and post an Attestation)",
        _attest.attest_arguments,
        _attest.attest,
    ),
    "gateway": ("run the gateway (permanent store) alone", _units.gateway_arguments, _units.gateway),
    "su": ("run the scheduler unit alone", _units.su_arguments, _units.su),
    "cu": ("run the compute unit alone", _units.cu_arguments, _units.cu),
    "mu": ("run the messenger unit alone", _units.mu_arguments, _units.mu),
    "demo": ("run a demo end to end on the embedded network (llama-fed)", _demo.demo_arguments, _demo.demo),
    "provenance": (
        "was this content produced by a model on ao? (ANS-112 records on the gateway)",
        _provenance.provenance_arguments,
        _provenance.provenance,
    ),
}


#: what argparse takes for a value, not an option, although it starts with "-": its own negative
#: numbers, and a 43-character id (base64url: one id in 64 starts with "-", e.g. `pyao eval -Xy…`)
_NOT_AN_OPTION = re.compile(r"^-\d+$|^-\d*\.\d+$|^-[A-Za-z0-9_-]{42}$")


def _ids_are_values(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    # argparse has no public hook for this; the matcher is what it consults (3.11 to 3.13)
    parser._negative_number_matcher = _NOT_AN_OPTION
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _ids_are_values(
        argparse.ArgumentParser(prog="pyao", description="ao, the actor-oriented computer, in Python")
    )
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, (help_text, add_arguments, run) in VERBS.items():
        verb = _ids_are_values(sub.add_parser(name, help=help_text, description=help_text))
        add_arguments(verb)
        verb.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except PyaoError as exc:
        print(f"pyao {args.verb}: {exc}", file=sys.stderr)
        return 1
