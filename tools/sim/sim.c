/*
 * sim.c - lastseen-sim: a fleet of simulated devices reporting to lastseen.
 *
 *   lastseen-sim --devices N --interval 10s --jitter 20% --silent 5% --flap 1%
 *                --protocol http|mqtt|udp --url URL [--prefix sim-] [--rate MAX/s]
 *                [--duration D] [--timeout D] [--udp-keys FILE --udp-source NAME]
 *
 * Each device reports every interval, give or take the jitter (uniformly
 * spread); the first reports are spread over the first interval so the
 * fleet does not arrive at once.  A `silent` share of the devices stops
 * after its first report, so each goes inactive one timeout later; a `flap`
 * share alternates between reporting (2 to 6 intervals) and silence (1.5 to
 * 2.5 timeouts, long enough to go inactive), forever.  Which devices are
 * which is drawn from --seed.
 *
 * Schedule: a binary heap of next report times.  Each turn reads the clock
 * once, takes every device that is due (as far as the --rate token bucket
 * allows) into one batch, and hands it to the transport: one HTTP request
 * (the bulk endpoint), one MQTT publish per device, or UDP datagrams of
 * heartbeat lines.  A device held back
 * by the rate limit stays due and goes first next turn; the status line
 * shows how far behind schedule the sender is (lag).
 *
 * Timeouts: unless --timeout 0, every simulated device gets
 * inactivityTimeout = --timeout (default 3 x interval) with PUT on the
 * device API, the silent and flapping ones first.  A PUT waits for the
 * daemon's commit (a few ms), so for a large fleet this goes on in the
 * background for a while, between ticks, while the devices report.
 *
 * Time is read once per turn (monotonic, for the schedule; wall, for the
 * reports' timestamps).  SIGINT/SIGTERM or --duration stop it with a last
 * status line.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "sim.h"

#define BATCH_MAX 5000       /* reports per request */
#define TURN_MAX_SLEEP_MS 50 /* the loop looks at the clock at least this often */
#define CONFIG_SLICE_MS 40   /* PUT time per turn while timeouts are being set */
#define ID_MAX 256

enum kind { NORMAL, SILENT, FLAP };

typedef struct device {
    uint8_t kind;
    uint8_t off;       /* FLAP: in a silent phase */
    uint8_t stopped;   /* SILENT: reported once, quiet since */
    int64_t phase_end; /* FLAP: mono ms the current phase ends */
} device;

typedef struct slot {
    int64_t due; /* mono ms */
    uint32_t dev;
} slot;

typedef struct options {
    uint32_t devices;
    int64_t interval_ms;
    double jitter, silent, flap; /* fractions */
    const char *protocol, *url, *api, *prefix, *topic;
    const char *udp_keys, *udp_source; /* sign UDP heartbeats (udp.auth = hmac) */
    double rate;                       /* reports/s, 0 = unlimited */
    int64_t duration_ms;               /* 0 = until stopped */
    int64_t timeout_ms;                /* -1 = 3 x interval, 0 = leave alone */
    int64_t status_ms;
    uint64_t seed;
} options;

typedef struct sim {
    options o;
    device *dev;
    int id_width; /* digits of the device number in its id */
    slot *heap;
    size_t nheap;
    uint32_t *config_order;
    uint32_t config_next;
    uint64_t rng;
    sim_out *out;
    sim_api *api;
    /* counters */
    uint64_t sent, accepted, rejected, failed, batches;
    uint64_t config_ok, config_err;
    char last_error[512], last_config_error[512];
    uint64_t n_silent, n_flap;
    int64_t lag_ms;
} sim;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rnd(sim *s)
{
    uint64_t x = s->rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, 1). */
static double unit(sim *s)
{
    return (double)(rnd(s) >> 11) / 9007199254740992.0;
}

/* Device i's id (prefix + zero-padded number) into out[ID_MAX]. */
static const char *dev_id(const sim *s, uint32_t i, char *out)
{
    snprintf(out, ID_MAX, "%s%0*u", s->o.prefix, s->id_width, i);
    return out;
}

/* ------------------------------------------------------------------ heap */

static void heap_push(sim *s, int64_t due, uint32_t dev)
{
    size_t i = s->nheap++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (s->heap[p].due <= due) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = (slot){due, dev};
}

static slot heap_pop(sim *s)
{
    slot top = s->heap[0], last = s->heap[--s->nheap];
    size_t i = 0, n = s->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && s->heap[c + 1].due < s->heap[c].due) c++;
        if (last.due <= s->heap[c].due) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

/* ------------------------------------------------------------------ options */

/* "10s", "500ms", "2m", "1h", "1d"; a bare number is seconds.  ms, or -1. */
static int64_t parse_duration(const char *v)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || x < 0 || !isfinite(x)) return -1;
    double mul = 1000;
    if (!*end || strcmp(end, "s") == 0)
        mul = 1000;
    else if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else if (strcmp(end, "d") == 0)
        mul = 86400000;
    else
        return -1;
    double ms = x * mul;
    return ms > 1e15 ? -1 : (int64_t)llround(ms);
}

/* "5%" or "5" (percent) -> 0.05; -1 if not within 0..100. */
static double parse_percent(const char *v)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || (*end && strcmp(end, "%") != 0) || !(x >= 0 && x <= 100)) return -1;
    return x / 100;
}

/* "5000/s" or "5000"; -1 if bad. */
static double parse_rate(const char *v)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || (*end && strcmp(end, "/s") != 0) || !(x >= 0) || !isfinite(x))
        return -1;
    return x;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: lastseen-sim [options]\n"
        "Simulates a fleet of devices reporting to lastseen.\n\n"
        "  --devices N        devices (default 1000)\n"
        "  --interval D       time between a device's reports (default 10s)\n"
        "  --jitter P%%        each interval varies by up to +-P%% (default 20%%)\n"
        "  --silent P%%        devices that stop after their first report (default 5%%)\n"
        "  --flap P%%          devices that alternate reporting and silence (default 1%%)\n"
        "  --protocol P       http (default), mqtt, or udp\n"
        "  --url URL          http: the daemon (default http://127.0.0.1:8080);\n"
        "                     mqtt: the broker (default mqtt://127.0.0.1:1883)\n"
        "  --topic T          mqtt topic, {id} is the device id (default devices/{id}/telemetry)\n"
        "  --api URL          device API for the timeouts when --protocol is not http\n"
        "                     (default http://127.0.0.1:8080)\n"
        "  --prefix S         device id prefix (default sim-)\n"
        "  --rate R/s         at most R reports a second (default: no limit)\n"
        "  --duration D       stop after D (default: run until Ctrl-C)\n"
        "  --timeout D        set inactivityTimeout D on every device with PUT\n"
        "                     (default 3 x interval; 0 leaves the daemon's default)\n"
        "  --status D         status line every D (default 5s)\n"
        "  --seed N           which devices are silent or flap, and the jitter (default: random)\n"
        "  --udp-keys FILE    udp: sign each heartbeat (the daemon's udp.auth = hmac) with the\n"
        "                     first key of --udp-source in FILE (the udp.keys_file format)\n"
        "  --udp-source NAME  udp: the source whose key signs\n"
        "Durations: 500ms, 10s, 2m, 1h (a bare number is seconds).\n");
}

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.devices = 1000,
                   .interval_ms = 10000,
                   .jitter = 0.2,
                   .silent = 0.05,
                   .flap = 0.01,
                   .protocol = "http",
                   .prefix = "sim-",
                   .topic = "devices/{id}/telemetry",
                   .timeout_ms = -1,
                   .status_ms = 5000,
                   .api = "http://127.0.0.1:8080",
                   .seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32)};
    static const struct option longs[] = {
        {"devices", required_argument, 0, 'n'},
        {"interval", required_argument, 0, 'i'},
        {"jitter", required_argument, 0, 'j'},
        {"silent", required_argument, 0, 's'},
        {"flap", required_argument, 0, 'f'},
        {"protocol", required_argument, 0, 'p'},
        {"url", required_argument, 0, 'u'},
        {"api", required_argument, 0, 'a'},
        {"prefix", required_argument, 0, 'x'},
        {"rate", required_argument, 0, 'r'},
        {"duration", required_argument, 0, 'd'},
        {"timeout", required_argument, 0, 't'},
        {"status", required_argument, 0, 'S'},
        {"seed", required_argument, 0, 'e'},
        {"topic", required_argument, 0, 'T'},
        {"udp-keys", required_argument, 0, 'K'},
        {"udp-source", required_argument, 0, 'O'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'n': {
            errno = 0;
            unsigned long long n = strtoull(optarg, &end, 10);
            if (errno || *end || n < 1 || n > 10000000 || optarg[0] == '-') {
                fprintf(stderr, "lastseen-sim: --devices %s: expected 1 to 10000000\n", optarg);
                return -1;
            }
            o->devices = (uint32_t)n;
            break;
        }
        case 'i':
            if ((o->interval_ms = parse_duration(optarg)) < 10) {
                fprintf(stderr,
                        "lastseen-sim: --interval %s: expected a duration of at least 10ms\n",
                        optarg);
                return -1;
            }
            break;
        case 'j':
            if ((o->jitter = parse_percent(optarg)) < 0 || o->jitter > 0.9) {
                fprintf(stderr, "lastseen-sim: --jitter %s: expected 0%% to 90%%\n", optarg);
                return -1;
            }
            break;
        case 's':
        case 'f': {
            double p = parse_percent(optarg);
            if (p < 0) {
                fprintf(stderr, "lastseen-sim: --%s %s: expected 0%% to 100%%\n",
                        c == 's' ? "silent" : "flap", optarg);
                return -1;
            }
            *(c == 's' ? &o->silent : &o->flap) = p;
            break;
        }
        case 'p':
            o->protocol = optarg;
            break;
        case 'u':
            o->url = optarg;
            break;
        case 'a':
            o->api = optarg;
            break;
        case 'T':
            o->topic = optarg;
            break;
        case 'K':
            o->udp_keys = optarg;
            break;
        case 'O':
            o->udp_source = optarg;
            break;
        case 'x':
            if (strlen(optarg) > 200) {
                fprintf(stderr, "lastseen-sim: --prefix: at most 200 bytes\n");
                return -1;
            }
            for (const unsigned char *p = (const unsigned char *)optarg; *p; p++) {
                if (*p < 0x20 || *p == 0x7f) {
                    fprintf(stderr, "lastseen-sim: --prefix: no control characters\n");
                    return -1;
                }
            }
            o->prefix = optarg;
            break;
        case 'r':
            if ((o->rate = parse_rate(optarg)) < 0) {
                fprintf(stderr,
                        "lastseen-sim: --rate %s: expected reports per second, e.g. 5000/s\n",
                        optarg);
                return -1;
            }
            break;
        case 'd':
            if ((o->duration_ms = parse_duration(optarg)) < 0) {
                fprintf(stderr, "lastseen-sim: --duration %s: expected a duration such as 30s\n",
                        optarg);
                return -1;
            }
            break;
        case 't':
            if ((o->timeout_ms = parse_duration(optarg)) < 0 || o->timeout_ms > 315360000000LL) {
                fprintf(
                    stderr,
                    "lastseen-sim: --timeout %s: expected a duration (0 = the daemon's default)\n",
                    optarg);
                return -1;
            }
            break;
        case 'S':
            if ((o->status_ms = parse_duration(optarg)) < 100) {
                fprintf(stderr,
                        "lastseen-sim: --status %s: expected a duration of at least 100ms\n",
                        optarg);
                return -1;
            }
            break;
        case 'e':
            errno = 0;
            o->seed = strtoull(optarg, &end, 0);
            if (errno || *end) {
                fprintf(stderr, "lastseen-sim: --seed %s: expected an integer\n", optarg);
                return -1;
            }
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lastseen-sim: unexpected argument %s\n", argv[optind]);
        return -1;
    }
    if (o->silent + o->flap > 1) {
        fprintf(stderr, "lastseen-sim: --silent and --flap add up to more than 100%%\n");
        return -1;
    }
    if (o->timeout_ms < 0) o->timeout_ms = 3 * o->interval_ms;
    return 0;
}

/* ------------------------------------------------------------------ fleet */

static int64_t next_interval(sim *s)
{
    double f = 1 + s->o.jitter * (2 * unit(s) - 1);
    int64_t ms = (int64_t)llround((double)s->o.interval_ms * f);
    return ms < 1 ? 1 : ms;
}

/* The silence of a flapping device: long enough to go inactive.  Without a
 * timeout of our own, the daemon's default (10 minutes unless configured). */
static int64_t flap_off_ms(sim *s)
{
    int64_t t = s->o.timeout_ms ? s->o.timeout_ms : 600000;
    return (int64_t)((double)t * (1.5 + unit(s)));
}

static int64_t flap_on_ms(sim *s)
{
    return s->o.interval_ms * (2 + (int64_t)(rnd(s) % 5));
}

static int fleet_init(sim *s, int64_t now)
{
    uint32_t n = s->o.devices;
    s->dev = calloc(n, sizeof(*s->dev));
    s->heap = malloc(sizeof(*s->heap) * n);
    s->config_order = malloc(sizeof(uint32_t) * n);
    uint32_t *perm = malloc(sizeof(uint32_t) * n);
    if (!s->dev || !s->heap || !s->config_order || !perm) {
        free(perm);
        return -ENOMEM;
    }
    s->id_width = snprintf(NULL, 0, "%u", n - 1 ? n - 1 : 1);
    for (uint32_t i = 0; i < n; i++)
        perm[i] = i;
    /* Exact shares, drawn by a partial Fisher-Yates shuffle. */
    s->n_silent = (uint64_t)llround(s->o.silent * n);
    s->n_flap = (uint64_t)llround(s->o.flap * n);
    if (s->n_silent + s->n_flap > n) s->n_flap = n - s->n_silent;
    for (uint64_t k = 0; k < s->n_silent + s->n_flap; k++) {
        uint32_t j = (uint32_t)(k + rnd(s) % (n - k));
        uint32_t t = perm[k];
        perm[k] = perm[j];
        perm[j] = t;
        s->dev[perm[k]].kind = k < s->n_silent ? SILENT : FLAP;
    }
    /* Timeouts are set in this order: the devices that will go quiet first. */
    for (uint32_t i = 0; i < n; i++)
        s->config_order[i] = perm[i];
    free(perm);
    for (uint32_t i = 0; i < n; i++) {
        device *d = &s->dev[i];
        int64_t first = now + (int64_t)(unit(s) * (double)s->o.interval_ms);
        if (d->kind == FLAP) d->phase_end = first + flap_on_ms(s);
        heap_push(s, first, i);
    }
    return 0;
}

/* Decides whether device i reports at `now`; schedules its next turn. */
static int device_due(sim *s, uint32_t i, int64_t now)
{
    device *d = &s->dev[i];
    switch (d->kind) {
    case SILENT:
        if (d->stopped) return 0; /* not rescheduled: quiet for good */
        d->stopped = 1;
        return 1;
    case FLAP:
        if (now >= d->phase_end) {
            d->off = !d->off;
            d->phase_end = now + (d->off ? flap_off_ms(s) : flap_on_ms(s));
        }
        if (d->off) {
            heap_push(s, d->phase_end, i);
            return 0;
        }
        break;
    default:
        break;
    }
    heap_push(s, now + next_interval(s), i);
    return 1;
}

/* ------------------------------------------------------------------ status */

static void status_line(sim *s, int64_t elapsed, double rate, FILE *f)
{
    uint64_t stopped = 0, off = 0;
    for (uint32_t i = 0; i < s->o.devices; i++) {
        stopped += s->dev[i].kind == SILENT && s->dev[i].stopped;
        off += s->dev[i].kind == FLAP && s->dev[i].off;
    }
    fprintf(f,
            "[%7.1fs] sent %llu (%.0f/s) accepted %llu rejected %llu failed %llu | devices %u: "
            "silent %llu/%llu "
            "stopped, flapping %llu (%llu quiet) | lag %lld ms",
            (double)elapsed / 1000, (unsigned long long)s->sent, rate,
            (unsigned long long)s->accepted, (unsigned long long)s->rejected,
            (unsigned long long)s->failed, s->o.devices, (unsigned long long)stopped,
            (unsigned long long)s->n_silent, (unsigned long long)s->n_flap, (unsigned long long)off,
            (long long)s->lag_ms);
    if (s->o.timeout_ms)
        fprintf(f, " | timeouts set %llu/%u%s", (unsigned long long)s->config_ok, s->o.devices,
                s->config_err ? " (with errors)" : "");
    fputc('\n', f);
    if (s->last_error[0]) {
        fprintf(f, "  last error: %s\n", s->last_error);
        s->last_error[0] = '\0';
    }
    if (s->last_config_error[0]) {
        fprintf(f, "  last timeout error: %s\n", s->last_config_error);
        s->last_config_error[0] = '\0';
    }
    fflush(f);
}

/* ------------------------------------------------------------------ main loop */

/* PUTs timeouts for up to CONFIG_SLICE_MS; a failure waits for the next
 * status period so a missing daemon is not hammered. */
static void configure_some(sim *s, int64_t now, int64_t *retry_at)
{
    if (!s->api || s->config_next >= s->o.devices || now < *retry_at) return;
    int64_t end = now + CONFIG_SLICE_MS;
    while (s->config_next < s->o.devices && mono_ms() < end) {
        uint32_t i = s->config_order[s->config_next];
        char err[512], id[ID_MAX];
        if (sim_api_set_timeout(s->api, dev_id(s, i, id), s->o.timeout_ms, err, sizeof(err)) < 0) {
            s->config_err++;
            snprintf(s->last_config_error, sizeof(s->last_config_error), "%s", err);
            *retry_at = now + 1000;
            return;
        }
        s->config_ok++;
        s->config_next++;
    }
}

static int run(sim *s)
{
    const char **ids = malloc(sizeof(char *) * BATCH_MAX);
    char(*arena)[ID_MAX] = malloc(sizeof(*arena) * BATCH_MAX);
    if (!ids || !arena) {
        free(ids);
        free(arena);
        return -ENOMEM;
    }
    int64_t start = mono_ms(), last_status = start, config_retry = 0;
    uint64_t sent_at_status = 0;
    double tokens = s->o.rate > 0 ? s->o.rate * 0.1 : 0;
    int64_t last_refill = start;

    while (!stop_flag) {
        int64_t now = mono_ms();
        if (s->o.duration_ms && now - start >= s->o.duration_ms) break;
        if (s->o.rate > 0) {
            tokens += s->o.rate * (double)(now - last_refill) / 1000;
            double cap = s->o.rate * 0.2 > BATCH_MAX ? BATCH_MAX
                                                     : (s->o.rate * 0.2 < 1 ? 1 : s->o.rate * 0.2);
            if (tokens > cap) tokens = cap;
            last_refill = now;
        }
        /* Everything due now, as far as the rate allows, in batches. */
        for (;;) {
            sim_batch b = {.ids = ids, .n = 0, .ts = wall_ms()};
            while (s->nheap && s->heap[0].due <= now && b.n < BATCH_MAX &&
                   (s->o.rate <= 0 || tokens >= 1)) {
                slot sl = heap_pop(s);
                if (!device_due(s, sl.dev, now)) continue;
                s->lag_ms = now - sl.due;
                ids[b.n] = dev_id(s, sl.dev, arena[b.n]);
                b.n++;
                if (s->o.rate > 0) tokens -= 1;
            }
            if (!b.n) break;
            sim_result res = {0};
            s->out->send(s->out, &b, &res);
            s->sent += b.n;
            s->batches++;
            s->accepted += res.accepted;
            s->rejected += res.rejected;
            s->failed += res.failed;
            if (res.error[0]) snprintf(s->last_error, sizeof(s->last_error), "%s", res.error);
            if (b.n < BATCH_MAX || stop_flag) break;
        }
        if (!s->nheap || s->heap[0].due > now) s->lag_ms = 0;
        configure_some(s, now, &config_retry);

        now = mono_ms();
        if (now - last_status >= s->o.status_ms) {
            double rate = (double)(s->sent - sent_at_status) * 1000 / (double)(now - last_status);
            status_line(s, now - start, rate, stdout);
            last_status = now;
            sent_at_status = s->sent;
        }
        int64_t wake = now + TURN_MAX_SLEEP_MS;
        if (s->nheap && s->heap[0].due < wake) wake = s->heap[0].due;
        if (s->o.rate > 0 && tokens < 1) {
            int64_t refill = now + (int64_t)ceil((1 - tokens) * 1000 / s->o.rate);
            if (refill > wake) wake = refill;
        }
        if (s->api && s->config_next < s->o.devices && now >= config_retry)
            wake = now; /* keep configuring */
        if (wake > now) {
            struct timespec ts = {.tv_sec = (wake - now) / 1000,
                                  .tv_nsec = (long)((wake - now) % 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    int64_t now = mono_ms();
    status_line(s, now - start,
                (double)s->sent * 1000 / (double)(now - start > 0 ? now - start : 1), stdout);
    free(ids);
    free(arena);
    return 0;
}

int main(int argc, char **argv)
{
    sim s = {0};
    if (parse_args(argc, argv, &s.o) < 0) return 2;
    s.rng = s.o.seed ? s.o.seed : 1;

    const char *proto = s.o.protocol;
    if (strcmp(proto, "http") && strcmp(proto, "mqtt") && strcmp(proto, "udp")) {
        fprintf(stderr, "lastseen-sim: --protocol %s: expected http, mqtt or udp\n", proto);
        return 2;
    }
    int is_http = strcmp(proto, "http") == 0, is_udp = strcmp(proto, "udp") == 0;
    if (!s.o.url)
        s.o.url = is_http  ? "http://127.0.0.1:8080"
                  : is_udp ? "udp://127.0.0.1:8081"
                           : "mqtt://127.0.0.1:1883";
    if (!s.o.udp_keys != !s.o.udp_source || (s.o.udp_keys && !is_udp)) {
        fprintf(stderr,
                "lastseen-sim: --udp-keys and --udp-source go together, with --protocol udp\n");
        return 2;
    }
    if (is_udp && strchr(s.o.prefix, ' ')) {
        fprintf(stderr, "lastseen-sim: --prefix: UDP heartbeat ids cannot contain a space\n");
        return 2;
    }
    if (is_http && strncmp(s.o.url, "http://", 7) && strncmp(s.o.url, "https://", 8)) {
        fprintf(stderr, "lastseen-sim: --url %s: expected http://HOST:PORT\n", s.o.url);
        return 2;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "lastseen-sim: libcurl failed to initialise\n");
        return 1;
    }
    int rc;
    char client_id[64];
    snprintf(client_id, sizeof(client_id), "lastseen-sim-%d", (int)getpid());
    rc = is_http  ? sim_http_open(&s.out, s.o.url)
         : is_udp ? sim_udp_open(&s.out, s.o.url, s.o.udp_keys, s.o.udp_source)
                  : sim_mqtt_open(&s.out, s.o.url, s.o.topic, client_id);
    if (rc < 0) {
        if (is_http) fprintf(stderr, "lastseen-sim: %s: %s\n", s.o.url, strerror(-rc));
        curl_global_cleanup();
        return rc == -ENOTSUP || rc == -EINVAL ? 2 : 1;
    }
    if (s.o.timeout_ms && (rc = sim_api_open(&s.api, is_http ? s.o.url : s.o.api)) < 0) {
        fprintf(stderr, "lastseen-sim: device API: %s\n", strerror(-rc));
        s.out->close(s.out);
        curl_global_cleanup();
        return 1;
    }
    if ((rc = fleet_init(&s, mono_ms())) < 0) {
        fprintf(stderr, "lastseen-sim: %u devices: out of memory\n", s.o.devices);
        return 1;
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char first[ID_MAX], last[ID_MAX];
    printf("lastseen-sim: %u devices (%s .. %s) report every %lld ms +-%.0f%% over %s to %s; "
           "%llu go silent after one report, %llu flap",
           s.o.devices, dev_id(&s, 0, first), dev_id(&s, s.o.devices - 1, last),
           (long long)s.o.interval_ms, s.o.jitter * 100, proto, s.o.url,
           (unsigned long long)s.n_silent, (unsigned long long)s.n_flap);
    if (s.o.timeout_ms)
        printf("; inactivityTimeout %lld ms set on each with PUT", (long long)s.o.timeout_ms);
    if (s.o.rate > 0) printf("; at most %.0f reports/s", s.o.rate);
    printf("; seed %llu\n", (unsigned long long)s.o.seed);
    fflush(stdout);

    rc = run(&s);
    s.out->close(s.out);
    sim_api_close(s.api);
    curl_global_cleanup();
    free(s.dev);
    free(s.heap);
    free(s.config_order);
    if (rc < 0) return 1;
    /* Nothing got through at all: say so with the exit code too. */
    return s.sent && !s.accepted ? 1 : 0;
}
