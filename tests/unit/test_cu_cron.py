import pytest

from pyao.cu._cron import Block, CronError, cron_ticks_between, parse_crons
from pyao.data import Tag


def tags(*pairs):
    return [Tag(n, v) for n, v in pairs]


def test_parse_binds_cron_tags_to_the_latest_interval():
    crons = parse_crons(
        tags(
            ("Name", "x"),
            ("Cron-Interval", "5-minutes"),
            ("Cron-Tag-Action", "Tick"),
            ("Cron-Tag-Foo", "Bar"),
            ("Cron-Interval", "10-blocks"),
            ("Cron-Tag-Action", "Block"),
        )
    )
    assert [(c.name, c.unit, c.every) for c in crons] == [
        ("0-5-minutes", "seconds", 300),
        ("1-10-blocks", "blocks", 10),
    ]
    assert crons[0].tags == (Tag("Action", "Tick"), Tag("Foo", "Bar"))
    assert crons[1].tags == (Tag("Action", "Block"),)


@pytest.mark.parametrize(
    "interval, unit, every",
    [
        ("1-second", "seconds", 1),
        ("90-secs", "seconds", 90),
        ("1.5-hours", "seconds", 5400),
        ("2-days", "seconds", 172800),
        ("1-week", "seconds", 604800),
        ("1-year", "seconds", 31557600),
        ("3-block", "blocks", 3),
        ("1500-ms", "seconds", 1),
        ("1-month", "seconds", None),  # ms 2.1.3 has no months: the official CU never fires it
        ("abc-blocks", "blocks", None),
    ],
)
def test_interval_units_follow_ms_2_1_3(interval, unit, every):
    (cron,) = parse_crons(tags(("Cron-Interval", interval)))
    assert (cron.unit, cron.every) == (unit, every)


@pytest.mark.parametrize(
    "tag_list", [[("Cron-Tag-Action", "x")], [("Cron-Interval", "500-ms")], [("Cron-Interval", "10")]]
)
def test_bad_crons_are_errors(tag_list):
    with pytest.raises(CronError):
        parse_crons(tags(*tag_list))


def test_time_ticks_skip_the_origin_and_respect_the_right_boundary():
    (cron,) = parse_crons(tags(("Cron-Interval", "10-seconds"), ("Cron-Tag-Action", "Cron")))
    origin = Block(100, 1_000_000)
    ticks = list(cron_ticks_between([cron], origin, origin, 0, 1_035_000, []))
    assert [t.timestamp_ms for t in ticks] == [1_010_000, 1_020_000, 1_030_000]
    assert all(t.block_height == 100 and t.ordinate == 0 for t in ticks)
    # the right boundary is exclusive
    assert [t.timestamp_ms for t in cron_ticks_between([cron], origin, origin, 0, 1_030_000, [])][-1] == 1_020_000


def test_block_crons_fire_before_time_crons_and_advance_the_height():
    crons = parse_crons(tags(("Cron-Interval", "2-blocks"), ("Cron-Interval", "5-seconds")))
    origin = Block(10, 0)
    left = Block(10, 0)
    blocks = [Block(11, 3_000), Block(12, 5_000), Block(13, 7_000)]
    ticks = list(cron_ticks_between(crons, origin, left, 4, 10_001, blocks))
    assert [(t.cron.name, t.timestamp_ms, t.block_height) for t in ticks] == [
        ("0-2-blocks", 5_000, 12),
        ("1-5-seconds", 5_000, 12),
        ("1-5-seconds", 10_000, 13),
    ]


def test_time_crons_sorted_most_frequent_first():
    crons = parse_crons(tags(("Cron-Interval", "4-seconds"), ("Cron-Interval", "2-seconds")))
    ticks = list(cron_ticks_between(crons, Block(0, 0), Block(0, 0), 0, 4_001, []))
    assert [t.cron.name for t in ticks] == ["1-2-seconds", "1-2-seconds", "0-4-seconds"]
