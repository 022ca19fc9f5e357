"""The `decimal` module and the token blueprint (pyao/lua/blueprints/token.lua), run directly in the Lua VM."""

import json
import random

import pytest

from pyao.vm.lua import BLUEPRINTS, blueprint_source
from tests.unit._lua import MU, OWNER, PID, STRANGER, make_process

INITIAL = str(10_000 * 10**12)


def tags_of(m):
    return {t["name"]: t["value"] for t in m["Tags"]}


def lua_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # no backslash escapes here: a valid Lua string literal


# ------------------------------------------------------------------ decimal


def test_decimal_parse():
    p = make_process()
    cases = {
        "0": "0",
        "000": "0",
        "007": "7",
        "123456789012345678901234567890": "123456789012345678901234567890",
        "": None,
        "-1": None,
        "1.5": None,
        "1e3": None,
        " 1": None,
        "1 ": None,
        "0x10": None,
        "+1": None,
        "\N{FULLWIDTH DIGIT ONE}": None,  # not an ASCII digit
    }
    for text, want in cases.items():
        got = p.value(f"return tostring(require('decimal').parse({lua_str(text)}))")
        assert got == str(want) if want is not None else got == "nil", text
    assert p.value("return require('decimal').parse(42)") == "42"
    assert p.value("return tostring(require('decimal').parse(-1))") == "nil"
    assert p.value("return tostring(require('decimal').parse(1.0))") == "nil"  # floats are refused
    assert p.value("return tostring(require('decimal').parse({}))") == "nil"


def _pairs():
    rng = random.Random(7)
    edge = [0, 1, 9, 10, 999_999_999, 10**9, 10**9 + 1, 10**18 - 1, 10**18, 2**63 - 1, 2**63, 2**64, 10**77 - 1]
    pairs = [(a, b) for a in edge for b in edge]
    for _ in range(300):
        a = rng.randrange(10 ** rng.randrange(1, 120))
        b = rng.randrange(10 ** rng.randrange(1, 120))
        pairs.append((a, b))
    return pairs


def test_decimal_add_sub_cmp_match_python_ints():
    p = make_process()
    pairs = _pairs()
    listing = ",".join(f"{{'{a}','{b}'}}" for a, b in pairs)
    out = p.value(
        "local d = require('decimal') local out = {} "
        f"for _, ab in ipairs({{{listing}}}) do local a, b = ab[1], ab[2] "
        "out[#out + 1] = table.concat({ d.add(a, b), d.cmp(a, b), tostring(d.lt(a, b)), tostring(d.le(a, b)), "
        "tostring(d.eq(a, b)), d.le(b, a) and d.sub(a, b) or '-' }, ' ') end "
        "return table.concat(out, ';')"
    )
    for (a, b), line in zip(pairs, out.split(";"), strict=True):
        s, c, lt, le, eq, diff = line.split(" ")
        assert int(s) == a + b and s == str(a + b)
        assert int(c) == (a > b) - (a < b)
        assert (lt, le, eq) == (str(a < b).lower(), str(a <= b).lower(), str(a == b).lower())
        assert diff == (str(a - b) if a >= b else "-")


def test_decimal_leading_zeros_and_errors():
    p = make_process()
    assert p.value("return require('decimal').add('0009', '0001')") == "10"
    assert p.value("return require('decimal').sub('1000000000000000000', '1')") == "999999999999999999"
    assert p.value("return require('decimal').sub('5', '005')") == "0"
    assert p.value("return require('decimal').pow10(20)") == "1" + "0" * 20
    assert p.value("return tostring(require('decimal').iszero('000'))") == "true"
    r = p.eval("return require('decimal').sub('1', '2')")
    assert r.error is not None and "negative" in r.error
    r = p.eval("return require('decimal').add('1', '-2')")
    assert r.error is not None and "not a non-negative integer: -2" in r.error
    r = p.eval("return require('decimal').add(1.5, '2')")
    assert r.error is not None


def test_decimal_remembers_canonical_strings_only_while_parse_is_its_own():
    """decimal recognises the last strings it found canonical by comparison: a number equal to
    one of them, a non-canonical spelling of one, and a replaced decimal.parse are all still
    treated as before."""
    p = make_process()
    script = (
        "local d = require('decimal') local out = {} "
        "local function try(f, ...) local ok, v = pcall(f, ...) out[#out + 1] = ok and tostring(v) or 'error' end "
        "try(d.add, '5', '7') try(d.add, 5, '7') try(d.add, '05', '7') try(d.lt, '7', 5) try(d.add, '5', 5.0) "
        "try(d.parse, '7') try(d.parse, 7) try(d.parse, '007') try(d.sub, '12', '5') try(d.eq, '12', 12) "
        "local own = d.parse d.parse = function(v) return '100' end "
        "try(d.add, '5', '7') try(d.lt, '7', '12') try(d.sub, '12', '5') "
        "d.parse = own try(d.add, '5', '7') "
        "return table.concat(out, ' ')"
    )
    assert p.value(script) == "12 12 12 false error 7 7 7 7 true 200 false 0 12"


# ----------------------------------------------------------------- loading


def token(source: str = "require('.token')", **kw):
    p = make_process(source, **kw)
    p.boot()
    return p


def test_every_way_of_loading():
    assert "token" in BLUEPRINTS
    for src in ("require('.token')", "require('token')", "require('blueprints.token')", "require('.blueprints.token')"):
        p = token(src)
        assert p.value("Balances[ao.id]") == INITIAL and p.value("Name") == "Points Coin"
        assert p.value("package.loaded['blueprints.token']") == "true"
    p = token("")
    assert p.eval(blueprint_source("token")).error is None  # aos's `.load-blueprint token`
    assert p.value("Balances[ao.id]") == INITIAL and p.value("TotalSupply") == INITIAL
    assert p.value("Name") == "aos"  # as in aos: Name was set from the process before the blueprint ran
    assert (p.value("Ticker"), p.value("Denomination"), p.value("Variant")) == ("PNTS", "12", "0.0.3")
    with pytest.raises(KeyError):
        blueprint_source("nope")
    assert "not found" in make_process().eval("require('.nope')").error


def test_reload_keeps_state_and_presets_count():
    p = token()
    p.send("", frm=PID, owner=MU, Action="Transfer", Recipient=STRANGER, Quantity="25")
    p.eval("Name = 'Mine'")
    assert p.eval(blueprint_source("token")).error is None
    assert p.value(f"Balances['{STRANGER}']") == "25"
    assert p.value("Name") == "Mine" and p.value("TotalSupply") == INITIAL
    p = token("Denomination = 3; Ticker = 'T3'; require('.token')")
    assert p.value("Balances[ao.id]") == "10000000" and p.value("Ticker") == "T3"


def test_bad_denomination_refuses_the_module():
    from pyao.errors import ModuleError

    with pytest.raises(ModuleError, match="Denomination"):
        make_process("Denomination = -1; require('.token')")


# ----------------------------------------------------------------- actions


def test_info_balance_balances_total_supply():
    p = token()
    (m,) = p.send("", frm=STRANGER, Action="Info", Reference="4").messages
    t = tags_of(m)
    assert m["Target"] == STRANGER and "Data" not in m
    assert (t["Name"], t["Ticker"], t["Logo"], t["Denomination"], t["X-Reference"]) == (
        "Points Coin",
        "PNTS",
        "SBCCXwwecBlDqRLUjb8dYABExTJXLieawf7m2aBJ-KY",
        "12",
        "4",
    )
    (m,) = p.send("", frm=STRANGER, Action="Balance").messages  # the sender's own, none yet
    assert (m["Data"], tags_of(m)["Balance"], tags_of(m)["Account"], tags_of(m)["Ticker"]) == (
        "0",
        "0",
        STRANGER,
        "PNTS",
    )
    (m,) = p.send("", frm=STRANGER, Action="Balance", Recipient=PID).messages
    assert (m["Data"], tags_of(m)["Account"]) == (INITIAL, PID)
    (m,) = p.send("", frm=STRANGER, Action="Balance", Target=PID).messages  # a Target tag: Account stays From
    assert (m["Data"], tags_of(m)["Account"]) == (INITIAL, STRANGER)
    (m,) = p.send("", frm=STRANGER, Action="Balances").messages
    assert json.loads(m["Data"]) == {PID: INITIAL}
    (m,) = p.send("", frm=STRANGER, Action="Total-Supply").messages
    assert (m["Data"], tags_of(m)["Action"], tags_of(m)["Ticker"]) == (INITIAL, "Total-Supply", "PNTS")
    r = p.send("", frm=PID, owner=MU, Action="Total-Supply")
    assert "Cannot call Total-Supply from the same process!" in r.error


def test_transfer_notices_x_tags_and_reply_to():
    p = token()
    r = p.send(
        "", frm=PID, owner=MU, Action="Transfer", Recipient=STRANGER, Quantity="0100", X_Order="o-1", Reply_To="BOX"
    )
    debit, credit = r.messages
    assert debit["Target"] == "BOX"  # msg.reply honours Reply-To
    d, c = tags_of(debit), tags_of(credit)
    assert (d["Action"], d["Recipient"], d["Quantity"], d["X-Order"]) == ("Debit-Notice", STRANGER, "0100", "o-1")
    assert credit["Target"] == STRANGER
    assert (c["Action"], c["Sender"], c["Quantity"], c["X-Order"]) == ("Credit-Notice", PID, "0100", "o-1")
    assert "You transferred" in debit["Data"] and "You received" in credit["Data"]
    assert json.loads(p.value("require('json').encode(Balances)")) == {PID: str(int(INITIAL) - 100), STRANGER: "100"}
    # Cast: the transfer happens, no notices
    r = p.send("", frm=STRANGER, Action="Transfer", Recipient=OWNER, Quantity="40", Cast="true")
    assert r.error is None and r.messages == ()
    # to oneself: unchanged
    p.send("", frm=STRANGER, Action="Transfer", Recipient=STRANGER, Quantity="60")
    assert p.value(f"Balances['{STRANGER}']") == "60" and p.value(f"Balances['{OWNER}']") == "40"


def test_transfer_error_and_bad_input():
    p = token()
    before = p.value("require('json').encode(Balances)")
    (m,) = p.send("", frm=STRANGER, Action="Transfer", Recipient=OWNER, Quantity="1").messages
    t = tags_of(m)
    assert m["Target"] == STRANGER
    assert (t["Action"], t["Error"], t["Message-Id"]) == ("Transfer-Error", "Insufficient Balance!", "msg-0002")
    # as aos: a refused transfer still leaves zero entries for both accounts
    assert json.loads(p.value("require('json').encode(Balances)")) == {**json.loads(before), STRANGER: "0", OWNER: "0"}
    before = p.value("require('json').encode(Balances)")
    for tags, why in [
        ({"Quantity": "1"}, "Recipient is required!"),
        ({"Recipient": OWNER}, "Quantity is required!"),
        ({"Recipient": OWNER, "Quantity": "0"}, "Quantity must be greater than 0"),
        ({"Recipient": OWNER, "Quantity": "-5"}, "Quantity must be greater than 0"),
        ({"Recipient": OWNER, "Quantity": "1.5"}, "Quantity must be greater than 0"),
        ({"Recipient": OWNER, "Quantity": "abc"}, "Quantity must be greater than 0"),
    ]:
        r = p.send("", frm=PID, owner=MU, Action="Transfer", **tags)
        assert r.error is not None and why in r.error, (tags, r.error)
        assert r.messages == ()
    assert p.value("require('json').encode(Balances)") == before


def test_mint_burn_and_big_amounts():
    p = token()
    (m,) = p.send("", frm=STRANGER, Action="Mint", Quantity="5").messages
    t = tags_of(m)
    assert (t["Action"], t["Error"], t["Message-Id"]) == (
        "Mint-Error",
        "Only the Process Id can mint new PNTS tokens!",
        "msg-0001",
    )
    assert "greater than zero!" in p.send("", frm=PID, owner=MU, Action="Mint", Quantity="0").error
    huge = 10**40
    (m,) = p.send("", frm=PID, owner=MU, Action="Mint", Quantity=str(huge)).messages
    assert m["Target"] == PID and "Successfully minted" in m["Data"]
    assert p.value("TotalSupply") == str(int(INITIAL) + huge) == p.value("Balances[ao.id]")
    r = p.send("", frm=PID, owner=MU, Action="Transfer", Recipient=STRANGER, Quantity=str(huge))
    assert r.error is None
    (m,) = p.send("", frm=STRANGER, Action="Burn", Quantity=str(huge - 1)).messages
    assert "Successfully burned" in m["Data"]
    assert p.value(f"Balances['{STRANGER}']") == "1"
    assert p.value("TotalSupply") == str(int(INITIAL) + 1)
    r = p.send("", frm=STRANGER, Action="Burn", Quantity="2")
    assert "less than or equal to the current balance" in r.error
    assert "less than or equal" in p.send("", frm=OWNER, Action="Burn", Quantity="1").error  # no balance at all
    assert "greater than 0" in p.send("", frm=STRANGER, Action="Burn", Quantity="0").error
    assert p.value("TotalSupply") == str(int(INITIAL) + 1)


def test_blueprint_survives_snapshot_restore():
    p = make_process(compact_every=1)
    p.boot()
    p.eval(blueprint_source("token"))  # loaded after boot: its functions go into the snapshot as bytecode
    p.send("", frm=PID, owner=MU, Action="Transfer", Recipient=STRANGER, Quantity="7")
    q = make_process(compact_every=1)
    q.instance.restore(p.instance.snapshot())
    q.booted, q.nonce = True, p.nonce
    r = q.send("", frm=STRANGER, Action="Transfer", Recipient=OWNER, Quantity="3")
    assert [tags_of(m)["Action"] for m in r.messages] == ["Debit-Notice", "Credit-Notice"]
    assert json.loads(q.value("require('json').encode(Balances)")) == {
        PID: str(int(INITIAL) - 7),
        STRANGER: "4",
        OWNER: "3",
    }
