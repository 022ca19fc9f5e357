import hashlib
import struct

import pytest

from pyao.data import DataItem, Ed25519Signer, Tag, b64url_encode, deep_hash
from pyao.data.item import _U64_PAIR
from pyao.errors import DataError, ParseError, SignatureError, TagError, UnsupportedSignatureType, WalletError

PID = b64url_encode(bytes(range(32)))


def test_create_parse_verify_round_trip(signer):
    item = DataItem.create(
        b"payload", signer=signer, tags=[("Action", "Eval"), ("Action", "Again")], target=PID, anchor="0" * 32
    )
    raw = item.to_bytes()
    parsed = DataItem.from_bytes(raw, verify=True)
    assert parsed == item
    assert parsed.to_bytes() == raw
    assert parsed.id == b64url_encode(hashlib.sha256(parsed.signature).digest())
    assert parsed.target_id == PID
    assert parsed.anchor_text == "0" * 32
    assert parsed.tag_values("Action") == ["Eval", "Again"]
    assert parsed.owner == signer.owner
    assert parsed.owner_address == signer.address


def test_signature_covers_the_reference_deep_hash_form(signer):
    """Signed message is deepHash(["dataitem","1",type,owner,target,anchor,tagBytes,data])."""
    item = DataItem.create(b"d", signer=signer, tags=[("k", "v")])
    expected = deep_hash(
        [b"dataitem", b"1", str(signer.signature_type).encode(), item.owner, b"", b"", item.tag_bytes, b"d"]
    )
    assert item.signature_data() == expected


def test_layout_of_a_bare_item(signers):
    signer = signers[2]
    item = DataItem.create(b"", signer=signer)
    raw = item.to_bytes()
    assert raw[:2] == b"\x02\x00"
    assert raw[2 + 64 : 2 + 64 + 32] == signer.owner
    assert raw[98:] == b"\x00\x00" + struct.pack("<QQ", 0, 0)


@pytest.mark.parametrize("where", ["data", "tag", "owner", "signature", "target", "anchor"])
def test_any_tampering_fails_verification(signer, where):
    item = DataItem.create(b"data!", signer=signer, tags=[("Tag", "value")], target=PID, anchor="a" * 32)
    raw = bytearray(item.to_bytes())
    sig_len = len(item.signature)
    owner_at = 2 + sig_len
    target_at = owner_at + len(item.owner) + 1
    offsets = {
        "signature": 2 + sig_len // 2,
        "owner": owner_at + 5,
        "target": target_at + 3,
        "anchor": target_at + 33 + 3,
        "tag": len(raw) - len(item.data) - 3,
        "data": len(raw) - 1,
    }
    raw[offsets[where]] ^= 0x01
    try:
        tampered = DataItem.from_bytes(bytes(raw))
    except DataError:
        return  # a tampered owner can be an invalid key: refusing it at parse is fine too
    assert not tampered.verify()
    with pytest.raises(SignatureError):
        DataItem.from_bytes(bytes(raw), verify=True)


def test_reserialises_foreign_tag_encodings_byte_for_byte(signers):
    """Tags written as two Avro blocks (one with a negative count) must keep their exact bytes."""
    signer = signers[2]
    body = b"\x02a\x021"
    foreign = b"\x01" + b"\x0a" + body + b"\x02" + b"\x02b\x022" + b"\x00"  # -1 count, size 5; then 1 block
    unsigned = DataItem(2, b"", signer.owner, b"", b"", (), foreign, b"x")
    signed = DataItem(2, signer.sign(unsigned.signature_data()), signer.owner, b"", b"", (), foreign, b"x")
    # fix the header count: the item holds 2 tags
    raw = bytearray(signed.to_bytes())
    tag_header = 2 + 64 + 32 + 2
    raw[tag_header : tag_header + 16] = _U64_PAIR.pack(2, len(foreign))
    parsed = DataItem.from_bytes(bytes(raw), verify=True)
    assert parsed.tags == (Tag("a", "1"), Tag("b", "2"))
    assert parsed.to_bytes() == bytes(raw)


def test_tag_count_must_match_the_header(signers):
    item = DataItem.create(b"x", signer=signers[2], tags=[("a", "1")])
    raw = bytearray(item.to_bytes())
    raw[100:108] = struct.pack("<Q", 2)
    with pytest.raises(ParseError, match="2 tags"):
        DataItem.from_bytes(bytes(raw))


def test_tag_byte_limit_on_parse(signers):
    item = DataItem.create(b"x", signer=signers[2])
    raw = bytearray(item.to_bytes())
    raw[100:116] = _U64_PAIR.pack(0, 4097)
    with pytest.raises(TagError):
        DataItem.from_bytes(bytes(raw) + b"\x00" * 5000)


def test_presence_flags_must_be_zero_or_one(signers):
    raw = bytearray(DataItem.create(b"x", signer=signers[2]).to_bytes())
    raw[98] = 2
    with pytest.raises(ParseError, match="target flag"):
        DataItem.from_bytes(bytes(raw))


def test_unknown_signature_type_is_a_typed_error():
    with pytest.raises(UnsupportedSignatureType, match="known types"):
        DataItem.from_bytes(b"\x07\x00" + b"\x00" * 200)


@pytest.mark.parametrize("anchor", ["short", "x" * 33, b"\x00" * 31])
def test_anchor_must_be_32_bytes(signers, anchor):
    with pytest.raises(ParseError, match="anchor"):
        DataItem.create(b"", signer=signers[2], anchor=anchor)


@pytest.mark.parametrize("target", ["not-an-id", "x" * 42, b"\x00" * 31])
def test_target_must_be_an_id(signers, target):
    with pytest.raises(ParseError):
        DataItem.create(b"", signer=signers[2], target=target)


def test_every_prefix_of_an_item_is_refused(signers):
    raw = DataItem.create(b"", signer=signers[3], tags=[("a", "b")], target=PID, anchor="z" * 32).to_bytes()
    # With no data, every strict prefix cuts a required field; none may parse.
    for cut in range(len(raw)):
        with pytest.raises(DataError):
            DataItem.from_bytes(raw[:cut])


def test_ethereum_owner_address_is_eip55(signers):
    item = DataItem.create(b"", signer=signers[3])
    assert item.owner_address == "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"


def test_string_data_is_utf8(signers):
    assert DataItem.create("☃", signer=signers[2]).data == "☃".encode()


def test_ethereum_signatures_are_not_malleable(signers):
    """arbundles ignores v; pyao does not, so nobody can mint a second id for the same item."""
    item = DataItem.create(b"pay 5", signer=signers[3])
    sig = item.signature
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = (n - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big")
    other_v = 27 + 28 - sig[64]
    variants = [
        sig[:64] + bytes([other_v]),  # the other recovery id
        sig[:64] + bytes([sig[64] - 27]),  # 0/1 style v
        sig[:32] + high_s + bytes([other_v]),  # (r, n - s) with the flipped v also recovers the key
    ]
    for variant in variants:
        forged = DataItem(3, variant, item.owner, b"", b"", (), b"", item.data)
        assert forged.id != item.id
        assert not forged.verify()
    assert item.verify()


def test_a_passed_check_is_remembered_and_only_for_the_same_signed_bytes(monkeypatch):
    """MU, SU and gateway check one item in turn in ``pyao up``: the second check of the same
    (type, owner, signed message, signature) is a memo hit; any other item is checked afresh,
    and a failed check is never remembered."""
    import dataclasses

    from pyao.data import Ed25519Signer
    from pyao.data import item as item_module

    class OwnSigner(Ed25519Signer):  # a subclass is not trusted to sign valid items: checked like any
        pass

    signer = OwnSigner.from_seed(bytes([91]) * 32)
    item = DataItem.create(b"memo me", signer=signer, tags=[("Action", "Eval")], target=PID)
    calls: list[bytes] = []
    real = item_module.scheme_for(2)

    def counting(owner: bytes, message: bytes, signature: bytes) -> bool:
        calls.append(message)
        return real.verify(owner, message, signature)

    scheme = dataclasses.replace(real, verify=counting)
    monkeypatch.setattr(item_module, "scheme_for", lambda t: scheme)
    assert item.verify() and len(calls) == 1
    assert DataItem.from_bytes(item.to_bytes(), verify=True) == item and len(calls) == 1
    tampered = dataclasses.replace(item, data=b"memo you")  # same owner and signature, other content
    assert not tampered.verify() and len(calls) == 2
    assert not tampered.verify() and len(calls) == 3  # failures are checked every time
    forged = dataclasses.replace(item, signature=bytes(64))
    assert not forged.verify() and len(calls) == 4


def test_what_a_self_verifying_signer_signs_is_remembered_parsed_and_verified(monkeypatch):
    """In ``pyao up`` the MU signs what it forwards and the SU its assignments; the SU and the
    gateway take those bytes next. Signed by a built-in signer, they are neither parsed nor
    checked again, and the remembered item is exactly what a parse gives. A subclass (it may
    override ``sign``) is not trusted: its bad signature is still refused."""
    import dataclasses

    from pyao.data import Ed25519Signer, Wallet
    from pyao.data import item as item_module

    calls: list[bytes] = []

    def counting_scheme(t):
        real = item_module.SCHEMES[t]

        def verify(owner: bytes, message: bytes, signature: bytes) -> bool:
            calls.append(message)
            return real.verify(owner, message, signature)

        return dataclasses.replace(real, verify=verify)

    monkeypatch.setattr(item_module, "scheme_for", counting_scheme)
    for signer in (Ed25519Signer.from_seed(bytes([93]) * 32), Wallet.generate()):
        item = DataItem.create(b"signed here", signer=signer, tags=[("Action", "Eval")], target=PID)
        raw = item.to_bytes()
        assert DataItem.from_bytes(raw, verify=True) is item and calls == []
        assert item_module._parse(raw) == item
        assert item_module.SCHEMES[signer.signature_type].verify(item.owner, item.signature_data(), item.signature)

    class Broken(Ed25519Signer):
        def sign(self, message: bytes) -> bytes:
            return bytes(64)

    bad = DataItem.create(b"signed badly", signer=Broken.from_seed(bytes([94]) * 32), target=PID)
    with pytest.raises(SignatureError):
        DataItem.from_bytes(bad.to_bytes(), verify=True)
    assert len(calls) == 1


def test_the_signature_memo_is_bounded():
    from pyao.data.item import _VerifiedSignatures

    memo = _VerifiedSignatures(3)
    for key in (b"a", b"b", b"c", b"d"):
        memo.add(key)
    assert not memo.seen(b"a") and all(memo.seen(k) for k in (b"b", b"c", b"d"))


def test_a_parse_is_remembered_by_its_exact_bytes_and_only_when_it_succeeds(signer):
    """``pyao up`` parses one item at the MU, the SU, the gateway and the SU's renderer: the same
    bytes give the same (immutable) item without a new parse; bad bytes are refused every time."""
    item = DataItem.create(b"parse me once", signer=signer, tags=[("Action", "Eval")], target=PID)
    raw = item.to_bytes()
    first = DataItem.from_bytes(raw)
    assert DataItem.from_bytes(bytearray(raw)) is first and DataItem.from_bytes(memoryview(raw)) is first
    assert first == item and first.to_bytes() == raw
    broken = raw[:-1] + b"\x00" + raw[-1:]  # one byte more than the header's tags + data: other data
    assert DataItem.from_bytes(broken) is not first and DataItem.from_bytes(broken).data != item.data
    truncated = raw[:40]
    for _ in range(2):
        with pytest.raises(ParseError):
            DataItem.from_bytes(truncated)


def test_the_parse_memo_is_bounded_by_count_and_bytes(signer):
    from pyao.data.item import _ParsedItems

    items = [DataItem.create(bytes([n]) * 100, signer=signer) for n in range(4)]
    raws = [i.to_bytes() for i in items]
    memo = _ParsedItems(3, 10_000, 10_000)
    for raw, item in zip(raws, items, strict=True):
        memo.add(raw, item)
    assert memo.get(raws[0]) is None and all(memo.get(r) is not None for r in raws[1:])
    by_size = _ParsedItems(100, 10_000, 2 * len(raws[0]))
    for raw, item in zip(raws, items, strict=True):
        by_size.add(raw, item)
    assert [by_size.get(r) is not None for r in raws] == [False, False, True, True]
    too_big = _ParsedItems(100, len(raws[0]) - 1, 10**9)
    too_big.add(raws[0], items[0])
    assert too_big.get(raws[0]) is None


def test_id_and_a_passed_check_are_computed_once_and_not_carried_by_replace(signer):
    import dataclasses

    item = DataItem.create(b"once", signer=signer)
    assert item.verify() and item._verified and item.id == item._id
    other = dataclasses.replace(item, data=b"twice")
    assert other._id == "" and not other._verified and not other.verify()
    assert (
        other.id != ""
        and other == dataclasses.replace(item, data=b"twice")
        and hash(other) == hash(dataclasses.replace(item, data=b"twice"))
    )


def test_remembered_owner_keys_and_addresses_answer_as_fresh_ones():
    from pyao.data import Ed25519Signer
    from pyao.data.signing import _verify_ed25519, arweave_address

    signer = Ed25519Signer.from_seed(bytes([77]) * 32)
    item = DataItem.create(b"remembered", signer=signer)
    message = item.signature_data()
    for _ in range(2):  # the second time from the remembered key and address
        owner = bytes(bytearray(item.owner))  # an equal owner in a new object, as a fresh parse gives
        assert _verify_ed25519(owner, message, item.signature)
        assert not _verify_ed25519(owner, message, bytes(64))
        assert arweave_address(owner) == b64url_encode(hashlib.sha256(owner).digest()) == item.owner_address
    assert not _verify_ed25519(b"\x01" * 31, message, item.signature)  # a malformed owner is still refused


def test_ed25519_is_rfc8032_and_refuses_what_openssl_refuses():
    """libsodium signs (and derives keys) exactly as OpenSSL's Ed25519 (RFC 8032 is deterministic);
    its verify accepts the valid signatures and refuses tampered ones and a non-canonical S."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from pyao.data.signing import SCHEMES

    verify = SCHEMES[2].verify
    order = 2**252 + 27742317777372353535851937790883648493  # the group order L
    for n in range(64):
        seed, message = bytes([n]) * 32, bytes(range(n)) * 3
        ours, openssl = Ed25519Signer.from_seed(seed), ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        signature = ours.sign(message)
        assert signature == openssl.sign(message)
        assert ours.owner == openssl.public_key().public_bytes_raw()
        assert verify(ours.owner, message, signature)
        bad = bytearray(signature)
        bad[n] ^= 1
        assert not verify(ours.owner, message, bytes(bad))
        # S + L verifies the same equation, but is not canonical: both libraries refuse it
        s_plus_l = (int.from_bytes(signature[32:], "little") + order).to_bytes(32, "little")
        assert not verify(ours.owner, message, signature[:32] + s_plus_l)
        assert not verify(ours.owner, message + b"!", signature)
    assert not verify(bytes(31), b"m", bytes(64))  # a short owner is refused, not an exception
    assert not verify(bytes(32), b"m", bytes(63))


def test_ed25519_signer_keeps_its_seed():
    signer = Ed25519Signer.generate()
    again = Ed25519Signer.from_seed(signer.seed)
    assert again.owner == signer.owner and again.sign(b"x") == signer.sign(b"x")
    with pytest.raises(WalletError):
        Ed25519Signer.from_seed(b"short")
