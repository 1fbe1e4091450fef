/*
 * mqtt.c - the MQTT input: activity and presence of devices from a broker.
 *
 * One thread owns one libmosquitto client and runs its loop (see
 * mqtt_client.c for why not mosquitto_loop_start).  Each message is
 * classified on that thread, in this order: the sync marker (below), an
 * over-long topic (counted), lastseen's own published topics (ignored, so
 * a broad pattern never reads lastseen's events back as activity),
 * Sparkplug B (sparkplug.c), the status topic, then the topic patterns
 * (mqtt_topic.c).  A message becomes an operation on a device: activity,
 * online (a session opened) or offline (closed).
 *
 * Batching.  The thread hands its operations to the shards through its
 * own producer of the ingest port (core/ingest.h, the only part of the
 * core this input sees besides stats.h and prom.h): the id is checked
 * (ls_id_check) and copied into the open batch of the device's shard, and
 * the shard's worker applies the batch under that shard's lock only: no
 * lock and no allocation per message on this thread, and the API's
 * queries, UDP and HTTP never wait for MQTT (nor MQTT for them) beyond one
 * batch of one shard.  Presence operations ride the same batches as
 * activities, so a device's "online, data, offline" is applied in the
 * order read; runs of activities go through ls_engine_activity_batch
 * (prefetching pipeline).
 * The open batches are queued when the socket has nothing more to read
 * (so an idle connection applies each message at once), when one is full,
 * or BATCH_MAX_AGE_MS after the oldest operation in them.  The workers
 * report what they applied, refused (by reason), connected and
 * disconnected per batch (applied_cb), and those counters feed the stats.
 * Nothing waits for the store commit: there is no client to answer, and
 * the committer picks the changes up like any others.
 *
 * Retained messages are history, not news: a retained message on a data
 * topic is not an activity (it would make a device that died a month ago
 * active on every reconnect) unless payload_ts dates it.  On the status
 * topic, and for Sparkplug births and deaths, presence is a state: an
 * "online" for a device with an open session opens no second session, an
 * "offline" for one without closes nothing, so the retained copies that
 * every (re)subscribe delivers change nothing that is already true.
 *
 * Source health.  The connection is an input source of the engine
 * ("mqtt"): held from start-up until the first connection is synced, held
 * again from the moment the connection drops, and released (SOURCE_UP)
 * once lastseen has read what the broker queued for it meanwhile.  A
 * transition (ls_ingest_source_up/down()) first waits until the workers
 * have applied every batch the thread queued, then takes every shard's
 * lock for the transition itself, so the backlog is applied before
 * SOURCE_UP.  To know that, after subscribing the thread publishes a
 * marker with a fresh nonce to mqtt.sync_topic/<client id>, which it
 * subscribes too: the broker delivers a client's messages in order, so
 * the marker arrives after the backlog.  If it has not arrived after
 * mqtt.sync_timeout (a broker ACL that forbids the topic), the source is
 * released anyway, with a warning.
 *
 * Reconnects: capped exponential backoff with jitter, reset after a
 * connection that got as far as synced.  With clean_session = false
 * (default) the broker keeps the subscriptions and queues QoS >= 1
 * messages while lastseen is away; they are read as the backlog.
 */
#include "in/mqtt.h"

#include <errno.h>
#include <jansson.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/stopper.h"
#include "core/ingest.h"
#include "core/prom.h"
#include "core/stats.h"
#include "engine/engine.h"
#include "mqtt/client.h"
#include "mqtt/topic.h"
#include "in/sparkplug.h"

#define MOD "mqtt"
#define SOURCE_NAME "mqtt"
#define BATCH_MAX_AGE_MS 5
#define LOOP_IDLE_MS 200
#define DRAIN_MAX 256  /* packets read in a row before the loop looks at keepalive again */
#define TOPIC_MAX 4096 /* longer topics are counted and skipped */
#define PAYLOAD_TS_MAX (1u << 20) /* JSON payloads parsed for payload_ts */
#define COUNT(f) atomic_fetch_add_explicit(&(f), 1, memory_order_relaxed)
#define LOAD(f) atomic_load_explicit(&(f), memory_order_relaxed)

enum { OP_ACTIVITY = 0, OP_ONLINE, OP_OFFLINE };
enum { ST_DOWN = 0, ST_CONNECTING, ST_SUBSCRIBING, ST_SYNCING, ST_UP };
static const char *const state_names[] = {"down", "connecting", "subscribing", "syncing", "up"};

/* Written by the input's thread and the shard workers (applied_cb), read
 * by stats: relaxed counters. */
typedef struct mqtt_stats {
    _Atomic uint64_t received, activities, connects, disconnects;
    _Atomic uint64_t retained_skipped, unmatched, bad_ids, bad_ts, too_long, own_topics, rejected;
    _Atomic uint64_t sessions, sessions_lost, sync_timeouts, batches;
} mqtt_stats;

struct ls_mqtt {
    ls_ingest *in;
    const ls_config *cfg;
    ls_mqtt_opts conn; /* cfg's connection options */
    struct mosquitto *m;
    pthread_t thread;
    int thread_running;
    ls_stopper stop;
    unsigned source;             /* this input in the engine */
    ls_ingest_counters counters; /* and in /metrics */
    unsigned seed;

    ls_topic_list topics;
    ls_topic_pattern *status; /* NULL: no status topic */
    ls_sparkplug *sp;         /* NULL: Sparkplug off */
    char *subs[LS_TOPIC_PATTERNS_MAX + 3];
    int nsubs, sub_mid;
    char own[2][LS_TOPIC_PATTERN_MAX + 1]; /* prefixes of the topics lastseen publishes */
    ls_buf sync_topic;                     /* empty: no marker */
    char nonce[64];
    size_t nonce_len;

    _Atomic int state;                   /* ST_*; written by the thread, read by stats */
    int refused;                         /* the broker refused the connection or a subscription */
    int64_t sync_started, sync_deadline; /* mono ms */
    uint64_t nrecv;                      /* messages seen (thread-local copy) */

    ls_ingest_producer *prod; /* this thread's batches to the shards */
    size_t pending;           /* ops handed to prod since its last flush */
    int64_t batch_since;      /* mono ms of the first of them */
    mqtt_stats st;
};

static int64_t mono_ms(void)
{
    return ls_clock_mono_ns() / 1000000;
}

static void set_state(ls_mqtt *q, int s)
{
    atomic_store_explicit(&q->state, s, memory_order_relaxed);
}

/* ---- handing operations to the shards ----------------------------------- */

/* Counts a refused input here and in /metrics (source "mqtt"). */
static void refuse_n(ls_mqtt *q, _Atomic uint64_t *counter, ls_reject_reason why, uint64_t n)
{
    if (n == 0) return;
    atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
    ls_ingest_rejected(&q->counters, why, n);
}

static void refuse(ls_mqtt *q, _Atomic uint64_t *counter, ls_reject_reason why)
{
    refuse_n(q, counter, why, 1);
}

/* A shard worker applied one of our batches (on its thread, no lock held). */
static void applied_cb(void *ud, const ls_ingest_result *r)
{
    ls_mqtt *q = ud;
    if (r->applied) {
        atomic_fetch_add_explicit(&q->st.activities, r->applied, memory_order_relaxed);
        ls_ingest_accepted(&q->counters, r->applied);
    }
    refuse_n(q, &q->st.bad_ids, LS_REJECT_INVALID, r->bad_ids);
    refuse_n(q, &q->st.rejected, LS_REJECT_DEVICE_LIMIT, r->full);
    refuse_n(q, &q->st.bad_ts, LS_REJECT_INVALID, r->invalid);
    if (r->connects) atomic_fetch_add_explicit(&q->st.connects, r->connects, memory_order_relaxed);
    if (r->disconnects)
        atomic_fetch_add_explicit(&q->st.disconnects, r->disconnects, memory_order_relaxed);
    COUNT(q->st.batches);
}

/* Queues the open batches (the input is idle or the oldest op is due). */
static void flush(ls_mqtt *q)
{
    if (q->pending == 0) return;
    ls_ingest_producer_flush(q->prod);
    q->pending = 0;
}

/* Source transitions, after the workers applied what was read before them. */
static void source_up(ls_mqtt *q)
{
    ls_ingest_source_up(q->in, q->prod, q->source);
    q->pending = 0;
    set_state(q, ST_UP);
}

static void source_down(ls_mqtt *q)
{
    ls_ingest_source_down(q->in, q->prod, q->source);
    q->pending = 0;
    set_state(q, ST_DOWN);
}

/* Hands one operation to its shard (copied; applied in order per device). */
static void push(ls_mqtt *q, int kind, const char *id, size_t len, int64_t ts, int retained)
{
    if (len == 0 || len > LS_ID_MAX || ls_id_check(id, len)) {
        refuse(q, &q->st.bad_ids, LS_REJECT_INVALID);
        return;
    }
    if (q->pending++ == 0) q->batch_since = mono_ms();
    if (kind == OP_ACTIVITY)
        ls_ingest_producer_add(q->prod, id, len, ts, q->source);
    else
        ls_ingest_producer_op(q->prod,
                              (kind == OP_ONLINE ? LS_INGEST_ONLINE : LS_INGEST_OFFLINE) |
                                  (retained ? LS_INGEST_RETAINED : 0),
                              id, len, q->source);
}

/* ---- classifying messages (reader thread) ------------------------------ */

/*
 * The activity time from payload_ts: 0 (receive time) when the payload is
 * not a JSON object or lacks the field, the field's value when it is a
 * positive integer, -1 (counted, message skipped) when the payload looks
 * like JSON but does not parse or the field is not a positive integer.
 */
static int64_t payload_ts(const ls_mqtt *q, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    if (i == n || p[i] != '{') return 0;
    if (n > PAYLOAD_TS_MAX) return -1;
    json_error_t err;
    json_t *root = json_loadb(p, n, JSON_REJECT_DUPLICATES, &err);
    if (!root) return -1;
    json_t *v = json_object_get(root, q->cfg->mqtt_payload_ts);
    int64_t ts = 0;
    if (v)
        ts = json_is_integer(v) && json_integer_value(v) > 0 ? (int64_t)json_integer_value(v) : -1;
    json_decref(root);
    return ts;
}

static void data_message(ls_mqtt *q, const char *dev, size_t len,
                         const struct mosquitto_message *msg)
{
    int64_t ts = 0;
    if (q->cfg->mqtt_payload_ts[0] && msg->payloadlen > 0 &&
        (ts = payload_ts(q, msg->payload, (size_t)msg->payloadlen)) < 0) {
        refuse(q, &q->st.bad_ts, LS_REJECT_INVALID);
        return;
    }
    if (msg->retain && ts == 0) {
        COUNT(q->st.retained_skipped);
        return;
    }
    push(q, OP_ACTIVITY, dev, len, ts, msg->retain);
}

/* Payload equal to word, ignoring surrounding blanks. */
static int payload_is(const struct mosquitto_message *msg, const char *word)
{
    const char *p = msg->payload;
    size_t n = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0, wl = strlen(word);
    while (n && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n'))
        n--;
    return n == wl && memcmp(p, word, n) == 0;
}

static void status_message(ls_mqtt *q, const char *dev, size_t len,
                           const struct mosquitto_message *msg)
{
    if (payload_is(msg, q->cfg->mqtt_online_payload))
        push(q, OP_ONLINE, dev, len, 0, msg->retain);
    else if (payload_is(msg, q->cfg->mqtt_offline_payload))
        push(q, OP_OFFLINE, dev, len, 0, msg->retain);
    else
        data_message(q, dev, len, msg); /* anything else the device says is activity */
}

static void sp_op_cb(void *ud, ls_sp_op what, const char *id, size_t len, int retained)
{
    ls_mqtt *q = ud;
    if (what == LS_SP_ACTIVITY) {
        if (retained)
            COUNT(q->st.retained_skipped);
        else
            push(q, OP_ACTIVITY, id, len, 0, 0);
    } else {
        push(q, what == LS_SP_ONLINE ? OP_ONLINE : OP_OFFLINE, id, len, 0, retained);
    }
}

static void sync_message(ls_mqtt *q, const struct mosquitto_message *msg)
{
    if (q->state != ST_SYNCING || (size_t)msg->payloadlen != q->nonce_len ||
        memcmp(msg->payload, q->nonce, q->nonce_len) != 0)
        return; /* a marker of an earlier connection */
    ls_info(MOD, "backlog read in %lld ms: source %s up", (long long)(mono_ms() - q->sync_started),
            SOURCE_NAME);
    source_up(q);
}

static void on_message_cb(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    ls_mqtt *q = ud;
    const char *t = msg->topic, *dev;
    size_t tl = strlen(t), dl;
    (void)m;
    q->nrecv++;
    COUNT(q->st.received);
    if (q->sync_topic.len && tl == q->sync_topic.len && memcmp(t, q->sync_topic.p, tl) == 0) {
        sync_message(q, msg);
        return;
    }
    if (tl > TOPIC_MAX) {
        refuse(q, &q->st.too_long, LS_REJECT_TOO_LARGE);
        return;
    }
    for (int i = 0; i < 2; i++) {
        size_t ol = strlen(q->own[i]);
        if (ol && tl >= ol && memcmp(t, q->own[i], ol) == 0) {
            COUNT(q->st.own_topics);
            return;
        }
    }
    if (q->sp && tl > LS_SP_PREFIX_LEN && memcmp(t, LS_SP_PREFIX, LS_SP_PREFIX_LEN) == 0) {
        ls_sparkplug_stats before, after;
        ls_sparkplug_get_stats(q->sp, &before);
        if (ls_sparkplug_message(q->sp, t, tl, msg->payload,
                                 msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0, msg->retain,
                                 sp_op_cb, q) < 0) {
            ls_sparkplug_get_stats(q->sp, &after);
            uint64_t bad =
                after.bad_payloads + after.bad_topics - before.bad_payloads - before.bad_topics;
            if (bad) ls_ingest_rejected(&q->counters, LS_REJECT_MALFORMED, bad);
        }
        return;
    }
    if (q->status && ls_topic_match(q->status, t, tl, &dev, &dl)) {
        status_message(q, dev, dl, msg);
        return;
    }
    for (size_t i = 0; i < q->topics.n; i++) {
        if (ls_topic_match(&q->topics.v[i], t, tl, &dev, &dl)) {
            data_message(q, dev, dl, msg);
            return;
        }
    }
    COUNT(q->st.unmatched);
}

/* ---- connection life cycle (reader thread) ------------------------------ */

static const char *reason(const ls_mqtt *q, int rc)
{
    return q->cfg->mqtt_protocol == LS_MQTT_V5 ? mosquitto_reason_string(rc)
                                               : mosquitto_connack_string(rc);
}

static void start_sync(ls_mqtt *q)
{
    if (q->sync_topic.len == 0) {
        source_up(q);
        return;
    }
    unsigned char r[8];
    if (getrandom(r, sizeof(r), GRND_NONBLOCK) != sizeof(r)) memset(r, 0, sizeof(r));
    q->nonce_len = (size_t)snprintf(
        q->nonce, sizeof(q->nonce), "%d-%llu-%02x%02x%02x%02x%02x%02x%02x%02x", (int)getpid(),
        (unsigned long long)LOAD(q->st.sessions), r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
    q->sync_started = mono_ms();
    q->sync_deadline = q->sync_started + q->cfg->mqtt_sync_timeout;
    set_state(q, ST_SYNCING);
    int rc = mosquitto_publish(q->m, NULL, q->sync_topic.p, (int)q->nonce_len, q->nonce, 1, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        ls_warn(MOD, "cannot publish the sync marker to %s: %s; source %s up without it",
                q->sync_topic.p, mosquitto_strerror(rc), SOURCE_NAME);
        source_up(q);
    }
}

static void on_connect_cb(struct mosquitto *m, void *ud, int rc)
{
    ls_mqtt *q = ud;
    char where[300];
    if (rc != 0) {
        ls_error(MOD, "broker %s refused the connection: %s",
                 ls_mqtt_client_where(&q->conn, where, sizeof(where)), reason(q, rc));
        q->refused = 1;
        return;
    }
    COUNT(q->st.sessions);
    ls_info(MOD, "connected to %s as \"%s\"; subscribing to %d topic filters",
            ls_mqtt_client_where(&q->conn, where, sizeof(where)), q->cfg->mqtt_client_id, q->nsubs);
    set_state(q, ST_SUBSCRIBING);
    rc = mosquitto_subscribe_multiple(m, &q->sub_mid, q->nsubs, q->subs, (int)q->cfg->mqtt_qos, 0,
                                      NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        ls_error(MOD, "subscribe: %s", mosquitto_strerror(rc));
        q->refused = 1;
    }
}

static void on_subscribe_cb(struct mosquitto *m, void *ud, int mid, int count, const int *granted)
{
    ls_mqtt *q = ud;
    int sync_ok = 1;
    (void)m;
    if (mid != q->sub_mid) return;
    for (int i = 0; i < count && i < q->nsubs; i++) {
        if (granted[i] < 0x80) continue;
        ls_error(MOD, "the broker refused the subscription to %s (reason 0x%02x)", q->subs[i],
                 granted[i]);
        if (q->sync_topic.len && strcmp(q->subs[i], q->sync_topic.p) == 0) sync_ok = 0;
    }
    if (!sync_ok) {
        ls_warn(MOD, "no sync marker possible: source %s up without it", SOURCE_NAME);
        source_up(q);
        return;
    }
    start_sync(q);
}

static void on_disconnect_cb(struct mosquitto *m, void *ud, int rc)
{
    ls_mqtt *q = ud;
    (void)m;
    if (rc != 0 && q->state >= ST_SUBSCRIBING) {
        char where[300];
        COUNT(q->st.sessions_lost);
        ls_warn(MOD, "connection to %s lost (%s); devices heard through it are held",
                ls_mqtt_client_where(&q->conn, where, sizeof(where)), mosquitto_strerror(rc));
    }
}

/* Runs one connection until it ends or a stop is requested; 1 if it got up. */
static int run_connection(ls_mqtt *q)
{
    int was_up = 0;
    q->refused = 0;
    set_state(q, ST_CONNECTING);
    while (!ls_stopper_requested(&q->stop)) {
        uint64_t before = q->nrecv;
        int rc = ls_mqtt_client_loop(q->m, q->pending ? 0 : LOOP_IDLE_MS);
        /* The loop reads one packet per call, after a poll(2).
         * While packets keep coming, read them without the select. */
        for (int k = 0; rc == MOSQ_ERR_SUCCESS && k < DRAIN_MAX && q->nrecv != before; k++) {
            uint64_t n0 = q->nrecv;
            rc = mosquitto_loop_read(q->m, 1);
            if (q->nrecv == n0) break;
        }
        if (q->pending && (q->nrecv == before || mono_ms() - q->batch_since >= BATCH_MAX_AGE_MS))
            flush(q);
        if (q->state == ST_UP) was_up = 1;
        if (q->state == ST_SYNCING && mono_ms() >= q->sync_deadline) {
            COUNT(q->st.sync_timeouts);
            ls_warn(
                MOD,
                "no sync marker on %s after %lld ms (is publishing there allowed?): source %s up",
                q->sync_topic.p, (long long)q->cfg->mqtt_sync_timeout, SOURCE_NAME);
            source_up(q);
        }
        if (rc != MOSQ_ERR_SUCCESS || q->refused) break;
    }
    return was_up;
}

static void *reader_main(void *arg)
{
    pthread_setname_np(pthread_self(), "ls-mqtt-in");
    ls_mqtt *q = arg;
    unsigned attempt = 0;
    char where[300];
    ls_mqtt_client_where(&q->conn, where, sizeof(where));
    while (!ls_stopper_requested(&q->stop)) {
        int rc = ls_mqtt_client_connect(q->m, &q->conn, 1);
        if (rc == MOSQ_ERR_SUCCESS) {
            if (run_connection(q)) attempt = 0;
        } else if (attempt == 0) {
            ls_warn(MOD, "cannot connect to %s: %s; retrying", where,
                    rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        }
        if (ls_stopper_requested(&q->stop)) break;
        source_down(q);
        int64_t delay = ls_mqtt_backoff_ms(&q->conn, attempt++, &q->seed);
        ls_debug(MOD, "reconnecting to %s in %lld ms", where, (long long)delay);
        if (ls_stopper_sleep(&q->stop, delay)) break;
    }
    ls_ingest_producer_close(q->prod); /* applied before the daemon's final commit */
    q->prod = NULL;
    if (q->state >= ST_SUBSCRIBING) {
        mosquitto_disconnect(q->m); /* clean: no Will, the session stays */
        ls_mqtt_client_loop(q->m, 10);
    }
    return NULL;
}

/* ---- start, stop, stats -------------------------------------------------- */

/* Refuses configurations that would read lastseen's own events back. */
static int check_loop(ls_mqtt *q, const char *tmpl, const char *key)
{
    if (!tmpl[0] || ls_topic_template_prefix(tmpl) > 0) return 0;
    ls_buf t;
    const char *dev;
    size_t dl;
    int bad = 0;
    ls_buf_init(&t, 4096);
    ls_topic_expand(&t, tmpl, "x", 1);
    for (size_t i = 0; i < q->topics.n && !bad; i++)
        bad = ls_topic_match(&q->topics.v[i], t.p, t.len, &dev, &dl);
    if (q->status && !bad) bad = ls_topic_match(q->status, t.p, t.len, &dev, &dl);
    ls_buf_free(&t);
    if (bad)
        ls_error(MOD, "mqtt.%s = %s would be read back as device activity; give it a fixed prefix",
                 key, tmpl);
    return bad ? -EINVAL : 0;
}

static int setup(ls_mqtt *q)
{
    const ls_config *c = q->cfg;
    const char *why = NULL;
    int rc;
    if (!c->mqtt_clean_session && !c->mqtt_client_id[0]) {
        ls_error(
            MOD,
            "mqtt.client_id must be set for a persistent session (mqtt.clean_session = false)");
        return -EINVAL;
    }
    if ((rc = ls_topic_list_parse(&q->topics, c->mqtt_topics, strlen(c->mqtt_topics), &why)) < 0) {
        ls_error(MOD, "mqtt.topics = %s: %s", c->mqtt_topics, why);
        return rc;
    }
    if (c->mqtt_status_topic[0]) {
        if (!(q->status = malloc(sizeof(*q->status)))) return -ENOMEM;
        if ((rc = ls_topic_pattern_parse(q->status, c->mqtt_status_topic,
                                         strlen(c->mqtt_status_topic), &why)) < 0) {
            ls_error(MOD, "mqtt.status_topic = %s: %s", c->mqtt_status_topic, why);
            return rc;
        }
    }
    if (c->mqtt_sparkplug && ls_sparkplug_new(&q->sp) < 0) return -ENOMEM;
    if (q->topics.n == 0 && !q->status && !q->sp)
        ls_warn(MOD, "mqtt.host is set but no mqtt.topics, mqtt.status_topic or mqtt.sparkplug: "
                     "nothing to read");
    snprintf(q->own[0], sizeof(q->own[0]), "%.*s",
             (int)ls_topic_template_prefix(c->mqtt_event_topic), c->mqtt_event_topic);
    snprintf(q->own[1], sizeof(q->own[1]), "%.*s",
             (int)ls_topic_template_prefix(c->mqtt_state_topic), c->mqtt_state_topic);
    if ((rc = check_loop(q, c->mqtt_event_topic, "event_topic")) < 0 ||
        (rc = check_loop(q, c->mqtt_state_topic, "state_topic")) < 0)
        return rc;

    ls_buf_init(&q->sync_topic, 4096);
    if (c->mqtt_sync_topic[0]) {
        ls_buf_printf(&q->sync_topic, "%s/", c->mqtt_sync_topic);
        ls_topic_expand(&q->sync_topic, "{device}", c->mqtt_client_id, strlen(c->mqtt_client_id));
        ls_buf_putc(&q->sync_topic, '\0');
        q->sync_topic.len--; /* NUL-terminated, not counted */
    }
    for (size_t i = 0; i < q->topics.n; i++)
        q->subs[q->nsubs++] = strdup(q->topics.v[i].filter);
    if (q->status) q->subs[q->nsubs++] = strdup(q->status->filter);
    if (q->sp) q->subs[q->nsubs++] = strdup(LS_SP_FILTER);
    if (q->sync_topic.len) q->subs[q->nsubs++] = strdup(q->sync_topic.p);
    for (int i = 0; i < q->nsubs; i++)
        if (!q->subs[i]) return -ENOMEM;

    if ((rc = ls_mqtt_client_new(&q->m, &q->conn, c->mqtt_client_id, !c->mqtt_clean_session, q)) <
        0)
        return rc;
    mosquitto_connect_callback_set(q->m, on_connect_cb);
    mosquitto_subscribe_callback_set(q->m, on_subscribe_cb);
    mosquitto_message_callback_set(q->m, on_message_cb);
    mosquitto_disconnect_callback_set(q->m, on_disconnect_cb);
    if (getrandom(&q->seed, sizeof(q->seed), GRND_NONBLOCK) != sizeof(q->seed))
        q->seed = (unsigned)ls_clock_mono_ns();
    return 0;
}

static void destroy(ls_mqtt *q)
{
    if (q->m) mosquitto_destroy(q->m);
    for (int i = 0; i < q->nsubs; i++)
        free(q->subs[i]);
    ls_topic_list_free(&q->topics);
    free(q->status);
    ls_sparkplug_free(q->sp);
    ls_buf_free(&q->sync_topic);
    ls_stopper_close(&q->stop);
    ls_ingest_producer_close(q->prod);
    free(q);
    ls_mqtt_lib_cleanup();
}

/* The MQTT input's figures in /api/v1/stats and /metrics (core/stats.h). */
static void stats_json_cb(void *ud, ls_buf *b, uint64_t committed)
{
    (void)committed;
    ls_mqtt_stats_json(ud, b);
}

static void stats_prom_cb(void *ud, ls_buf *b, uint64_t committed)
{
    (void)committed;
    ls_prom_family(b, "lastseen_source_up", "gauge",
                   "1 while an input source is heard live; its devices are held otherwise.");
    const char *l[] = {"source", "mqtt", NULL};
    ls_prom_u64(b, "lastseen_source_up", l, (uint64_t)ls_mqtt_is_up(ud));
}

int ls_mqtt_start(ls_mqtt **out, ls_ingest *in, const ls_config *cfg)
{
    int rc;
    ls_mqtt *q = calloc(1, sizeof(*q));
    if (!q) return -ENOMEM;
    q->in = in;
    q->cfg = cfg;
    ls_config_mqtt_opts(cfg, &q->conn);
    ls_stopper_init(&q->stop);
    if (ls_mqtt_lib_init() < 0) {
        ls_stopper_close(&q->stop);
        free(q);
        return -EIO;
    }
    if ((rc = setup(q)) < 0) {
        destroy(q);
        return rc;
    }
    rc = ls_ingest_source_add(in, SOURCE_NAME, cfg->mqtt_gate);
    if (rc < 0) {
        ls_error(MOD, "cannot register the mqtt source: %s", ls_strerror(rc));
        destroy(q);
        return -EINVAL;
    }
    q->source = (unsigned)rc;
    ls_ingest_counters_open(in, SOURCE_NAME, &q->counters);
    if ((rc = ls_ingest_producer_open(in, &q->prod, applied_cb, q)) < 0) {
        destroy(q);
        return rc;
    }
    if ((rc = pthread_create(&q->thread, NULL, reader_main, q)) != 0) {
        destroy(q);
        return -rc;
    }
    q->thread_running = 1;
    *out = q;
    ls_stats_port sp = {.key = "mqtt", .json = stats_json_cb, .prom = stats_prom_cb, .ud = q};
    return ls_ingest_stats_register(in, &sp);
}

void ls_mqtt_stop(ls_mqtt *q)
{
    if (!q) return;
    ls_stopper_request(&q->stop);
    if (q->thread_running) pthread_join(q->thread, NULL);
    q->thread_running = 0;
}

void ls_mqtt_free(ls_mqtt *q)
{
    if (!q) return;
    ls_mqtt_stop(q);
    destroy(q);
}

int ls_mqtt_is_up(ls_mqtt *q)
{
    return atomic_load_explicit(&q->state, memory_order_relaxed) == ST_UP;
}

void ls_mqtt_stats_json(ls_mqtt *q, ls_buf *b)
{
    ls_sparkplug_stats sp = {0};
    if (q->sp) ls_sparkplug_get_stats(q->sp, &sp);
    int s = atomic_load_explicit(&q->state, memory_order_relaxed);
    ls_buf_printf(
        b,
        "{\"state\":\"%s\",\"sessions\":%llu,\"sessionsLost\":%llu,\"received\":%llu,"
        "\"activities\":%llu,\"connects\":%llu,\"disconnects\":%llu,\"retainedSkipped\":%llu,"
        "\"unmatched\":%llu,\"badIds\":%llu,\"badTimestamps\":%llu,\"topicTooLong\":%llu,"
        "\"ownTopics\":%llu,\"rejected\":%llu,\"syncTimeouts\":%llu,\"batches\":%llu,",
        state_names[s], (unsigned long long)LOAD(q->st.sessions),
        (unsigned long long)LOAD(q->st.sessions_lost), (unsigned long long)LOAD(q->st.received),
        (unsigned long long)LOAD(q->st.activities), (unsigned long long)LOAD(q->st.connects),
        (unsigned long long)LOAD(q->st.disconnects),
        (unsigned long long)LOAD(q->st.retained_skipped), (unsigned long long)LOAD(q->st.unmatched),
        (unsigned long long)LOAD(q->st.bad_ids), (unsigned long long)LOAD(q->st.bad_ts),
        (unsigned long long)LOAD(q->st.too_long), (unsigned long long)LOAD(q->st.own_topics),
        (unsigned long long)LOAD(q->st.rejected), (unsigned long long)LOAD(q->st.sync_timeouts),
        (unsigned long long)LOAD(q->st.batches));
    ls_buf_printf(
        b,
        "\"sparkplug\":{\"births\":%llu,\"deaths\":%llu,\"staleDeaths\":%llu,\"badPayloads\":%llu,"
        "\"badTopics\":%llu,\"ignored\":%llu,\"untracked\":%llu}}",
        (unsigned long long)sp.births, (unsigned long long)sp.deaths,
        (unsigned long long)sp.stale_deaths, (unsigned long long)sp.bad_payloads,
        (unsigned long long)sp.bad_topics, (unsigned long long)sp.ignored,
        (unsigned long long)sp.untracked);
}
