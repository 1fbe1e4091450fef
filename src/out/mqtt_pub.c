/*
 * mqtt_pub.c - events and device states to MQTT, from the durable outbox.
 *
 * A sink of the outbox (core/outbox.h): one thread with its own libmosquitto
 * client (id mqtt.client_id + "-pub", clean session) reads committed
 * events in seq order through the port, after the cursor it acknowledged
 * last, and publishes for each
 *
 *   - the event line (the same JSON as events.jsonl) to mqtt.event_topic,
 *     QoS 1, not retained;
 *   - the device's state (the event's "state" object) to mqtt.state_topic,
 *     QoS 1, retained, so that a subscriber to lastseen/state/# gets every
 *     device's current state at once.  SOURCE_* and alarm events have no
 *     state.
 *
 * The device id (for the topics) and the state are fields of the outbox
 * record: nothing here parses the line.
 *
 * Acknowledgement.  Messages in flight sit in a ring in seq order; the
 * broker's PUBACKs (on_publish) mark them done, and the outbox cursor
 * advances to just before the oldest message not yet done.  So an event
 * is acknowledged only once both of its messages are on the broker, and a
 * broker outage or a lastseen crash loses nothing: libmosquitto resends
 * what is in flight when it reconnects, and after a restart publishing
 * resumes after the durable cursor.  At least once, in seq order per
 * topic; consumers deduplicate by seq.  The outbox keeps every event this
 * sink has not acknowledged, however long the broker is down.
 *
 * Flow.  At most RING messages are in flight.  With nothing in flight the
 * thread sleeps in ls_outbox_wait() (woken by the next commit); otherwise
 * it runs the client's loop to collect acknowledgements.  A message the
 * broker can never take (a topic libmosquitto refuses) is logged, counted
 * and skipped, so one bad id cannot stall the outbox.
 */
#include "out/mqtt_pub.h"

#include <errno.h>
#include <mosquitto.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/clock.h"
#include "base/log.h"
#include "core/outbox.h"
#include "core/stats.h"
#include "mqtt/client.h"
#include "mqtt/topic.h"

#define MOD "mqtt-pub"
#define SINK_NAME "mqtt"
#define RING 1024    /* messages in flight */
#define READ_MAX 256 /* events read per outbox read */
#define READ_BUF ((size_t)1 << 20)
#define IDLE_WAIT_MS 200
#define SEND_MAXIMUM 100
#define COUNT(f) atomic_fetch_add_explicit(&(f), 1, memory_order_relaxed)
#define LOAD(f) atomic_load_explicit(&(f), memory_order_relaxed)

typedef struct inflight {
    int mid;
    int done;
    uint64_t seq;
} inflight;

typedef struct pub_stats {
    _Atomic uint64_t events, messages, acked_messages, skipped, sessions, sessions_lost;
} pub_stats; /* written by the publisher's thread, read by stats (relaxed) */

struct ls_mqtt_pub {
    struct ls_daemon *d;
    const ls_config *cfg;
    ls_mqtt_opts conn; /* cfg's connection options */
    struct mosquitto *m;
    pthread_t thread;
    int thread_running;
    ls_stopper stop;
    unsigned seed;
    int sink;
    int wfd;               /* outbox watch */
    uint64_t sent;         /* last seq handed to the client (or skipped) */
    uint64_t acked;        /* last seq acknowledged to the outbox */
    _Atomic int connected; /* written by the thread, read by stats (relaxed) */
    int refused;
    inflight ring[RING];
    size_t head, n; /* oldest entry, entries */
    ls_buf topic;
    pub_stats st;
    ls_outbox_rec rec[READ_MAX];
    char *buf; /* READ_BUF bytes for the records */
};

/* ---- the ring ----------------------------------------------------------- */

static void ring_push(ls_mqtt_pub *p, int mid, uint64_t seq)
{
    inflight *f = &p->ring[(p->head + p->n++) % RING];
    f->mid = mid;
    f->seq = seq;
    f->done = 0;
}

static void on_publish_cb(struct mosquitto *m, void *ud, int mid)
{
    ls_mqtt_pub *p = ud;
    (void)m;
    for (size_t i = 0; i < p->n; i++) {
        inflight *f = &p->ring[(p->head + i) % RING];
        if (f->mid == mid && !f->done) {
            f->done = 1;
            COUNT(p->st.acked_messages);
            return;
        }
    }
}

/* Drops the done prefix of the ring and acknowledges what is complete. */
static void ring_advance(ls_mqtt_pub *p)
{
    while (p->n && p->ring[p->head].done) {
        p->head = (p->head + 1) % RING;
        p->n--;
    }
    uint64_t upto = p->n ? p->ring[p->head].seq - 1 : p->sent;
    if (upto > p->acked) {
        p->acked = upto;
        ls_outbox_ack(p->d, p->sink, upto);
    }
}

/* ---- publishing --------------------------------------------------------- */

/* Publishes one message; 0 sent, 1 refused for good (skipped), -1 not connected. */
static int publish(ls_mqtt_pub *p, const char *tmpl, const char *dev, size_t dlen,
                   const void *payload, size_t plen, int retain, uint64_t seq)
{
    ls_buf_reset(&p->topic);
    if (ls_topic_expand(&p->topic, tmpl, dev, dlen) < 0 || ls_buf_putc(&p->topic, '\0') < 0)
        return 1;
    int mid = 0;
    int rc =
        mosquitto_publish(p->m, &mid, p->topic.p, (int)plen, payload, 1, retain ? true : false);
    if (rc == MOSQ_ERR_SUCCESS) {
        ring_push(p, mid, seq);
        COUNT(p->st.messages);
        return 0;
    }
    if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_NOMEM || rc == MOSQ_ERR_OVERSIZE_PACKET) {
        if (rc != MOSQ_ERR_NO_CONN)
            ls_warn(MOD, "publish to %s: %s; retrying", p->topic.p, mosquitto_strerror(rc));
        return -1;
    }
    ls_error(MOD, "event seq %llu cannot be published to %s: %s; skipped", (unsigned long long)seq,
             p->topic.p, mosquitto_strerror(rc));
    COUNT(p->st.skipped);
    return 1;
}

/*
 * Publishes one event: its line, and its device's state (a field of the
 * record) when it has one.  Returns 0, or -1 to stop (no room, or not
 * connected: the event is read again later).
 */
static int publish_event(ls_mqtt_pub *p, const ls_outbox_rec *r)
{
    const char *ev_topic = p->cfg->mqtt_event_topic, *st_topic = p->cfg->mqtt_state_topic;
    uint64_t seq = r->seq;
    if (p->n + 2 > RING || !p->connected) return -1;
    if (!r->device) {
        ls_error(MOD, "event seq %llu in the outbox names no device; skipped",
                 (unsigned long long)seq);
        COUNT(p->st.skipped);
        p->sent = seq;
        return 0;
    }
    size_t before = p->n;
    int rc = 0;
    if (ev_topic[0])
        rc = publish(p, ev_topic, r->device, r->device_len, r->line, r->line_len, 0, seq);
    if (rc >= 0 && st_topic[0] && r->state)
        rc = publish(p, st_topic, r->device, r->device_len, r->state, r->state_len, 1, seq);
    if (rc < 0) {
        /* Not connected: forget what this event queued; it is read again. */
        if (p->n > before)
            ls_warn(MOD, "event seq %llu half published; it will be sent again",
                    (unsigned long long)seq);
        return -1;
    }
    p->sent = seq;
    COUNT(p->st.events);
    return 0;
}

/* Reads and publishes committed events while there is room. */
static void fill(ls_mqtt_pub *p, uint64_t committed)
{
    while (p->connected && committed > p->sent && p->n + 2 <= RING) {
        uint64_t before = p->sent;
        size_t room = (RING - p->n) / 2;
        int64_t n = ls_outbox_read(p->d, p->sent, committed, p->rec,
                                   room < READ_MAX ? room : READ_MAX, p->buf, READ_BUF);
        if (n < 0) {
            ls_error(MOD, "cannot read the outbox after seq %llu", (unsigned long long)p->sent);
            return;
        }
        if (n == 0) p->sent = committed; /* a gap up to the end (pruned) */
        for (int64_t i = 0; i < n; i++)
            if (publish_event(p, &p->rec[i]) < 0) break;
        if (p->sent == before) return;
    }
}

/* ---- connection ---------------------------------------------------------- */

static void on_connect_cb(struct mosquitto *m, void *ud, int rc)
{
    ls_mqtt_pub *p = ud;
    (void)m;
    if (rc != 0) {
        ls_error(MOD, "broker refused the publisher's connection: %s",
                 p->cfg->mqtt_protocol == LS_MQTT_V5 ? mosquitto_reason_string(rc)
                                                     : mosquitto_connack_string(rc));
        p->refused = 1;
        return;
    }
    COUNT(p->st.sessions);
    ls_info(MOD, "publishing events from seq %llu", (unsigned long long)(p->acked + 1));
    atomic_store_explicit(&p->connected, 1, memory_order_relaxed);
}

static void on_disconnect_cb(struct mosquitto *m, void *ud, int rc)
{
    ls_mqtt_pub *p = ud;
    (void)m;
    if (p->connected && rc != 0) {
        COUNT(p->st.sessions_lost);
        ls_warn(MOD, "connection lost (%s); %zu messages in flight will be sent again",
                mosquitto_strerror(rc), p->n);
    }
    atomic_store_explicit(&p->connected, 0, memory_order_relaxed);
}

static void run_connection(ls_mqtt_pub *p, unsigned *attempt)
{
    p->refused = 0;
    while (!ls_stopper_requested(&p->stop)) {
        int timeout = 10;
        if (p->connected && p->n == 0) {
            uint64_t c = ls_outbox_wait(p->d, p->wfd, p->sent, IDLE_WAIT_MS);
            fill(p, c);
            timeout = 0;
        } else if (p->connected) {
            fill(p, ls_outbox_committed(p->d));
        } else {
            timeout = 100; /* CONNACK pending */
        }
        int rc = ls_mqtt_client_loop(p->m, timeout);
        ring_advance(p);
        if (p->connected) *attempt = 0;
        if (rc != MOSQ_ERR_SUCCESS || p->refused) break;
    }
}

static void *pub_main(void *arg)
{
    pthread_setname_np(pthread_self(), "ls-mqtt-out");
    ls_mqtt_pub *p = arg;
    unsigned attempt = 0;
    char where[300];
    ls_mqtt_client_where(&p->conn, where, sizeof(where));
    while (!ls_stopper_requested(&p->stop)) {
        int rc = ls_mqtt_client_connect(p->m, &p->conn, 0);
        if (rc == MOSQ_ERR_SUCCESS)
            run_connection(p, &attempt);
        else if (attempt == 0)
            ls_warn(MOD, "cannot connect to %s: %s; retrying", where,
                    rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        atomic_store_explicit(&p->connected, 0, memory_order_relaxed);
        if (ls_stopper_requested(&p->stop)) break;
        if (ls_stopper_sleep(&p->stop, ls_mqtt_backoff_ms(&p->conn, attempt++, &p->seed))) break;
    }
    ring_advance(p);
    mosquitto_disconnect(p->m);
    return NULL;
}

/* ---- start, stop, stats -------------------------------------------------- */

static void destroy(ls_mqtt_pub *p)
{
    if (p->m) mosquitto_destroy(p->m);
    ls_outbox_unwatch(p->d, p->wfd);
    free(p->buf);
    ls_buf_free(&p->topic);
    ls_stopper_close(&p->stop);
    free(p);
    ls_mqtt_lib_cleanup();
}

/* The publisher's figures in /api/v1/stats (core/stats.h). */
static void stats_json_cb(void *ud, ls_buf *b, uint64_t committed)
{
    (void)committed;
    ls_mqtt_pub_stats_json(ud, b);
}

int ls_mqtt_pub_start(ls_mqtt_pub **out, struct ls_daemon *d, const ls_config *cfg)
{
    int rc;
    char id[160];
    ls_mqtt_pub *p = calloc(1, sizeof(*p));
    if (!p) return -ENOMEM;
    p->d = d;
    p->cfg = cfg;
    p->wfd = -1;
    ls_config_mqtt_opts(cfg, &p->conn);
    ls_stopper_init(&p->stop);
    ls_buf_init(&p->topic, 8192);
    if (ls_mqtt_lib_init() < 0) {
        ls_buf_free(&p->topic);
        ls_stopper_close(&p->stop);
        free(p);
        return -EIO;
    }
    snprintf(id, sizeof(id), "%s%s", cfg->mqtt_client_id, cfg->mqtt_client_id[0] ? "-pub" : "");
    if ((rc = ls_mqtt_client_new(&p->m, &p->conn, id, 0, p)) < 0) {
        destroy(p);
        return rc;
    }
    mosquitto_int_option(p->m, MOSQ_OPT_SEND_MAXIMUM, SEND_MAXIMUM);
    mosquitto_connect_callback_set(p->m, on_connect_cb);
    mosquitto_disconnect_callback_set(p->m, on_disconnect_cb);
    mosquitto_publish_callback_set(p->m, on_publish_cb);
    if (getrandom(&p->seed, sizeof(p->seed), GRND_NONBLOCK) != sizeof(p->seed))
        p->seed = (unsigned)ls_clock_mono_ns();
    if (!(p->buf = malloc(READ_BUF))) {
        destroy(p);
        return -ENOMEM;
    }
    if ((p->sink = ls_outbox_sink_open(d, SINK_NAME, 0, &p->acked)) < 0 ||
        (p->wfd = ls_outbox_watch(d)) < 0) {
        rc = p->sink < 0 ? p->sink : p->wfd;
        destroy(p);
        return rc;
    }
    p->sent = p->acked;
    if ((rc = pthread_create(&p->thread, NULL, pub_main, p)) != 0) {
        destroy(p);
        return -rc;
    }
    p->thread_running = 1;
    *out = p;
    ls_stats_port sp = {.key = "mqttPublish", .json = stats_json_cb, .ud = p};
    return ls_stats_register(d, &sp);
}

void ls_mqtt_pub_stop(ls_mqtt_pub *p)
{
    if (!p) return;
    ls_stopper_request(&p->stop);
    if (p->thread_running) pthread_join(p->thread, NULL);
    destroy(p);
}

void ls_mqtt_pub_stats_json(ls_mqtt_pub *p, ls_buf *b)
{
    ls_buf_printf(
        b,
        "{\"connected\":%s,\"sessions\":%llu,\"sessionsLost\":%llu,\"events\":%llu,"
        "\"messages\":%llu,\"ackedMessages\":%llu,\"skipped\":%llu}",
        atomic_load_explicit(&p->connected, memory_order_relaxed) ? "true" : "false",
        (unsigned long long)LOAD(p->st.sessions), (unsigned long long)LOAD(p->st.sessions_lost),
        (unsigned long long)LOAD(p->st.events), (unsigned long long)LOAD(p->st.messages),
        (unsigned long long)LOAD(p->st.acked_messages), (unsigned long long)LOAD(p->st.skipped));
}
