/*
 * forward.c - cluster mode: the routes that feed devices (activity, bulk
 * activity, connect, disconnect, a ping PUT) hand their items to the
 * ingest port's forwarder, the cluster's input stream (core/ingest.h,
 * docs/cluster.md), and answer once the stream has stored every one of
 * them, never before.  The node that owns a device applies it; this node
 * only vouches that it is stored.
 *
 * A request is suspended like one waiting for a commit (ls_api_suspend())
 * and resumed with its answer by the last of its items to be settled, on
 * the forwarder's thread.  The handler holds a reference of its own until
 * it has handed over every item and written its answer, so a fast
 * acknowledgement never answers a request still being parsed.  When the
 * stream cannot take an item within the forwarder's bounded wait (a NATS
 * leader election, a lost connection) the answer is 503 with
 * Retry-After: some items of a bulk may be stored, and sending it again
 * is safe, as it is for any activity.
 *
 * What cluster mode answers differently: connect and disconnect are the
 * MQTT kind of sessions (a state: "online" opens a session unless one is
 * open, "offline" closes it), applied by the owner, so the answer is
 * {"accepted": 1} rather than the session count; a device's activities
 * do not go through http.reporting_strategy.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "api/api.h"
#include "base/err.h"
#include "core/service.h"

struct ls_api_fwd {
    ls_req *r;
    _Atomic int refs; /* forwards not settled yet, + 1 while the handler works */
    _Atomic int rc;   /* 0, or the first failure */
    unsigned status;  /* the answer when every item is stored */
    ls_buf reply;
    uint64_t items; /* handed over: counted as activities when stored */
};

int ls_api_forwarding(ls_req *r)
{
    return ls_service_forwarding(r->d);
}

static void settle(ls_api_fwd *f)
{
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1) return;
    ls_req *r = f->r;
    int rc = atomic_load_explicit(&f->rc, memory_order_acquire);
    if (rc == 0) {
        ls_metrics_activities(r->metrics, r->http_source, f->items);
        ls_api_resume(r, f->status, &f->reply);
    } else {
        ls_buf b;
        ls_buf_init(&b, 512);
        ls_buf_printf(&b,
                      "{\"error\":\"unavailable\",\"detail\":\"the cluster's input stream did not "
                      "store it in time (%s); send it again\"}",
                      ls_strerror(rc));
        ls_api_resume(r, 503, &b);
        ls_buf_free(&b);
    }
    ls_buf_free(&f->reply);
    free(f);
}

static void stored_cb(void *ud, int rc)
{
    ls_api_fwd *f = ud;
    if (rc < 0) {
        int zero = 0;
        atomic_compare_exchange_strong_explicit(&f->rc, &zero, rc, memory_order_acq_rel,
                                                memory_order_acquire);
    }
    settle(f);
}

ls_api_fwd *ls_api_fwd_begin(ls_req *r)
{
    ls_api_fwd *f = calloc(1, sizeof(*f));
    if (!f) return NULL;
    f->r = r;
    atomic_init(&f->refs, 1);
    ls_api_suspend(r);
    return f;
}

void ls_api_fwd_items(ls_api_fwd *f, const ls_ingest_item *items, size_t n)
{
    if (!n) return;
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    f->items += n;
    if (ls_service_forward(f->r->d, items, n, stored_cb, f) < 0) stored_cb(f, -EIO);
}

enum MHD_Result ls_api_fwd_end(ls_api_fwd *f, unsigned status, ls_buf *reply)
{
    f->status = status;
    if (reply) {
        f->reply = *reply;
        *reply = (ls_buf){0};
    }
    settle(f);
    return MHD_YES;
}

enum MHD_Result ls_api_forward_one(ls_req *r, unsigned kind, int64_t ts)
{
    ls_api_fwd *f = ls_api_fwd_begin(r);
    if (!f) return ls_api_error(r, 503, "unavailable", "out of memory");
    ls_ingest_item it = {.kind = kind, .id = r->param.s, .len = r->param.len, .ts = ts};
    ls_api_fwd_items(f, &it, 1);
    ls_buf b;
    ls_buf_init(&b, 64);
    ls_buf_printf(&b, "{\"accepted\":1}");
    return ls_api_fwd_end(f, 202, &b);
}

enum MHD_Result ls_api_cluster_refuse(ls_req *r, const char *what)
{
    return ls_api_error(r, 501, "not_in_cluster_mode",
                        "%s is not available in cluster mode yet: each node would keep its own "
                        "(docs/cluster.md, Status)",
                        what);
}
