"""GET /api/v1/stats and GET /metrics render one snapshot of the daemon
(core/stats.h): after a known workload, every figure the two show is the
same figure in both."""
import re
import socket
import time
from decimal import Decimal

import pytest

from conftest import EVENT_TYPES, dev_path, now_ms, wait_until
from outputs_util import NO_PROXY_ENV, SSE, Receiver, parse_exposition, sample

UDP_RE = re.compile(r"receiving heartbeats on ([0-9.]+):(\d+)")
N = 20          # devices by a bulk request
SHORT = 3       # of them get a short timeout and go inactive


def scrape(c):
    r = c.get("/metrics")
    assert r.status == 200, r
    text = r.raw.decode("utf-8")
    return parse_exposition(text), text


def settled(c, udp_lines):
    s = c.stats()
    return (s["inactive"] == SHORT and s["outbox"]["committedSeq"] == s["lastSeq"]
            and s["outbox"]["sinks"][0]["lag"] == 0 and s["shards"]["queued"] == 0
            and s["udp"]["activities"] + sum(s["udp"]["rejected"].values()) == udp_lines)


def shared(s):
    """The figures of /api/v1/stats that /metrics shows too."""
    return {
        "devices": (s["active"], s["inactive"]), "sessions": s["sessions"], "events": s["events"],
        "stale": s["staleActivities"], "clamped": s["clampedFutureTimestamps"],
        "outbox": s["outbox"], "flush": {k: s["store"][k] for k in
                                         ("commits", "flushedRecords", "flushSuperseded", "flushSlices",
                                          "committerLockMaxUs")},
        "streams": s["streams"], "udp": s["udp"], "http": s["inputs"]["http"],
    }


@pytest.mark.bb_timeout(40)
def test_stats_and_metrics_agree(start_daemon):
    rx = Receiver()
    try:
        rx.stop()  # the webhook fails: its sink stays behind, with a lag
        d = start_daemon(sets=["udp.listen=127.0.0.1:0", "webhook.pager.url=" + rx.url],
                         env=NO_PROXY_ENV)
        c = d.client()
        m = UDP_RE.search(d.stderr_text())
        assert m, d.stderr_text()
        stream = SSE(d.host, d.port, "/api/v1/events/stream")

        # N devices in one bulk, with two invalid items; one stale and one
        # clamped activity; a malformed body; a connect.
        ids = ["st-%02d" % i for i in range(N)]
        r = c.post("/api/v1/activity", json_body=ids + [{"id": ""}, {"id": "st-x", "ts": -1}])
        assert r.status == 202 and r.body["accepted"] == N and r.body["rejectedCount"] == 2, r
        assert c.post(dev_path("st-00", "/activity"), json_body={"ts": now_ms() - 3600 * 1000}).status == 202
        assert c.post(dev_path("st-01", "/activity"), json_body={"ts": now_ms() + 24 * 3600 * 1000}).status == 202
        assert c.post(dev_path("st-02", "/activity"), body="{not json").status == 400
        assert c.post(dev_path("st-03", "/connect")).status == 202
        # SHORT devices go inactive (each raises an unavailability alarm).
        for dev in ids[-SHORT:]:
            assert c.put(dev_path(dev), json_body={"inactivityTimeout": 100}).status == 200
        # UDP: three good lines, one with a bad id, one with a bad ts.
        lines = b"su-1\nsu-2\nsu-3\nbad\x01id\nsu-4 soon\n"
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(lines, (m.group(1), int(m.group(2))))
        s.close()
        assert wait_until(lambda: settled(c, 5), 10), c.stats()

        # Stats, metrics, stats: when both stats agree, nothing moved between them.
        for _ in range(50):
            before = c.stats()
            fam, text = scrape(c)
            after = c.stats()
            if shared(before) == shared(after):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the figures kept moving: %r then %r" % (shared(before), shared(after)))
        st = after

        # The workload is what both show.
        assert st["devices"] == N + 3 and st["inactive"] == SHORT and st["sessions"] == 1, st
        assert st["events"]["ALARM_RAISED"] == SHORT, st["events"]
        assert st["staleActivities"] == 1 and st["clampedFutureTimestamps"] == 1, st
        assert st["outbox"]["sinks"][1]["name"] == "webhook.pager" and st["outbox"]["sinks"][1]["lag"] > 0, st
        assert st["streams"]["open"] == 1, st

        # Devices, sessions, events by type (alarm events included).
        assert sample(fam, "lastseen_devices", status="active") == st["active"]
        assert sample(fam, "lastseen_devices", status="inactive") == st["inactive"]
        assert sample(fam, "lastseen_sessions") == st["sessions"]
        assert set(st["events"]) == set(EVENT_TYPES)
        for t, n in st["events"].items():
            assert sample(fam, "lastseen_events_total", type=t) == n, t
        assert sum(st["events"].values()) == st["lastSeq"]
        assert sample(fam, "lastseen_stale_activities_total") == st["staleActivities"]
        assert sample(fam, "lastseen_clamped_timestamps_total") == st["clampedFutureTimestamps"]

        # The outbox and every sink's cursor and lag.
        ob = st["outbox"]
        assert sample(fam, "lastseen_outbox_committed_seq") == ob["committedSeq"]
        assert sample(fam, "lastseen_outbox_events") == ob["committedSeq"] - ob["firstSeq"] + 1
        assert sample(fam, "lastseen_outbox_pruned_events_total") == ob["prunedEvents"]
        assert sample(fam, "lastseen_sinks_behind_retention") == ob["sinksBehindRetention"]
        assert [x["name"] for x in ob["sinks"]] == \
            [l["sink"] for _, l, _ in fam["lastseen_sink_cursor"]["samples"]]
        for sink in ob["sinks"]:
            assert sample(fam, "lastseen_sink_cursor", sink=sink["name"]) == sink["cursor"], sink
            assert sample(fam, "lastseen_sink_lag_events", sink=sink["name"]) == sink["lag"], sink

        # The store and the committer.
        store = st["store"]
        assert sample(fam, "lastseen_store_commit_duration_seconds",
                      "lastseen_store_commit_duration_seconds_count") == store["commits"]
        assert sample(fam, "lastseen_store_flushed_records_total") == store["flushedRecords"]
        assert sample(fam, "lastseen_store_flush_superseded_total") == store["flushSuperseded"]
        assert sample(fam, "lastseen_store_flush_slices_total") == store["flushSlices"]
        hold = re.search(r"^lastseen_committer_lock_hold_max_seconds (\S+)$", text, re.M).group(1)
        assert int(Decimal(hold) * 1000000) == store["committerLockMaxUs"], (hold, store)
        assert sample(fam, "lastseen_event_log_write_errors_total") == st["eventLogWriteErrors"]

        # Streams.
        assert sample(fam, "lastseen_event_streams") == st["streams"]["open"]
        assert sample(fam, "lastseen_event_streams_dropped_total") == st["streams"]["dropped"]
        assert sample(fam, "lastseen_event_streams_refused_total") == st["streams"]["refused"]

        # Activities and rejected inputs by source: UDP's own counters, the
        # HTTP input's reporter (strategy ALL: every activity forwarded).
        udp = st["udp"]
        assert udp["activities"] == 3 and sum(udp["rejected"].values()) == 2, udp
        assert sample(fam, "lastseen_activities_total", source="udp") == udp["activities"]
        assert sum(v for _, l, v in fam["lastseen_rejected_inputs_total"]["samples"]
                   if l["source"] == "udp") == sum(udp["rejected"].values())
        http = st["inputs"]["http"]
        assert http["reportingStrategy"] == "ALL" and http["held"] == 0, http
        assert sample(fam, "lastseen_activities_total", source="http") == http["forwarded"] == N + 2
        assert sample(fam, "lastseen_rejected_inputs_total", source="http", reason="invalid") == 2
        assert sample(fam, "lastseen_rejected_inputs_total", source="http", reason="malformed") == 1

        stream.close()
    finally:
        rx.stop()
