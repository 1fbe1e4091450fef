"""Device ids come back byte for byte, whatever form the daemon keeps them in.

The device record packs a canonical UUID (36 characters, 8-4-4-4-12 hex
digits, letters all lower-case or all upper-case) into 16 bytes, keeps ids of
up to 16 bytes inline and any other id on the heap.  These tests send ids of
every form and the near misses between them through the HTTP API, and check
that the API, the device list, events.jsonl, a restart from the store and
`lastseen export` all give back exactly the ids sent, and that ids differing
only in case are different devices.
"""
import json
import signal

import pytest

from conftest import dev_path, events_of, wait_until
from test_api import list_all
from test_export import export, lines_of

IDS = [
    "6fa459ea-ee8a-3ca4-894e-db77e160355e",  # canonical, lower-case: packed
    "6FA459EA-EE8A-3CA4-894E-DB77E160355E",  # canonical, upper-case: packed, another device
    "6fa459ea-EE8A-3ca4-894e-db77e160355e",  # mixed case: text
    "12345678-1234-5678-9012-345678901234",  # no letters: packed
    "6fa459ea-ee8a-3ca4-894e-db77e160355",  # 35 characters
    "6fa459ea-ee8a-3ca4-894e-db77e160355e0",  # 37
    "{6fa459ea-ee8a-3ca4-894e-db77e160355e}",  # braces
    "6fa459ea_ee8a_3ca4_894e_db77e160355e",  # no dashes
    "6fa459ea-ee8a-3ca4-894edb77e-160355e",  # a dash moved
    "6fa459ea-ee8a-3ca4-894e-db77e160355g",  # not hex
    "6fa459ea-ee8a-3ca4-894e-db77e16035\u00e9",  # non-ASCII, 36 bytes
    "0123456789abcdef",  # 16 bytes: inline
    "0123456789abcdefg",  # 17: heap
    "a",
    "x" * 256,
]


def _check_all(c, ids):
    for i in ids:
        r = c.device(i)
        assert r.status == 200, (i, r)
        assert r.body["id"] == i
    listed = [d["id"] for d in list_all(c, limit=7)]
    assert sorted(listed) == sorted(ids)


@pytest.mark.bb_timeout(60)
def test_ids_round_trip_in_every_form(start_daemon):
    d = start_daemon()
    c = d.client()
    for i in IDS:
        assert c.activity(i).status == 202, i
    assert c.stats()["devices"] == len(IDS)
    _check_all(c, IDS)
    got = wait_until(lambda: [e["device"] for e in events_of(d.data_dir, type_="ACTIVITY_EVENT")]
                     if len(events_of(d.data_dir, type_="ACTIVITY_EVENT")) >= len(IDS) else None, 5.0)
    assert got and sorted(got) == sorted(IDS)

    # Known ids again: the same devices, no new event.
    for i in IDS:
        assert c.activity(i).status == 202, i
    assert c.stats()["devices"] == len(IDS)

    # Deleting one case of a UUID leaves the other.
    assert c.delete(dev_path(IDS[1])).status == 204
    assert c.device(IDS[1]).status == 404
    assert c.device(IDS[0]).status == 200
    assert c.activity(IDS[1]).status == 202
    assert c.device(IDS[1]).body["id"] == IDS[1]

    # From the store: a restart restores every id exactly.
    data = d.data_dir
    d.stop_and_check(signal.SIGTERM)
    d2 = start_daemon(data_dir=data)
    c2 = d2.client()
    assert c2.stats()["devices"] == len(IDS)
    _check_all(c2, IDS)
    d2.stop_and_check(signal.SIGTERM)
    exported = [json.loads(x)["id"] for x in lines_of(export(data))]
    assert sorted(exported) == sorted(IDS)
