import hashlib

from pyao.cu._messages import evaluation_tags, from_schedule_entry, hydrate
from pyao.data import DataItem, ao, b64url_encode

PID = b64url_encode(bytes(range(32)))


def su_json(item: DataItem) -> dict:
    """An item in the SU's schedule JSON shape (spec §2.2)."""
    return {
        "id": item.id,
        "owner": {
            "address": b64url_encode(hashlib.sha256(item.owner).digest()),
            "key": b64url_encode(item.owner),
        },
        "data": item.data.decode("utf-8", "replace"),
        "tags": [{"name": t.name, "value": t.value} for t in item.tags],
        "signature": b64url_encode(item.signature),
        "anchor": item.anchor_text or None,
        "target": item.target_id or None,
    }


def assignment(signer, *, nonce, message=None, exclude=()):
    return DataItem.create(
        b"",
        signer=signer,
        tags=ao.assignment_tags(
            process=PID,
            nonce=nonce,
            hash_chain="hc",
            block_height=1234,
            timestamp_ms=1_700_000_000_000 + nonce,
            message=message,
            exclude=exclude,
        ),
    )


def test_scheduled_message_maps_like_the_official_cu(signers):
    user, su = signers[3], signers[2]
    message = DataItem.create("hi", signer=user, target=PID, tags=ao.message_tags([("Action", "Eval")]))
    entry = from_schedule_entry(
        {"message": su_json(message), "assignment": su_json(assignment(su, nonce=7, message=message.id))}
    )
    msg = entry.msg
    assert (entry.ordinate, entry.block_height, entry.is_assignment) == (7, 1234, False)
    assert msg["Id"] == message.id and msg["Target"] == PID
    assert msg["Owner"] == user.address and msg["From"] == user.address  # EIP-55 for an Ethereum key
    assert "Forwarded-By" not in msg
    assert (msg["Nonce"], msg["Epoch"], msg["Block-Height"], msg["Cron"]) == (7, 0, 1234, False)
    assert msg["Timestamp"] == 1_700_000_000_007 and msg["Data"] == "hi"


def test_pushed_message_is_from_the_process_and_forwarded_by_the_mu(signers):
    mu = signers[1]
    pushed = DataItem.create(
        " ", signer=mu, target=PID, tags=ao.message_tags([("From-Process", "P" * 43), ("From", "forged")])
    )
    entry = from_schedule_entry({"message": su_json(pushed), "assignment": su_json(assignment(signers[2], nonce=1))})
    assert entry.msg["From"] == "P" * 43 and entry.msg["Forwarded-By"] == mu.address
    assert [t["name"] for t in evaluation_tags(entry.msg)["Tags"]].count("From") == 0


def test_assignment_of_an_existing_item_is_hydrated_with_excludes(signers):
    other = DataItem.create("payload", signer=signers[1], target=PID, tags=[("Action", "Note")])
    entry = from_schedule_entry(
        {"message": None, "assignment": su_json(assignment(signers[2], nonce=3, message=other.id, exclude=["Data"]))}
    )
    assert entry.is_assignment and entry.exclude == ("Data",)
    assert entry.msg["Id"] == other.id and entry.msg["Target"] is None
    meta = {k: v for k, v in su_json(other).items() if k != "data"} | {"recipient": PID}
    hydrated = hydrate(entry, meta, data="payload").msg
    assert hydrated["Target"] == PID and hydrated["Owner"] == signers[1].address
    assert "Data" not in hydrated and hydrated["Nonce"] == 3
