"""Cron strings: Inngest syntax, weekdays as in standard cron, zones and DST, next-fire times.

Every test passes its own ``after`` instant: nothing here reads the clock.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from tengo_jobs.core.cron import parse_cron
from tengo_jobs.errors import ConfigurationError

UTC = dt.timezone.utc


def ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso).timestamp() * 1000)


def fires(expr: str, after_iso: str, n: int) -> list[dt.datetime]:
    """The next ``n`` ticks after ``after_iso``, in the spec's zone."""
    spec = parse_cron(expr)
    zone = zoneinfo.ZoneInfo(spec.timezone)
    out, cursor = [], ms(after_iso)
    for _ in range(n):
        cursor = spec.next_fire(cursor)
        assert cursor is not None
        out.append(dt.datetime.fromtimestamp(cursor / 1000, zone))
    return out


# -- weekdays ---------------------------------------------------------------------------------
def test_one_to_five_fires_monday_to_friday_only():
    ticks = fires("0 9 * * 1-5", "2026-01-04T00:00:00+00:00", 10)  # a Sunday
    assert [t.strftime("%a") for t in ticks] == ["Mon", "Tue", "Wed", "Thu", "Fri"] * 2
    assert all((t.hour, t.minute) == (9, 0) for t in ticks)


@pytest.mark.parametrize("dow", ["0", "7", "sun", "SUN"])
def test_zero_and_seven_are_sunday(dow):
    ticks = fires(f"0 9 * * {dow}", "2026-01-01T00:00:00+00:00", 3)
    assert [t.strftime("%a %d") for t in ticks] == ["Sun 04", "Sun 11", "Sun 18"]


def test_range_ending_in_seven_includes_sunday():
    ticks = fires("0 9 * * 5-7", "2026-01-05T00:00:00+00:00", 3)  # Monday
    assert [t.strftime("%a") for t in ticks] == ["Fri", "Sat", "Sun"]


def test_weekday_step_counts_from_sunday_like_standard_cron():
    ticks = fires("0 9 * * */2", "2026-01-04T00:00:00+00:00", 4)  # Sunday
    assert [t.strftime("%a") for t in ticks] == ["Sun", "Tue", "Thu", "Sat"]


def test_day_of_month_and_weekday_both_restricted_fire_on_either():
    # Standard cron: the 1st of the month OR any Friday.
    ticks = fires("0 9 1 * 5", "2026-01-01T10:00:00+00:00", 5)
    assert [t.strftime("%a %d") for t in ticks] == ["Fri 02", "Fri 09", "Fri 16", "Fri 23", "Fri 30"]
    ticks = fires("0 9 1 * 5", "2026-01-30T10:00:00+00:00", 2)
    assert [t.strftime("%a %d %b") for t in ticks] == ["Sun 01 Feb", "Fri 06 Feb"]


# -- zones ------------------------------------------------------------------------------------
def test_tz_prefix_fires_at_local_time():
    [tick] = fires("TZ=America/Argentina/Buenos_Aires 0 9 * * *", "2026-01-01T00:00:00+00:00", 1)
    assert tick.isoformat() == "2026-01-01T09:00:00-03:00"
    assert tick.astimezone(UTC).hour == 12


def test_without_prefix_the_zone_is_utc():
    [tick] = fires("30 6 * * *", "2026-01-01T07:00:00+00:00", 1)
    assert tick.isoformat() == "2026-01-02T06:30:00+00:00"


def test_next_fire_is_strictly_after_a_tick_it_sits_on():
    spec = parse_cron("*/5 * * * *")
    on_tick = ms("2026-01-01T00:05:00+00:00")
    assert spec.next_fire(on_tick) == ms("2026-01-01T00:10:00+00:00")
    assert spec.next_fire(on_tick - 1) == on_tick


def test_ticks_between_is_half_open_and_ordered():
    spec = parse_cron("0 * * * *")
    ticks = spec.ticks_between(ms("2026-01-01T00:00:00+00:00"), ms("2026-01-01T03:00:00+00:00"))
    assert ticks == [ms(f"2026-01-01T0{h}:00:00+00:00") for h in (1, 2, 3)]


def test_latest_tick_after_long_downtime_is_found_without_walking_every_tick():
    spec = parse_cron("* * * * *")
    latest = spec.latest_tick(ms("2020-01-01T00:00:00+00:00"), ms("2026-01-01T12:34:56+00:00"))
    assert latest == ms("2026-01-01T12:34:00+00:00")
    assert spec.latest_tick(ms("2026-01-01T12:34:00+00:00"), ms("2026-01-01T12:34:59+00:00")) is None


def test_a_date_that_never_comes_has_no_next_fire():
    assert parse_cron("0 0 30 2 *").next_fire(ms("2026-01-01T00:00:00+00:00")) is None


# -- daylight saving time ---------------------------------------------------------------------
def test_spring_forward_skipped_wall_time_fires_once_after_the_jump():
    # 2026-03-08 New York: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist that day.
    ticks = fires("TZ=America/New_York 30 2 * * *", "2026-03-07T12:00:00+00:00", 3)
    assert [t.isoformat() for t in ticks] == [
        "2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"]


def test_fall_back_repeated_wall_time_fires_once_and_does_not_loop():
    # 2026-11-01 New York: 01:00-02:00 happens twice (EDT, then EST).
    ticks = fires("TZ=America/New_York 30 1 * * *", "2026-10-31T12:00:00+00:00", 3)
    assert [t.isoformat() for t in ticks] == [
        "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"]


def test_berlin_dst_both_ways_one_tick_per_day():
    spring = fires("TZ=Europe/Berlin 30 2 * * *", "2026-03-28T12:00:00+00:00", 2)
    assert [t.isoformat() for t in spring] == ["2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"]
    autumn = fires("TZ=Europe/Berlin 30 2 * * *", "2026-10-24T12:00:00+00:00", 3)
    assert [t.isoformat() for t in autumn] == [
        "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00", "2026-10-27T02:30:00+01:00"]


def test_hourly_across_a_transition_never_repeats_a_tick():
    for start in ("2026-03-07T12:00:00+00:00", "2026-10-31T12:00:00+00:00"):
        spec = parse_cron("TZ=America/New_York 0,30 * * * *")
        ticks = spec.ticks_between(ms(start), ms(start) + 3 * 86_400_000)
        assert ticks == sorted(set(ticks))
        gaps = {b - a for a, b in zip(ticks, ticks[1:])}
        assert min(gaps) >= 30 * 60_000
        assert max(gaps) <= 90 * 60_000  # at most the one skipped/repeated hour


def test_apscheduler_trigger_follows_the_same_ticks():
    spec = parse_cron("TZ=America/New_York 30 1 * * *")
    trig = spec.apscheduler_trigger()
    now = dt.datetime(2026, 11, 1, 5, 31, tzinfo=UTC)  # 01:31 EDT, before the repeat
    nxt = trig.get_next_fire_time(None, now)
    assert nxt == dt.datetime(2026, 11, 2, 6, 30, tzinfo=UTC)  # not 01:30 EST the same night
    prev = dt.datetime(2026, 11, 2, 6, 30, tzinfo=UTC)
    assert trig.get_next_fire_time(prev, prev) == dt.datetime(2026, 11, 3, 6, 30, tzinfo=UTC)


# -- the seconds test hook --------------------------------------------------------------------
def test_seconds_field_hook_gives_sub_minute_ticks():
    spec = parse_cron("* * * * *", second="*/2")
    start = ms("2026-01-01T00:00:00+00:00")
    assert spec.ticks_between(start, start + 6_000) == [start + 2_000, start + 4_000, start + 6_000]


# -- bad configuration ------------------------------------------------------------------------
@pytest.mark.parametrize("expr, words", [
    ("61 * * * *", ["minute", "'61'"]),
    ("0 25 * * *", ["hour", "'25'"]),
    ("0 9 32 * *", ["day-of-month", "'32'"]),
    ("0 9 * 13 *", ["month", "'13'"]),
    ("0 9 * * 8", ["day-of-week", "'8'"]),
    ("0 9 * * 5-1", ["day-of-week", "backwards"]),
    ("0 9 * *", ["5 fields", "got 4"]),
    ("TZ=Mars/Olympus 0 9 * * *", ["time zone", "'Mars/Olympus'"]),
])
def test_bad_cron_names_the_function_and_the_field(expr, words):
    with pytest.raises(ConfigurationError) as info:
        parse_cron(expr, function_id="nightly-report")
    message = str(info.value)
    assert "'nightly-report'" in message
    for word in words:
        assert word in message


def test_bad_cron_fails_when_the_function_is_declared():
    from tengo_jobs import Jobs
    from tengo_jobs.core.registry import Registry

    jobs = Jobs(app_id="t", runtime=object(), registry=Registry())
    with pytest.raises(ConfigurationError, match="'bad-zone'.*unknown time zone 'Nowhere/City'"):
        jobs.function("bad-zone", cron="TZ=Nowhere/City 0 9 * * *")(lambda ctx, step: None)
