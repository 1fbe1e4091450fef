"""ThingsBoard's activity reporting strategies on the HTTP input (http.reporting_strategy,
http.reporting_period), through the real binary: what reaches the engine, when, and with
which timestamp.  Activities carry explicit `ts` values so that the asserted times are exact;
waits are bounded, and only lower bounds are asserted on elapsed time: a check that something
is still held is made only while the clock says its period cannot have ended yet."""
import time

import pytest

from conftest import dev_path, events_of, now_ms, wait_events, wait_until

PERIOD = 1000


def start(start_daemon, strategy):
    return start_daemon(sets=["http.reporting_strategy=" + strategy, "http.reporting_period=%dms" % PERIOD])


def last_activity(c, dev):
    r = c.device(dev)
    return r.body["lastActivityTime"] if r.status == 200 else None


def wait_last(c, dev, want, timeout=5.0):
    return wait_until(lambda: last_activity(c, dev) == want, timeout)


def within_period(sent):
    """True while no period opened at monotonic time `sent` can have ended."""
    return time.monotonic() - sent < PERIOD / 1000.0 - 0.05


def test_all_is_the_default(daemon, client):
    t0 = now_ms()
    for k in range(3):
        assert client.activity("a", ts=t0 + k).status == 202
    assert last_activity(client, "a") == t0 + 2
    s = client.stats()
    assert s["activities"] == 3
    http = s["inputs"]["http"]
    assert http["reportingStrategy"] == "ALL" and http["reportingPeriod"] == 3000
    assert http["forwarded"] == 3 and http["held"] == 0 and http["tracking"] == 0


@pytest.mark.bb_timeout(30)
def test_first(start_daemon):
    d = start(start_daemon, "FIRST")
    c = d.client()
    t0 = now_ms()
    sent = time.monotonic()
    c.activity("f", ts=t0)  # the first of its period: reported at once
    ev = events_of(d.data_dir, "f", "ACTIVITY_EVENT")  # committed before the answer
    assert len(ev) == 1 and ev[0]["ts"] == t0
    c.activity("f", ts=t0 + 50)
    c.activity("f", ts=t0 + 100)
    held = last_activity(c, "f")
    if within_period(sent):
        assert held == t0
    assert c.stats()["activities"] == 1  # held ones never reach the engine before the record
    # No activity in the next period: the newest held one is recorded when it ends.
    assert wait_last(c, "f", t0 + 100)
    assert time.monotonic() - sent >= 2 * PERIOD / 1000.0 - 0.02
    http = c.stats()["inputs"]["http"]
    assert http["forwarded"] == 1 and http["held"] == 2 and http["recorded"] == 1, http
    assert wait_until(lambda: c.stats()["inputs"]["http"]["tracking"] == 0, 2.0)
    assert [e["type"] for e in events_of(d.data_dir, "f")] == ["ACTIVITY_EVENT"]


@pytest.mark.bb_timeout(30)
def test_first_edge_no_flip_flop(start_daemon):
    """The deferred activity arrives after the device went inactive (timeout < 2 periods): it
    corrects lastActivityTime and leaves the device inactive; no second ACTIVITY_EVENT."""
    d = start(start_daemon, "FIRST")
    c = d.client()
    c.put(dev_path("e"), json_body={"inactivityTimeout": 1200})
    t0 = now_ms()
    c.activity("e", ts=t0)
    c.activity("e", ts=t0 + 300)  # held
    ev = wait_until(lambda: events_of(d.data_dir, "e", "INACTIVITY_EVENT"), 5.0)
    assert ev and ev[0]["ts"] == t0 + 1200
    assert wait_last(c, "e", t0 + 300)  # recorded at the end of the second period (~2 s)
    time.sleep(0.3)
    dev = c.device("e").body
    assert dev["active"] is False
    kinds = [e["type"] for e in events_of(d.data_dir, "e")]
    assert kinds == ["ACTIVITY_EVENT", "INACTIVITY_EVENT", "ALARM_RAISED"], kinds


@pytest.mark.bb_timeout(30)
def test_last(start_daemon):
    d = start(start_daemon, "LAST")
    c = d.client()
    t0 = now_ms()
    sent = time.monotonic()
    assert c.activity("l", ts=t0 + 50).body == {"accepted": 1}
    c.activity("l", ts=t0)  # older device time: the newest one is reported
    status = c.device("l").status
    if within_period(sent):
        assert status == 404  # nothing has reached the engine yet
    assert wait_until(lambda: c.device("l").status == 200, 5.0)
    assert time.monotonic() - sent >= PERIOD / 1000.0 - 0.02
    assert last_activity(c, "l") == t0 + 50
    ev = wait_events(d.data_dir, "l", "ACTIVITY_EVENT")
    assert len(ev) == 1 and ev[0]["ts"] == t0 + 50
    assert c.stats()["activities"] == 1
    # Sessions are not subject to the strategy.
    assert c.post(dev_path("conn", "/connect")).status == 202
    assert c.device("conn").status == 200


@pytest.mark.bb_timeout(30)
def test_first_and_last(start_daemon):
    d = start(start_daemon, "FIRST_AND_LAST")
    c = d.client()
    t0 = now_ms()
    sent = time.monotonic()
    c.activity("fl", ts=t0)
    ev = events_of(d.data_dir, "fl", "ACTIVITY_EVENT")  # first: at once
    assert len(ev) == 1 and ev[0]["ts"] == t0
    c.activity("fl", ts=t0 + 100)
    c.activity("fl", ts=t0 + 60)
    held = last_activity(c, "fl")
    if within_period(sent):
        assert held == t0
    assert wait_last(c, "fl", t0 + 100)  # last: at the period's end
    assert time.monotonic() - sent >= PERIOD / 1000.0 - 0.02
    assert c.stats()["activities"] == 2
    # A lone activity is both first and last: reported once.
    t1 = now_ms()
    c.activity("one", ts=t1)
    time.sleep(3 * PERIOD / 1000.0)
    assert last_activity(c, "one") == t1
    assert c.stats()["activities"] == 3


@pytest.mark.bb_timeout(30)
def test_bulk_goes_through_the_strategy(start_daemon):
    d = start(start_daemon, "LAST")
    c = d.client()
    t0 = now_ms()
    sent = time.monotonic()
    r = c.post("/api/v1/activity", json_body=[{"id": "b1", "ts": t0}, {"id": "b1", "ts": t0 + 9}, "b2", 5])
    assert r.status == 202 and r.body["accepted"] == 3 and r.body["rejectedCount"] == 1
    held = (c.device("b1").status, c.device("b2").status)
    if within_period(sent):
        assert held == (404, 404)
    assert wait_last(c, "b1", t0 + 9)
    assert c.device("b2").status == 200
    assert c.stats()["inputs"]["http"]["reported"] == 2


def test_deleted_device_forgets_held_activity(start_daemon):
    d = start(start_daemon, "LAST")
    c = d.client()
    c.put(dev_path("x"), json_body={})
    c.activity("x")
    assert c.delete(dev_path("x")).status == 204
    time.sleep(2 * PERIOD / 1000.0)
    assert c.device("x").status == 404  # the held activity did not bring it back


# Expected per device after one bulk of (t0, t0 + 50, t0 + 20): what the engine has at once, what it
# has once the periods ended, and the reporter's counters per device.
PER_SHARD_TIMELINE = {
    "ALL": (50, 50, {"forwarded": 3, "held": 0, "reported": 0, "recorded": 0}),
    "FIRST": (0, 50, {"forwarded": 1, "held": 2, "reported": 0, "recorded": 1}),
    "LAST": (None, 50, {"forwarded": 0, "held": 3, "reported": 1, "recorded": 0}),
    "FIRST_AND_LAST": (0, 50, {"forwarded": 1, "held": 2, "reported": 1, "recorded": 0}),
}


@pytest.mark.bb_timeout(30)
@pytest.mark.parametrize("strategy", sorted(PER_SHARD_TIMELINE))
def test_strategies_with_shards(start_daemon, strategy):
    """Each shard runs its own reporter for its devices: with 4 shards and devices spread over
    them, every strategy keeps its timeline, periods end without further activity (the shards'
    workers end them), and the stats sum the shards."""
    d = start_daemon(sets=["http.reporting_strategy=" + strategy, "http.reporting_period=%dms" % PERIOD,
                           "engine.shards=4"])
    c = d.client()
    devs = ["s%02d" % i for i in range(16)]
    at_once, at_end, counts = PER_SHARD_TIMELINE[strategy]
    t0 = now_ms()
    sent = time.monotonic()
    items = [{"id": x, "ts": t0 + dt} for dt in (0, 50, 20) for x in devs]
    r = c.post("/api/v1/activity", json_body=items)
    assert r.status == 202 and r.body["accepted"] == 48, r.body
    now_seen = [last_activity(c, x) for x in devs]
    if within_period(sent):
        assert now_seen == [None if at_once is None else t0 + at_once] * 16, now_seen
    # One more device through the single-activity route.
    assert c.activity("single", ts=t0).status == 202
    for x in devs:
        assert wait_last(c, x, t0 + at_end), (x, last_activity(c, x))
    if strategy != "ALL":
        assert time.monotonic() - sent >= PERIOD / 1000.0 - 0.02
    assert wait_last(c, "single", t0)
    assert wait_until(lambda: c.stats()["inputs"]["http"]["tracking"] == 0, 5.0), c.stats()["inputs"]
    http = c.stats()["inputs"]["http"]
    assert http["reportingStrategy"] == strategy
    single = {"held": 1, "reported": 1} if strategy == "LAST" else {"forwarded": 1}
    for k, v in counts.items():
        assert http[k] == 16 * v + single.get(k, 0), (k, http)
    for x in devs:
        evs = events_of(d.data_dir, x, "ACTIVITY_EVENT")
        assert len(evs) == 1 and evs[0]["ts"] == t0 + (50 if strategy == "LAST" else 0), evs
