"""The ``pyao`` command line: an id that starts with "-" (one in 64 do) is a value, not an option."""

from __future__ import annotations

import pytest

from pyao.cli import build_parser

DASH_ID = "-" + "Ab_9-" * 8 + "xy"  # 43 base64url characters
OTHER = "Q" * 43


def test_an_id_starting_with_a_dash_is_taken_as_the_argument_it_stands_for():
    assert len(DASH_ID) == 43
    parse = build_parser().parse_args
    args = parse(["eval", DASH_ID, "return 1"])
    assert (args.process, args.code) == (DASH_ID, "return 1")
    args = parse(["result", DASH_ID, DASH_ID])
    assert args.message == args.process == DASH_ID
    args = parse(["send", DASH_ID, "-a", "Hi", "-t", "X=1", "--wait"])
    assert (args.process, args.action, args.tag, args.wait) == (DASH_ID, "Hi", [("X", "1")], True)
    args = parse(["attest", "--wait", DASH_ID, "--gateway", "http://127.0.0.1:1"])
    assert args.id == DASH_ID and args.wait
    args = parse(["results", OTHER, "--from", DASH_ID, "--limit", "-1"])
    assert (args.process, args.from_, args.limit) == (OTHER, DASH_ID, -1)


def test_options_are_still_options():
    parse = build_parser().parse_args
    with pytest.raises(SystemExit):
        parse(["eval", "-x"])  # a short unknown option, not an id
    with pytest.raises(SystemExit):
        parse(["eval", DASH_ID[:-1]])  # 42 characters: not an id, so an unknown option
    assert parse(["send", OTHER, "-a", "Hi"]).action == "Hi"
