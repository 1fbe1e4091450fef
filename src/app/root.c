/*
 * root.c - the composition root: opens the core (core/daemon.h), starts the
 * adapters around it (HTTP API, UDP and MQTT inputs, the events file,
 * webhook and MQTT sinks) in the order that keeps every promise of theirs,
 * runs the main loop and stops everything in the reverse order.
 *
 * Start: the core opens the store first; HTTP starts next so /healthz says
 * "starting" while the events file catches up and the devices load; the
 * events file's sink opens before ls_core_start() (the file's last seq
 * must be known before any event gets one); the inputs come once the
 * shards run, each given the ingest port (core/ingest.h) and the
 * configuration, never the daemon; in cluster mode (cluster.nats) the
 * cluster node starts just before them and makes that port forward to
 * the cluster's input stream, its own consumers applying the stream
 * through a second port; the other sinks last.  Stop: the MQTT
 * input first (what it read is applied before the final commit), then what
 * the inputs forwarded to the cluster is settled, the requests that wait
 * for a commit get it, HTTP stops, the other inputs, the cluster node
 * hands its partitions over, the port closes, the shards drain, the
 * webhook and MQTT sinks stop (their
 * last acknowledgements are saved), the committer makes the final commit
 * and the events file gets it inline (its cursor is not saved, but the
 * file's own last seq says as much next time), the events file closes and
 * the core closes.
 */
#include "app/root.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"
#include "base/clock.h"
#include "base/log.h"
#include "cluster/node.h"
#include "core/ingest.h"
#include "core/shards.h"
#include "in/mqtt.h"
#include "in/udp.h"
#include "out/eventlog.h"
#include "out/mqtt_pub.h"
#include "out/webhook.h"

int ls_daemon_start(ls_daemon *d, const ls_config *cfg)
{
    int rc;
    if ((rc = ls_core_open(d, cfg)) < 0) return rc;
    if ((rc = ls_http_start(&d->http, d, &d->cfg)) < 0) return rc;
    if ((rc = ls_eventlog_sink_start(&d->eventlog, d, &d->cfg)) < 0) return rc;
    if ((rc = ls_core_start(d)) < 0) return rc;
    if ((rc = ls_ingest_open(&d->ingest, d)) < 0) return rc;
    if (cfg->cluster_nats[0]) { /* the inputs' items go to the cluster's stream from here on */
        ls_ingest *local;
        if ((rc = ls_ingest_open(&local, d)) < 0) return rc;
        if ((rc = ls_cluster_start(&d->cluster, d, d->ingest, local, &d->cfg)) < 0) return rc;
    }
    if (cfg->udp_listen[0] && (rc = ls_udp_start(&d->udp, d->ingest, &d->cfg)) < 0) return rc;
    if (cfg->mqtt_host[0] && (rc = ls_mqtt_start(&d->mqtt, d->ingest, &d->cfg)) < 0) return rc;
    if ((rc = ls_webhooks_start(&d->webhooks, d, &d->cfg)) < 0) return rc;
    if (cfg->mqtt_host[0] && (cfg->mqtt_event_topic[0] || cfg->mqtt_state_topic[0]) &&
        (rc = ls_mqtt_pub_start(&d->mqtt_pub, d, &d->cfg)) < 0)
        return rc;
    ls_core_ready(d);
    /* The inputs run already: an MQTT source transition may be raising an
     * event right now. */
    ls_mutex_lock(&d->lock);
    uint64_t seq = d->seq;
    ls_mutex_unlock(&d->lock);
    ls_info("daemon",
            "lastseen %s started: data_dir=%s shards=%u default_inactivity_timeout=%lldms "
            "monitor_by_default=%s "
            "http.reporting_strategy=%s events seq=%llu",
            LS_VERSION, cfg->data_dir, d->shards->n,
            (long long)cfg->state_default_inactivity_timeout,
            cfg->state_monitor_by_default ? "true" : "false",
            ls_report_strategy_name((ls_report_strategy)cfg->http_reporting_strategy),
            (unsigned long long)seq);
    return 0;
}

/* SIGHUP: the files that are read again while the daemon runs. */
static void reload(ls_daemon *d)
{
    int tls = ls_http_reload_tls(d->http);
    int keys = ls_udp_reload_keys(d->udp);
    if (tls == 1 && keys == 1)
        ls_info("daemon", "SIGHUP: nothing to reload (no http.tls_cert, no udp.keys_file in use)");
}

int ls_daemon_run(ls_daemon *d)
{
    for (;;) {
        int64_t next = ls_core_tick(d);
        int64_t wait_ns = next * 1000000 - ls_clock_mono_ns();
        if (wait_ns < 0) wait_ns = 0;
        struct timespec ts = {.tv_sec = wait_ns / 1000000000, .tv_nsec = wait_ns % 1000000000};
        struct pollfd fds[2] = {{.fd = d->signal_fd, .events = POLLIN},
                                {.fd = d->wake_fd, .events = POLLIN}};
        int n = ppoll(fds, 2, &ts, NULL);
        if (n < 0 && errno != EINTR) {
            ls_error("daemon", "ppoll: %s", strerror(errno));
            return -errno;
        }
        if (n > 0 && (fds[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            if (read(d->signal_fd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                    reload(d);
                    continue;
                }
                ls_info("daemon", "signal %u: stopping", si.ssi_signo);
                return 0;
            }
        }
        if (n > 0 && (fds[1].revents & POLLIN)) {
            uint64_t v;
            ssize_t r = read(d->wake_fd, &v, sizeof(v));
            (void)r;
        }
    }
}

void ls_daemon_stop(ls_daemon *d)
{
    ls_mqtt_stop(d->mqtt);          /* first: what it read is applied before the final commit */
    ls_cluster_quiesce(d->cluster); /* what inputs forwarded is stored or failed, answered */
    ls_core_commit_waiting(d);      /* requests waiting for a commit get their real answer */
    ls_http_stop(d->http);
    ls_mqtt_free(d->mqtt); /* HTTP threads read its counters until here */
    d->mqtt = NULL;
    ls_udp_stop(d->udp);
    d->udp = NULL;
    ls_cluster_stop(d->cluster); /* hands its partitions over; its consumers are gone */
    d->cluster = NULL;
    ls_ingest_close(d->ingest); /* every input is gone */
    d->ingest = NULL;
    ls_core_stop_ingest(d);
    /* Sinks before the store closes, so that their last acknowledgements are saved. */
    ls_webhooks_stop(d->webhooks);
    d->webhooks = NULL;
    ls_mqtt_pub_stop(d->mqtt_pub);
    d->mqtt_pub = NULL;
    ls_core_stop_committer(d);          /* its last commit hook finds HTTP stopped */
    ls_eventlog_sink_stop(d->eventlog); /* after the final commit, which it wrote */
    d->eventlog = NULL;
    ls_http_free(d->http);
    d->http = NULL;
    ls_core_close(d);
}
