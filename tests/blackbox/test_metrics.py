"""GET /metrics: the Prometheus text format 0.0.4, parsed strictly, and
counters that move as the test acts."""
import pytest

from conftest import assert_error, dev_path, wait_until
from outputs_util import NO_PROXY_ENV, SSE, ExpositionError, Receiver, parse_exposition, sample


@pytest.fixture
def start_daemon(start_daemon):
    """These tests follow device events one by one: unavailability alarms
    (their own events, tested in test_alarms.py) are switched off."""
    def start(*args, sets=(), **kw):
        return start_daemon(*args, sets=list(sets) + ["alarms.enabled=false"], **kw)
    return start

# Every family docs/api.md lists, with its type.
FAMILIES = {
    "lastseen_build_info": "gauge",
    "lastseen_start_time_seconds": "gauge",
    "lastseen_devices": "gauge",
    "lastseen_sessions": "gauge",
    "lastseen_events_total": "counter",
    "lastseen_activities_total": "counter",
    "lastseen_stale_activities_total": "counter",
    "lastseen_clamped_timestamps_total": "counter",
    "lastseen_rejected_inputs_total": "counter",
    "lastseen_detection_lateness_seconds": "histogram",
    "lastseen_outbox_events": "gauge",
    "lastseen_outbox_committed_seq": "gauge",
    "lastseen_outbox_pruned_events_total": "counter",
    "lastseen_sinks_behind_retention": "gauge",
    "lastseen_sink_cursor": "gauge",
    "lastseen_sink_lag_events": "gauge",
    "lastseen_store_commit_duration_seconds": "histogram",
    "lastseen_store_flush_duration_seconds": "histogram",
    "lastseen_store_flushed_records_total": "counter",
    "lastseen_store_flush_superseded_total": "counter",
    "lastseen_store_flush_slices_total": "counter",
    "lastseen_committer_lock_hold_seconds": "histogram",
    "lastseen_committer_lock_hold_max_seconds": "gauge",
    "lastseen_store_errors_total": "counter",
    "lastseen_store_failing": "gauge",
    "lastseen_store_failed_commits_total": "counter",
    "lastseen_event_log_write_errors_total": "counter",
    "lastseen_http_requests_total": "counter",
    "lastseen_http_connections": "gauge",
    "lastseen_http_connections_closed_total": "counter",
    "lastseen_event_streams": "gauge",
    "lastseen_event_streams_dropped_total": "counter",
    "lastseen_event_streams_refused_total": "counter",
    "lastseen_webhook_delivered_events_total": "counter",
    "lastseen_webhook_skipped_events_total": "counter",
    "lastseen_webhook_failed_attempts_total": "counter",
    "lastseen_webhook_last_status": "gauge",
    "lastseen_webhook_lag_events": "gauge",
}


def scrape(c):
    r = c.get("/metrics")
    assert r.status == 200, r
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse_exposition(r.raw.decode("utf-8"))


def http_count(fam, route, method, code):
    return sample(fam, "lastseen_http_requests_total", route=route, method=method, code=code) or 0


def test_format_and_families(client):
    fam = scrape(client)
    assert {k: v["type"] for k, v in fam.items()} == FAMILIES
    for name in fam:
        assert name.startswith("lastseen_")
    (_, labels, value), = fam["lastseen_build_info"]["samples"]
    assert value == 1 and labels["version"]
    assert sample(fam, "lastseen_devices", status="active") == 0
    assert sample(fam, "lastseen_devices", status="inactive") == 0
    assert sample(fam, "lastseen_sink_cursor", sink="events.jsonl") == 0
    for reason in ("malformed", "invalid", "too_large", "device_limit"):
        assert sample(fam, "lastseen_rejected_inputs_total", source="http", reason=reason) == 0


@pytest.mark.bb_timeout(30)
def test_counters_move(start_daemon):
    d = start_daemon(sets=["state.max_devices=3"])
    c = d.client()
    before = scrape(c)
    # Three single activities; a bulk with two good items, two invalid ones and
    # one over state.max_devices.
    for dev in ("m-1", "m-2", "m-1"):
        assert c.post(dev_path(dev, "/activity")).status == 202
    r = c.post("/api/v1/activity", json_body=["m-2", {"id": ""}, {"id": "m-1", "ts": -1}, "m-3", "m-4"])
    assert r.status == 202 and r.body["accepted"] == 2 and r.body["rejectedCount"] == 3
    assert_error(c.post(dev_path("m-1", "/activity"), body="{not json"), 400, "bad_request")
    assert_error(c.post(dev_path("m-1", "/activity"), json_body={"ts": "soon"}), 422, "invalid")
    assert_error(c.post(dev_path("m-9", "/activity")), 507, "device_limit")
    assert_error(c.get("/no/such/route/secret-device-42"), 404, "not_found")
    assert c.put(dev_path("m-1"), json_body={"inactivityTimeout": 100}).status == 200
    assert wait_until(lambda: not c.device("m-1").body["active"], 5)
    # The INACTIVITY_EVENT is committed a moment after the device reads inactive.
    assert wait_until(lambda: c.stats()["outbox"]["committedSeq"] >= 4, 5)
    assert wait_until(lambda: c.stats()["outbox"]["sinks"][0]["lag"] == 0, 5)

    after = scrape(c)
    assert sample(after, "lastseen_activities_total", source="http") - \
        sample(before, "lastseen_activities_total", source="http") == 5
    rej = {r: sample(after, "lastseen_rejected_inputs_total", source="http", reason=r)
           for r in ("malformed", "invalid", "too_large", "device_limit")}
    # invalid: 2 bulk items + the bad ts; device_limit: 1 bulk item + m-9.
    assert rej == {"malformed": 1, "invalid": 3, "too_large": 0, "device_limit": 2}, rej
    assert http_count(after, "/api/v1/devices/{id}/activity", "POST", "202") == 3
    assert http_count(after, "/api/v1/devices/{id}/activity", "POST", "400") == 1
    assert http_count(after, "/api/v1/devices/{id}/activity", "POST", "422") == 1
    assert http_count(after, "/api/v1/devices/{id}/activity", "POST", "507") == 1
    assert http_count(after, "/api/v1/activity", "POST", "202") == 1
    assert http_count(after, "/api/v1/devices/{id}", "PUT", "200") == 1
    assert http_count(after, "other", "GET", "404") == 1
    assert http_count(after, "/metrics", "GET", "200") == 1  # the first scrape
    # Route templates only: no device id and no raw path in any label.
    text = c.get("/metrics").raw.decode()
    assert "m-1" not in text and "secret-device-42" not in text
    assert sample(after, "lastseen_devices", status="active") == 2
    assert sample(after, "lastseen_devices", status="inactive") == 1
    assert sample(after, "lastseen_events_total", type="ACTIVITY_EVENT") == 3
    assert sample(after, "lastseen_events_total", type="INACTIVITY_EVENT") == 1
    # The INACTIVITY_EVENT was measured; the commits too.
    assert sample(after, "lastseen_detection_lateness_seconds", "lastseen_detection_lateness_seconds_count") == 1
    assert sample(after, "lastseen_detection_lateness_seconds", "lastseen_detection_lateness_seconds_bucket",
                  le="+Inf") == 1
    assert sample(after, "lastseen_store_commit_duration_seconds", "lastseen_store_commit_duration_seconds_count") > \
        sample(before, "lastseen_store_commit_duration_seconds", "lastseen_store_commit_duration_seconds_count")
    assert sample(after, "lastseen_outbox_committed_seq") == 4
    assert sample(after, "lastseen_outbox_events") == 4
    assert sample(after, "lastseen_sink_cursor", sink="events.jsonl") == 4
    assert sample(after, "lastseen_sink_lag_events", sink="events.jsonl") == 0


@pytest.mark.bb_timeout(30)
def test_webhook_and_stream_metrics(start_daemon):
    rx = Receiver()
    try:
        rx.stop()
        d = start_daemon(sets=["webhook.pager.url=" + rx.url, "webhook.quiet.url=" + rx.url,
                               "webhook.quiet.events=DISCONNECT_EVENT"], env=NO_PROXY_ENV)
        c = d.client()
        s = SSE(d.host, d.port, "/api/v1/events/stream")
        for dev in ("w-1", "w-2"):
            assert c.post(dev_path(dev, "/activity")).status == 202
        assert wait_until(lambda: (sample(scrape(c), "lastseen_webhook_failed_attempts_total", webhook="pager") or 0)
                          >= 2, 10)
        fam = scrape(c)
        assert sample(fam, "lastseen_webhook_delivered_events_total", webhook="pager") == 0
        assert sample(fam, "lastseen_webhook_last_status", webhook="pager") == 0
        assert sample(fam, "lastseen_webhook_lag_events", webhook="pager") == 2
        assert sample(fam, "lastseen_sink_lag_events", sink="webhook.pager") == 2
        assert sample(fam, "lastseen_webhook_skipped_events_total", webhook="quiet") == 2
        assert sample(fam, "lastseen_webhook_lag_events", webhook="quiet") == 0
        assert sample(fam, "lastseen_event_streams") == 1
        rx.start()
        assert wait_until(lambda: sample(scrape(c), "lastseen_webhook_delivered_events_total", webhook="pager")
                          == 2, 15)
        fam = scrape(c)
        assert sample(fam, "lastseen_webhook_last_status", webhook="pager") == 200
        assert sample(fam, "lastseen_webhook_lag_events", webhook="pager") == 0
        assert sample(fam, "lastseen_sink_cursor", sink="webhook.pager") == 2
        s.close()
    finally:
        rx.stop()


def test_parser_is_strict():
    """The parser used above refuses what the format does not allow."""
    good = ('# HELP a_total A.\n# TYPE a_total counter\na_total{k="x\\"y\\\\z\\n"} 1\n'
            '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 0.5\nh_count 2\n')
    fam = parse_exposition(good)
    assert sample(fam, "a_total", k='x"y\\z\n') == 1
    bad = [
        good.replace("# TYPE a_total counter\n", ""),                    # no TYPE
        good.replace("a_total{", "a_total {"),                           # blank before labels
        good.replace('\\"y', '"y'),                                       # unescaped quote
        good.replace("\\\\z", "\\z"),                                     # bad escape
        good.replace("h_count 2", "h_count 3"),                          # count != +Inf
        good.replace('h_bucket{le="+Inf"} 2\n', ""),                     # no +Inf
        good.replace('h_bucket{le="1"} 1', 'h_bucket{le="1"} 3'),        # not cumulative
        good.replace("# TYPE a_total counter", "# TYPE a_total countr"),  # unknown type
        good.replace("a_total", "a"),                                    # counter without _total
        good + "a_total 2\n",                                             # family split
        good + 'h_bucket{le="+Inf"} 2\n',                                # duplicate series
        good[:-1],                                                        # no final newline
        good.replace("} 1\n", "} one\n", 1),                             # bad value
    ]
    for text in bad:
        with pytest.raises(ExpositionError):
            parse_exposition(text)


def test_metrics_method(client):
    assert_error(client.post("/metrics"), 405, "method_not_allowed")
