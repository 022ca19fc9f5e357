import pytest

from pyao.data import DataItem, Tag, ao
from pyao.errors import AoTagError

MOD = "M" * 42 + "A"
SU = "S" * 42 + "A"


def names(tags):
    return [t.name for t in tags]


def test_message_tags_follow_aoconnect_layout():
    tags = ao.message_tags([("Action", "Eval"), ("Variant", "ignored-is-replaced")])
    assert tags == (
        Tag("Action", "Eval"),
        Tag("Variant", "ignored-is-replaced"),  # unassociated: not part of the ao section
        Tag("Data-Protocol", "ao"),
        Tag("Variant", "ao.TN.1"),
        Tag("Type", "Message"),
    )


def test_process_tags_have_module_scheduler_and_authorities():
    tags = ao.process_tags(MOD, SU, [("Name", "p")], authorities=["a1", "a2"], timestamp_ms=5)
    assert names(tags) == [
        "Name",
        "Authority",
        "Authority",
        "Data-Protocol",
        "Variant",
        "Type",
        "Module",
        "Scheduler",
        "Timestamp",
    ]


def test_assignment_tags_in_su_order():
    tags = ao.assignment_tags(
        process=MOD, nonce=3, hash_chain="hc", block_height=1393008, timestamp_ms=1700, message=SU, exclude=["Data"]
    )
    assert names(tags) == [
        "Process",
        "Epoch",
        "Nonce",
        "Hash-Chain",
        "Block-Height",
        "Timestamp",
        "Data-Protocol",
        "Type",
        "Variant",
        "Message",
        "Exclude",
    ]
    assert ao.first_tag(tags, "Block-Height") == "000001393008"


def test_sections_and_concat():
    tags = (
        Tag("U", "1"),
        Tag("Data-Protocol", "ao"),
        Tag("Type", "Process"),
        Tag("Data-Protocol", "zone"),
        Tag("Type", "Profile"),
    )
    assert ao.unassociated_tags(tags) == (Tag("U", "1"),)
    assert ao.protocol_tags(tags) == tags[1:3]
    assert ao.protocol_tags(tags, "zone") == tags[3:]
    assert ao.concat_protocol([Tag("X", "y")], tags)[3] == Tag("X", "y")
    assert ao.concat_unassociated([Tag("V", "2")], tags)[1] == Tag("V", "2")
    assert ao.remove_protocol_tag("Type", tags) == (tags[0], tags[1], tags[3], tags[4])
    assert ao.concat_protocol([Tag("X", "y")], (Tag("U", "1"),)) == (
        Tag("U", "1"),
        Tag("Data-Protocol", "ao"),
        Tag("X", "y"),
    )


def test_readers(signers):
    signer = signers[2]
    process = DataItem.create(b" ", signer=signer, tags=ao.process_tags(MOD, SU, authorities=["a, b", "c"]))
    info = ao.ProcessInfo.from_item(process)
    assert (info.module, info.scheduler, info.authorities) == (MOD, SU, ("a", "b", "c"))

    module = DataItem.create(
        b"\0asm", signer=signer, tags=ao.module_tags("wasm32-unknown-emscripten4", memory_limit="1-gb")
    )
    assert ao.ModuleInfo.from_item(module).memory_limit == "1-gb"

    assignment = DataItem.create(
        b"",
        signer=signer,
        tags=ao.assignment_tags(process=MOD, nonce=7, hash_chain="h", block_height=12, timestamp_ms=99),
    )
    parsed = ao.AssignmentInfo.from_item(assignment)
    assert (parsed.nonce, parsed.block_height, parsed.message) == (7, 12, None)

    loc = DataItem.create(
        b"",
        signer=signer,
        tags=[
            ("data-protocol", "ao"),
            ("TYPE", "Scheduler-Location"),
            ("url", "http://127.0.0.1:9000"),
            ("Time-To-Live", "1000"),
        ],
    )
    assert ao.SchedulerLocation.from_item(loc).url == "http://127.0.0.1:9000"
    assert ao.SchedulerLocation.from_item(loc).address == signer.address


def test_readers_refuse_missing_tags(signers):
    signer = signers[2]
    no_module = DataItem.create(
        b"", signer=signer, tags=[("Data-Protocol", "ao"), ("Type", "Process"), ("Scheduler", SU)]
    )
    with pytest.raises(AoTagError, match="Module"):
        ao.ProcessInfo.from_item(no_module)
    with pytest.raises(AoTagError, match="expected Process"):
        ao.ProcessInfo.from_item(DataItem.create(b"", signer=signer, tags=ao.message_tags()))
    bad_nonce = DataItem.create(
        b"",
        signer=signer,
        tags=(
            *ao.assignment_tags(process=MOD, nonce=1, hash_chain="h", block_height=1, timestamp_ms=1)[:2],
            Tag("Nonce", "-1"),
            Tag("Data-Protocol", "ao"),
            Tag("Type", "Assignment"),
        ),
    )
    with pytest.raises(AoTagError):
        ao.AssignmentInfo.from_item(bad_nonce)
    assert ao.ao_type(DataItem.create(b"", signer=signer, tags=[("Type", "Message")])) is None
