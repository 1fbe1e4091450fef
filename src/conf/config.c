/*
 * config.c - the configuration table and the layers that fill it.
 *
 * Every key lastseen understands is one row of cfg_table below: section,
 * key, type, where it lives in ls_config (offsetof), the size of its buffer
 * for strings, its default written as text, its bounds or allowed words, and
 * a one-line doc.  Everything else here is generic code walking that table:
 * the INI file loader (libinih), the LASTSEEN_SECTION_KEY environment
 * variables, --set section.key=value, --help and the Markdown table of
 * docs/configuration.md.  Adding a key is adding a row; the layers, the help
 * and the docs cannot disagree because none of them knows any key by name.
 * Defaults go through the same parsers as user input, so a default that
 * breaks its own bounds fails the unit tests (and aborts at start-up).
 *
 * Layers are applied by the caller in order defaults, file, environment,
 * --set; each one overwrites what the previous set, which gives the
 * precedence --set > env > file > default.  A layer either applies fully or
 * not at all: the file and the environment are parsed into a copy of the
 * configuration and swapped in only when every line was valid, so a failed
 * reload leaves the running configuration untouched.
 *
 * Errors are reported once, as one line in the caller's buffer, naming where
 * the value came from (file:line, environment variable, --set), the key, the
 * value as written and what would have been accepted.  The first error
 * stops the layer.  Return codes are 0 or a negative errno value: -EINVAL for
 * a bad value or syntax, -ENOENT for an unknown key or variable, -ERANGE from
 * the parsers for numbers that overflow, and -errno of fopen/read for files.
 *
 * Webhooks are named sections, [webhook.NAME], each with the keys of
 * webhook_table (url, events, secret, batch, timeout) stored in one of
 * LS_WEBHOOKS_MAX slots of ls_config.webhooks.  The same generic code
 * applies them: a name "webhook.NAME.key" finds (or takes) NAME's slot and
 * applies the row to it; the environment spells it
 * LASTSEEN_WEBHOOK_NAME_KEY (the key is what follows the last '_', since no
 * webhook key has one).  A slot starts from the webhook defaults when its
 * first key is set; ls_config_validate() then checks that each has a url.
 *
 * Cost: lookups are linear scans of a table of about twenty rows, done only
 * at start-up and reload.
 *
 * Limits: Debian's libinih is built with its default 200-byte line buffer
 * (INI_MAX_LINE) and no realloc; it would silently cut a longer line.  The
 * reader below therefore refuses any line longer than 198 characters with
 * an error instead.  Longer values (a deep store.data_dir) can be given
 * through the environment or --set.  A [section] header without keys is
 * not checked (inih does not report it).
 */
#include "conf/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "engine/engine.h"
#include "mqtt/topic.h"

typedef enum cfg_type {
    CFG_STRING = 0,
    CFG_DURATION, /* int64_t milliseconds */
    CFG_SIZE,     /* int64_t bytes */
    CFG_INT,      /* int64_t */
    CFG_BOOL,     /* int, 0 or 1 */
    CFG_ENUM,     /* int, index into words */
    CFG_EVENTS,   /* int64_t bit mask of event types (ls_parse_event_types) */
} cfg_type;

static const char *const cfg_type_names[] = {"string", "duration", "size", "int",
                                             "bool",   "enum",     "list"};

/*
 * Extra validation of a string value (already trimmed, s[0..n) without NUL).
 * Returns 0, or -EINVAL with *why set to a short reason.
 */
typedef int (*cfg_check_fn)(const char *s, size_t n, const char **why);

typedef struct cfg_key {
    const char *section;
    const char *key;
    cfg_type type;
    size_t offset;            /* of the field in ls_config (ls_webhook_config) */
    size_t size;              /* CFG_STRING: buffer size including the NUL */
    const char *def;          /* default, parsed like user input */
    int64_t min, max;         /* CFG_DURATION, CFG_SIZE, CFG_INT: inclusive */
    const char *const *words; /* CFG_ENUM: NULL-terminated; value = index */
    cfg_check_fn check;       /* CFG_STRING: NULL = anything without controls */
    const char *allowed;      /* CFG_STRING: what check accepts, for humans */
    const char *doc;          /* one line */
} cfg_key;

/*
 * Field references.  The _Generic makes the build fail if a row's storage
 * type and the struct member disagree (say an int64_t key pointed at an int).
 */
#define FIELD_STR(f)                                                                               \
    .offset = _Generic(((ls_config *)0)->f, char *: offsetof(ls_config, f)),                      \
    .size = sizeof(((ls_config *)0)->f)
#define FIELD_I64(f) .offset = _Generic(((ls_config *)0)->f, int64_t : offsetof(ls_config, f))
#define FIELD_INT(f) .offset = _Generic(((ls_config *)0)->f, int : offsetof(ls_config, f))
#define WFIELD_STR(f)                                                                              \
    .offset = _Generic(((ls_webhook_config *)0)->f, char *: offsetof(ls_webhook_config, f)),      \
    .size = sizeof(((ls_webhook_config *)0)->f)
#define WFIELD_I64(f)                                                                              \
    .offset = _Generic(((ls_webhook_config *)0)->f, int64_t : offsetof(ls_webhook_config, f))

#define MS_SECOND INT64_C(1000)
#define MS_MINUTE (60 * MS_SECOND)
#define MS_HOUR (60 * MS_MINUTE)
#define MS_DAY (24 * MS_HOUR)
#define KIB INT64_C(1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
#define TIB (1024 * GIB)

static int listen_check(const char *s, size_t n, const char **why);
static int optional_listen_check(const char *s, size_t n, const char **why);
static int nonempty_check(const char *s, size_t n, const char **why);
static int url_check(const char *s, size_t n, const char **why);
static int nats_urls_check(const char *s, size_t n, const char **why);
static int node_name_check(const char *s, size_t n, const char **why);

static const char *const log_words[] = {"debug", "info", "warn", "error", NULL};
static const char *const policy_words[] = {"grace", "strict", NULL};
/* In ls_report_strategy order (src/engine/reporting.h). */
static const char *const strategy_words[] = {"ALL", "FIRST", "LAST", "FIRST_AND_LAST", NULL};
static const char *const mqtt_protocol_words[] = {"3.1.1", "5", NULL};
static const char *const udp_auth_words[] = {"off", "hmac", NULL}; /* LS_UDP_AUTH_* */
/* In LS_HTTP_AUTH_* and LS_AUDIT_* order (config.h). */
static const char *const auth_words[] = {"on", "off", NULL};
static const char *const audit_words[] = {"auto", "on", "off", NULL};
_Static_assert(LS_LOG_DEBUG == 0 && LS_LOG_INFO == 1 && LS_LOG_WARN == 2 && LS_LOG_ERROR == 3,
               "log_words[] must list the LS_LOG_* levels in order");

/* One key per few lines reads better than clang-format's one field per line. */
/* clang-format off */
static const cfg_key cfg_table[] = {
    {.section = "http", .key = "listen", .type = CFG_STRING, FIELD_STR(http_listen),
     .def = "127.0.0.1:8080", .check = listen_check,
     .allowed = "host:port with port 0..65535, IPv6 in brackets: [::1]:8080",
     .doc = "address and port the HTTP API listens on"},
    {.section = "http", .key = "max_body", .type = CFG_SIZE, FIELD_I64(http_max_body),
     .def = "16MiB", .min = KIB, .max = GIB,
     .doc = "largest HTTP request body accepted"},
    {.section = "http", .key = "threads", .type = CFG_INT, FIELD_I64(http_threads),
     .def = "1", .min = 1, .max = 64,
     .doc = "libmicrohttpd worker threads"},
    {.section = "http", .key = "max_streams", .type = CFG_INT, FIELD_I64(http_max_streams),
     .def = "64", .min = 1, .max = 1024,
     .doc = "event streams (/api/v1/events/stream) open at once; one more is answered 503"},
    {.section = "http", .key = "stream_max_backlog", .type = CFG_INT, FIELD_I64(http_stream_max_backlog),
     .def = "100000", .min = 1, .max = INT64_C(1000000000),
     .doc = "events an event stream may stay behind (beyond the backlog it started with) for 5 s before it is closed"},
    {.section = "http", .key = "stream_keepalive", .type = CFG_DURATION, FIELD_I64(http_stream_keepalive),
     .def = "15s", .min = 100, .max = MS_HOUR,
     .doc = "silence after which an event stream sends a keep-alive comment"},
    {.section = "http", .key = "max_connections", .type = CFG_INT, FIELD_I64(http_max_connections),
     .def = "4096", .min = 16, .max = 1000000,
     .doc = "HTTP connections open at once, all clients together; more are closed at once (the open-file limit is raised to fit, or this is lowered to fit it, with a warning)"},
    {.section = "http", .key = "max_connections_per_ip", .type = CFG_INT, FIELD_I64(http_max_connections_per_ip),
     .def = "256", .min = 0, .max = 1000000,
     .doc = "HTTP connections open at once from one client address; more are closed at once; 0 = no cap (behind a reverse proxy, whose address all clients share)"},
    {.section = "http", .key = "header_timeout", .type = CFG_DURATION, FIELD_I64(http_header_timeout),
     .def = "10s", .min = 100, .max = 10 * MS_MINUTE,
     .doc = "a new connection is closed unless its first request's headers (and the TLS handshake) arrive within this; a kept-alive one gets 60 s more for each next request"},
    {.section = "http", .key = "tls_cert", .type = CFG_STRING, FIELD_STR(http_tls_cert),
     .def = "", .allowed = "empty (plain HTTP) or a path",
     .doc = "PEM file of the server certificate, then its intermediates: set (with tls_key), the API speaks only HTTPS, TLS 1.2 and 1.3; reloaded on SIGHUP"},
    {.section = "http", .key = "tls_key", .type = CFG_STRING, FIELD_STR(http_tls_key),
     .def = "", .allowed = "empty or a path",
     .doc = "PEM file of tls_cert's private key, unencrypted; reloaded on SIGHUP"},
    {.section = "http", .key = "reporting_strategy", .type = CFG_ENUM, FIELD_INT(http_reporting_strategy),
     .def = "ALL", .words = strategy_words,
     .doc = "which HTTP activities reach the engine, per device and reporting period (ThingsBoard's strategies; see docs/semantics.md)"},
    {.section = "http", .key = "reporting_period", .type = CFG_DURATION, FIELD_I64(http_reporting_period),
     .def = "3000ms", .min = 1, .max = MS_HOUR,
     .doc = "length of a device's reporting period for http.reporting_strategy"},
    {.section = "http", .key = "auth", .type = CFG_ENUM, FIELD_INT(http_auth),
     .def = "on", .words = auth_words,
     .doc = "on: once an API token exists (lastseen token create), every API route needs a credential, and an http.listen that is not loopback needs one to start; off: no credential is ever asked (a network you trust; see docs/security.md)"},
    {.section = "http", .key = "auth_healthz", .type = CFG_BOOL, FIELD_INT(http_auth_healthz),
     .def = "false",
     .doc = "/healthz needs a credential (any scope) when credentials are required (false: open, for load balancers)"},
    {.section = "http", .key = "auth_metrics", .type = CFG_BOOL, FIELD_INT(http_auth_metrics),
     .def = "true",
     .doc = "/metrics needs a credential with scope read when credentials are required (Prometheus: authorization with a bearer token; false: open)"},
    {.section = "audit", .key = "events", .type = CFG_ENUM, FIELD_INT(audit_events),
     .def = "auto", .words = audit_words,
     .doc = "AUDIT events for admin changes (device and type configuration, deletes, alarm status): auto = when made with a credential, on = always, off = never"},
    {.section = "store", .key = "data_dir", .type = CFG_STRING, FIELD_STR(data_dir),
     .def = "./data", .check = nonempty_check, .allowed = "a non-empty path",
     .doc = "directory where lastseen keeps its files"},
    {.section = "store", .key = "flush_interval", .type = CFG_DURATION, FIELD_I64(store_flush_interval),
     .def = "1s", .min = 1, .max = MS_HOUR,
     .doc = "how often a flush pass writes lastActivityTime of busy devices to the store (a crash can lose that much of it, plus the time a pass takes)"},
    {.section = "store", .key = "max_size", .type = CFG_SIZE, FIELD_I64(store_max_size),
     .def = "0", .min = 0, .max = 64 * TIB,
     .doc = "largest the store file may grow; 0 = no cap"},
    {.section = "store", .key = "commit_wait", .type = CFG_DURATION, FIELD_I64(store_commit_wait),
     .def = "5s", .min = 1, .max = MS_HOUR,
     .doc = "how long a request waits for its change to be committed while store writes fail, before it is answered 503 storage_unavailable"},
    {.section = "store", .key = "shutdown_wait", .type = CFG_DURATION, FIELD_I64(store_shutdown_wait),
     .def = "10s", .min = 1, .max = MS_HOUR,
     .doc = "how long a stop waits for the final commit while store writes fail; then lastseen exits with status 1, logging what was not saved"},
    {.section = "store", .key = "sync", .type = CFG_BOOL, FIELD_INT(store_sync),
     .def = "true",
     .doc = "fsync every commit (false: an OS crash may lose the last commit; a process crash never does)"},
    {.section = "engine", .key = "shards", .type = CFG_INT, FIELD_I64(engine_shards),
     .def = "0", .min = 0, .max = 64,
     .doc = "engine shards, one writer thread each; devices are spread by a hash of their id; 0 = one per online core"},
    {.section = "state", .key = "default_inactivity_timeout", .type = CFG_DURATION,
     FIELD_I64(state_default_inactivity_timeout),
     .def = "600s", .min = 1, .max = 3650 * MS_DAY,
     .doc = "inactivity timeout of devices that have no timeout of their own"},
    {.section = "state", .key = "max_clock_skew", .type = CFG_DURATION,
     FIELD_I64(state_max_clock_skew),
     .def = "5s", .min = 0, .max = MS_DAY,
     .doc = "activity timestamps further than this in the future are clamped to now"},
    {.section = "state", .key = "max_devices", .type = CFG_INT, FIELD_I64(state_max_devices),
     .def = "0", .min = 0, .max = INT64_C(4294967295),
     .doc = "most devices tracked at once; 0 = unlimited"},
    {.section = "state", .key = "restart_policy", .type = CFG_ENUM, FIELD_INT(state_restart_policy),
     .def = "grace", .words = policy_words,
     .doc = "devices active at shutdown: grace = full timeout from restart, strict = keep old deadlines"},
    {.section = "state", .key = "monitor_by_default", .type = CFG_BOOL, FIELD_INT(state_monitor_by_default),
     .def = "true",
     .doc = "devices with no timeout of their own or from their type get default_inactivity_timeout (false: they are not monitored)"},
    {.section = "availability", .key = "grace", .type = CFG_DURATION, FIELD_I64(availability_grace),
     .def = "180s", .min = 0, .max = MS_DAY,
     .doc = "added to c8y_RequiredAvailability.responseInterval before a device is unavailable"},
    {.section = "transport", .key = "session_inactivity_timeout", .type = CFG_DURATION,
     FIELD_I64(transport_session_inactivity_timeout),
     .def = "600s", .min = 0, .max = 3650 * MS_DAY,
     .doc = "open sessions of a device silent this long are closed (DISCONNECT_EVENT); 0 = never"},
    {.section = "udp", .key = "listen", .type = CFG_STRING, FIELD_STR(udp_listen),
     .def = "", .check = optional_listen_check,
     .allowed = "empty (off) or host:port, IPv6 in brackets",
     .doc = "address and port of the UDP heartbeat input; empty = off"},
    {.section = "udp", .key = "rcvbuf", .type = CFG_SIZE, FIELD_I64(udp_rcvbuf),
     .def = "8MiB", .min = 64 * KIB, .max = GIB,
     .doc = "socket receive buffer of the UDP input (absorbs bursts; too small drops datagrams)"},
    {.section = "udp", .key = "auth", .type = CFG_ENUM, FIELD_INT(udp_auth),
     .def = "off", .words = udp_auth_words,
     .doc = "hmac: every heartbeat line must be signed, \"<id> <ts> <source>:<mac>\", with a key of udp.keys_file; other lines are counted by reason and dropped (docs/security.md)"},
    {.section = "udp", .key = "keys_file", .type = CFG_STRING, FIELD_STR(udp_keys_file),
     .def = "", .allowed = "empty or a path",
     .doc = "the keys of udp.auth = hmac: lines \"<source> <hex key>\", several per source for rotation; reloaded on SIGHUP"},
    {.section = "udp", .key = "auth_window", .type = CFG_DURATION, FIELD_I64(udp_auth_window),
     .def = "5m", .min = MS_SECOND, .max = MS_DAY,
     .doc = "how far in the past a signed line's timestamp may be (ahead: state.max_clock_skew); older ones are dropped as out_of_window"},
    {.section = "events", .key = "file", .type = CFG_STRING, FIELD_STR(events_file),
     .def = "events.jsonl", .check = nonempty_check,
     .allowed = "a non-empty path; relative paths are under store.data_dir",
     .doc = "the event log: one JSON line per event, appended; reopened after a write error or a rename"},
    {.section = "events", .key = "stdout", .type = CFG_BOOL, FIELD_INT(events_stdout),
     .def = "false",
     .doc = "also print each event line to stdout"},
    {.section = "events", .key = "retention", .type = CFG_DURATION, FIELD_I64(events_retention),
     .def = "7d", .min = MS_SECOND, .max = 3650 * MS_DAY,
     .doc = "how long delivered events stay in the outbox for replay; undelivered ones are kept until delivered"},
    {.section = "alarms", .key = "enabled", .type = CFG_BOOL, FIELD_INT(alarms_enabled),
     .def = "true",
     .doc = "raise c8y_UnavailabilityAlarm when a monitored device becomes unavailable (false: no new alarms)"},
    {.section = "alarms", .key = "retention", .type = CFG_DURATION, FIELD_I64(alarms_retention),
     .def = "7d", .min = MS_SECOND, .max = 3650 * MS_DAY,
     .doc = "how long CLEARED alarms stay listed before they are deleted"},
    {.section = "log", .key = "level", .type = CFG_ENUM, FIELD_INT(log_level),
     .def = "info", .words = log_words,
     .doc = "least severe log message written"},
    {.section = "mqtt", .key = "host", .type = CFG_STRING, FIELD_STR(mqtt_host),
     .def = "",
     .doc = "MQTT broker to read device messages from and publish events to; empty = MQTT off"},
    {.section = "mqtt", .key = "port", .type = CFG_INT, FIELD_I64(mqtt_port),
     .def = "1883", .min = 1, .max = 65535,
     .doc = "broker port (8883 is usual with TLS)"},
    {.section = "mqtt", .key = "protocol", .type = CFG_ENUM, FIELD_INT(mqtt_protocol),
     .def = "3.1.1", .words = mqtt_protocol_words,
     .doc = "MQTT protocol version"},
    {.section = "mqtt", .key = "client_id", .type = CFG_STRING, FIELD_STR(mqtt_client_id),
     .def = "lastseen",
     .doc = "client id; the publisher connects as client_id + \"-pub\"; two lastseen on one broker need different ids"},
    {.section = "mqtt", .key = "username", .type = CFG_STRING, FIELD_STR(mqtt_username),
     .def = "",
     .doc = "user name; empty = none"},
    {.section = "mqtt", .key = "password", .type = CFG_STRING, FIELD_STR(mqtt_password),
     .def = "",
     .doc = "password (better given as LASTSEEN_MQTT_PASSWORD than in a file)"},
    {.section = "mqtt", .key = "cafile", .type = CFG_STRING, FIELD_STR(mqtt_cafile),
     .def = "",
     .doc = "PEM file of the CA(s) that signed the broker's certificate; set = TLS on"},
    {.section = "mqtt", .key = "certfile", .type = CFG_STRING, FIELD_STR(mqtt_certfile),
     .def = "",
     .doc = "client certificate (PEM) for brokers that require one"},
    {.section = "mqtt", .key = "keyfile", .type = CFG_STRING, FIELD_STR(mqtt_keyfile),
     .def = "",
     .doc = "private key (PEM) of certfile"},
    {.section = "mqtt", .key = "tls_insecure", .type = CFG_BOOL, FIELD_INT(mqtt_tls_insecure),
     .def = "false",
     .doc = "skip the check that the broker's certificate names mqtt.host (testing only)"},
    {.section = "mqtt", .key = "keepalive", .type = CFG_DURATION, FIELD_I64(mqtt_keepalive),
     .def = "30s", .min = 5 * MS_SECOND, .max = 65535 * MS_SECOND,
     .doc = "MQTT keepalive: a dead connection is noticed within 1.5 times this"},
    {.section = "mqtt", .key = "qos", .type = CFG_INT, FIELD_I64(mqtt_qos),
     .def = "1", .min = 0, .max = 2,
     .doc = "QoS of the subscriptions (1: the broker queues messages while lastseen is away)"},
    {.section = "mqtt", .key = "clean_session", .type = CFG_BOOL, FIELD_INT(mqtt_clean_session),
     .def = "false",
     .doc = "false = persistent session: the broker keeps the subscriptions and queues messages across restarts"},
    {.section = "mqtt", .key = "session_expiry", .type = CFG_DURATION, FIELD_I64(mqtt_session_expiry),
     .def = "1d", .min = 0, .max = INT64_C(4294967295) * MS_SECOND,
     .doc = "MQTT 5: how long the broker keeps the persistent session after a disconnect"},
    {.section = "mqtt", .key = "topics", .type = CFG_STRING, FIELD_STR(mqtt_topics),
     .def = "", .check = ls_topic_list_check,
     .allowed = "comma-separated topic filters, each with one {device} level",
     .doc = "every message on these topics is an activity of the device named by the {device} level"},
    {.section = "mqtt", .key = "payload_ts", .type = CFG_STRING, FIELD_STR(mqtt_payload_ts),
     .def = "",
     .doc = "top-level JSON field holding the activity time in ms since the epoch; empty = receive time"},
    {.section = "mqtt", .key = "status_topic", .type = CFG_STRING, FIELD_STR(mqtt_status_topic),
     .def = "", .check = ls_topic_pattern_check,
     .allowed = "empty, or a topic filter with one {device} level",
     .doc = "presence topic: online_payload = connect, offline_payload (the Last Will) = disconnect"},
    {.section = "mqtt", .key = "online_payload", .type = CFG_STRING, FIELD_STR(mqtt_online_payload),
     .def = "online", .check = nonempty_check, .allowed = "a non-empty word",
     .doc = "status_topic payload meaning the device connected"},
    {.section = "mqtt", .key = "offline_payload", .type = CFG_STRING, FIELD_STR(mqtt_offline_payload),
     .def = "offline", .check = nonempty_check, .allowed = "a non-empty word",
     .doc = "status_topic payload meaning the device is gone (its Last Will)"},
    {.section = "mqtt", .key = "sparkplug", .type = CFG_BOOL, FIELD_INT(mqtt_sparkplug),
     .def = "false",
     .doc = "read Sparkplug B (spBv1.0/#): NBIRTH/NDEATH, DBIRTH/DDEATH are sessions, NDATA/DDATA activity"},
    {.section = "mqtt", .key = "event_topic", .type = CFG_STRING, FIELD_STR(mqtt_event_topic),
     .def = "lastseen/events/{device}", .check = ls_topic_template_check0,
     .allowed = "empty (off), or a topic, {device} optional",
     .doc = "every event is published here as JSON (QoS 1), from the durable outbox"},
    {.section = "mqtt", .key = "state_topic", .type = CFG_STRING, FIELD_STR(mqtt_state_topic),
     .def = "lastseen/state/{device}", .check = ls_topic_template_check1,
     .allowed = "empty (off), or a topic with {device}",
     .doc = "each device's state JSON, retained, updated with each of its events"},
    {.section = "mqtt", .key = "gate", .type = CFG_BOOL, FIELD_INT(mqtt_gate),
     .def = "true",
     .doc = "while the broker cannot be heard, its devices do not go inactive"},
    {.section = "mqtt", .key = "reconnect_min", .type = CFG_DURATION, FIELD_I64(mqtt_reconnect_min),
     .def = "500ms", .min = 10, .max = MS_HOUR,
     .doc = "first reconnect delay; doubles per failed attempt, with jitter"},
    {.section = "mqtt", .key = "reconnect_max", .type = CFG_DURATION, FIELD_I64(mqtt_reconnect_max),
     .def = "30s", .min = 10, .max = MS_HOUR,
     .doc = "longest reconnect delay"},
    {.section = "mqtt", .key = "sync_topic", .type = CFG_STRING, FIELD_STR(mqtt_sync_topic),
     .def = "lastseen/sync", .check = ls_topic_template_check0,
     .allowed = "empty (off), or a topic lastseen may publish and subscribe to",
     .doc = "after connecting, a marker sent to this topic + /client_id shows when the backlog is read"},
    {.section = "mqtt", .key = "sync_timeout", .type = CFG_DURATION, FIELD_I64(mqtt_sync_timeout),
     .def = "30s", .min = 1, .max = MS_HOUR,
     .doc = "longest wait for that marker before the source counts as up anyway"},
    {.section = "cluster", .key = "nats", .type = CFG_STRING, FIELD_STR(cluster_nats),
     .def = "", .check = nats_urls_check,
     .allowed = "empty (single node), or comma-separated nats://host:port URLs",
     .doc = "NATS servers of the cluster (docs/cluster.md); empty = a single node, no cluster"},
    {.section = "cluster", .key = "node", .type = CFG_STRING, FIELD_STR(cluster_node),
     .def = "", .check = node_name_check,
     .allowed = "empty (the host name), or 1..64 letters, digits, _ or -",
     .doc = "this node's name in the cluster, unique among its nodes; empty = the host name up to its first dot"},
    {.section = "cluster", .key = "partitions", .type = CFG_INT, FIELD_I64(cluster_partitions),
     .def = "64", .min = 1, .max = 1024,
     .doc = "partitions of the devices (fixed when the cluster is created; the NATS servers' dev.* mapping must use the same number)"},
    {.section = "cluster", .key = "lease_ttl", .type = CFG_DURATION, FIELD_I64(cluster_lease_ttl),
     .def = "20s", .min = 3 * MS_SECOND, .max = MS_HOUR,
     .doc = "life of a partition's lease: renewed every quarter of it, given up after 0.8 of it without a renewal the servers confirmed"},
    {.section = "cluster", .key = "input_retention", .type = CFG_DURATION, FIELD_I64(cluster_input_retention),
     .def = "24h", .min = MS_MINUTE, .max = 3650 * MS_DAY,
     .doc = "how long the input stream LS_IN keeps device messages (set when the stream is created)"},
};

/* The keys of one [webhook.NAME] section; .section is only for messages. */
static const cfg_key webhook_table[] = {
    {.section = "webhook.NAME", .key = "url", .type = CFG_STRING, WFIELD_STR(url),
     .def = "", .check = url_check, .allowed = "an http:// or https:// URL",
     .doc = "where events are POSTed (required)"},
    {.section = "webhook.NAME", .key = "events", .type = CFG_EVENTS, WFIELD_I64(events),
     .def = "all",
     .doc = "event types sent; the others are skipped (acknowledged without sending)"},
    {.section = "webhook.NAME", .key = "secret", .type = CFG_STRING, WFIELD_STR(secret),
     .def = "", .allowed = "text (empty: no signature)",
     .doc = "key of the HMAC-SHA256 body signature in X-Lastseen-Signature"},
    {.section = "webhook.NAME", .key = "batch", .type = CFG_INT, WFIELD_I64(batch),
     .def = "1", .min = 1, .max = 1000,
     .doc = "most events per POST: 1 = the body is one event, more = a JSON array"},
    {.section = "webhook.NAME", .key = "timeout", .type = CFG_DURATION, WFIELD_I64(timeout),
     .def = "10s", .min = 10, .max = 10 * MS_MINUTE,
     .doc = "time allowed for one POST, connection included"},
};
/* clang-format on */

#define CFG_NKEYS (sizeof(cfg_table) / sizeof(cfg_table[0]))
#define WEBHOOK_NKEYS (sizeof(webhook_table) / sizeof(webhook_table[0]))
#define WEBHOOK_PREFIX "webhook."
#define WEBHOOK_ENV_PREFIX "LASTSEEN_WEBHOOK_"
#define ENV_PREFIX "LASTSEEN_"
#define NAME_MAX_LEN 128 /* "section.key" and LASTSEEN_SECTION_KEY buffers */

/* ---- small helpers ---------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void err_set(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
    va_list ap;

    if (!err || errlen == 0) return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A slice of a string with leading and trailing whitespace removed. */
typedef struct span {
    const char *p;
    size_t n;
} span;

static span span_trim(const char *s)
{
    span sp;
    size_t n;

    while (isspace((unsigned char)*s))
        s++;
    n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    sp.p = s;
    sp.n = n;
    return sp;
}

static bool span_ieq(span sp, const char *word)
{
    size_t n = strlen(word);
    return sp.n == n && strncasecmp(sp.p, word, n) == 0;
}

static bool span_eq(span sp, const char *word)
{
    size_t n = strlen(word);
    return sp.n == n && memcmp(sp.p, word, n) == 0;
}

/*
 * Copies `src` into dst for quoting in an error message: at most 64
 * characters, control characters shown as '?', "..." when cut.
 */
static void value_quote(char *dst, size_t dstlen, const char *src)
{
    size_t i = 0, max = 64;

    if (dstlen < max + 4) max = dstlen > 4 ? dstlen - 4 : 0;
    for (; src[i] && i < max; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    if (src[i] && dstlen >= 4) {
        memcpy(dst + i, "...", 3);
        i += 3;
    }
    if (dstlen > 0) dst[i < dstlen ? i : dstlen - 1] = '\0';
}

static void row_name(const cfg_key *row, char *buf, size_t len)
{
    snprintf(buf, len, "%s.%s", row->section, row->key);
}

static void row_env_name(const cfg_key *row, char *buf, size_t len)
{
    char *p;

    snprintf(buf, len, ENV_PREFIX "%s_%s", row->section, row->key);
    for (p = buf; *p; p++)
        *p = (char)toupper((unsigned char)*p);
}

static const cfg_key *key_find(const char *name)
{
    char buf[NAME_MAX_LEN];
    size_t i;

    for (i = 0; i < CFG_NKEYS; i++) {
        row_name(&cfg_table[i], buf, sizeof buf);
        if (strcmp(buf, name) == 0) return &cfg_table[i];
    }
    return NULL;
}

static const cfg_key *env_find(const char *name, size_t n)
{
    char buf[NAME_MAX_LEN];
    size_t i;

    for (i = 0; i < CFG_NKEYS; i++) {
        row_env_name(&cfg_table[i], buf, sizeof buf);
        if (strlen(buf) == n && memcmp(buf, name, n) == 0) return &cfg_table[i];
    }
    return NULL;
}

/* Case-insensitive Levenshtein distance; strings longer than 63 count as far. */
static size_t edit_distance(const char *a, size_t an, const char *b, size_t bn)
{
    size_t prev[64], cur[64], i, j;

    if (an >= 64 || bn >= 64) return SIZE_MAX;
    for (j = 0; j <= bn; j++)
        prev[j] = j;
    for (i = 1; i <= an; i++) {
        cur[0] = i;
        for (j = 1; j <= bn; j++) {
            size_t sub = prev[j - 1] +
                         (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (bn + 1) * sizeof prev[0]);
    }
    return prev[bn];
}

/*
 * The key a mistyped name probably meant, or NULL: the closest name within
 * two edits, else a key whose last component matches (wrong section).
 * `env` compares against the LASTSEEN_ names instead of section.key.
 */
static const cfg_key *key_suggest(const char *name, size_t n, bool env)
{
    char buf[NAME_MAX_LEN];
    const cfg_key *best = NULL;
    size_t best_d = 3, i;
    char sep = env ? '_' : '.';
    const char *tail = name;

    for (i = 0; i < CFG_NKEYS; i++) {
        size_t d;
        if (env)
            row_env_name(&cfg_table[i], buf, sizeof buf);
        else
            row_name(&cfg_table[i], buf, sizeof buf);
        d = edit_distance(name, n, buf, strlen(buf));
        if (d < best_d) {
            best_d = d;
            best = &cfg_table[i];
        }
    }
    if (best || env) return best;
    for (i = 0; i < n; i++)
        if (name[i] == sep) tail = name + i + 1;
    for (i = 0; i < CFG_NKEYS; i++)
        if (strlen(cfg_table[i].key) == (size_t)(name + n - tail) &&
            strncasecmp(cfg_table[i].key, tail, (size_t)(name + n - tail)) == 0)
            return &cfg_table[i];
    return NULL;
}

static void unknown_key_error(char *err, size_t errlen, const char *origin, const char *name)
{
    char q[80];
    const cfg_key *s = key_suggest(name, strlen(name), false);

    value_quote(q, sizeof q, name);
    if (s)
        err_set(err, errlen, "%s: unknown key \"%s\" (did you mean %s.%s?)", origin, q, s->section,
                s->key);
    else
        err_set(err, errlen, "%s: unknown key \"%s\"", origin, q);
}

/* ---- value parsers ---------------------------------------------------- */

/*
 * Reads decimal digits at *p (before end) into *v.  Returns the number of
 * digits read (0 if none) or -ERANGE if the number does not fit in int64_t.
 */
static int digits_parse(const char **p, const char *end, int64_t *v)
{
    int64_t acc = 0;
    int nd = 0;

    while (*p < end && isdigit((unsigned char)**p)) {
        int d = **p - '0';
        if (acc > (INT64_MAX - d) / 10) return -ERANGE;
        acc = acc * 10 + d;
        (*p)++;
        nd++;
    }
    *v = acc;
    return nd;
}

/* Number, optional blanks, unit word.  Splits s into *v and the unit span. */
static int number_unit_parse(span s, int64_t *v, span *unit, const char **why)
{
    const char *p = s.p, *end = s.p + s.n;
    int nd;

    if (p < end && *p == '-') {
        *why = "must not be negative";
        return -EINVAL;
    }
    nd = digits_parse(&p, end, v);
    if (nd == -ERANGE) {
        *why = "number too large";
        return -ERANGE;
    }
    if (nd == 0) return -EINVAL;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    unit->p = p;
    unit->n = (size_t)(end - p);
    return 0;
}

static int scale(int64_t v, int64_t mult, int64_t *out, const char **why)
{
    if (v > INT64_MAX / mult) {
        *why = "number too large";
        return -ERANGE;
    }
    *out = v * mult;
    return 0;
}

static int duration_parse(const char *s, int64_t *out, const char **why)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", MS_SECOND}, {"m", MS_MINUTE}, {"h", MS_HOUR}, {"d", MS_DAY}};
    span unit;
    int64_t v;
    size_t i;
    int rc;

    if ((rc = number_unit_parse(span_trim(s), &v, &unit, why)) < 0) return rc;
    if (unit.n == 0) {
        *why = "a unit is required";
        return -EINVAL;
    }
    for (i = 0; i < sizeof units / sizeof units[0]; i++)
        if (span_eq(unit, units[i].unit)) return scale(v, units[i].ms, out, why);
    return -EINVAL;
}

static int size_parse(const char *s, int64_t *out, const char **why)
{
    static const struct {
        const char *unit;
        int64_t bytes;
    } units[] = {{"", 1},      {"B", 1},    {"K", KIB},   {"KB", KIB}, {"KiB", KIB},
                 {"M", MIB},   {"MB", MIB}, {"MiB", MIB}, {"G", GIB},  {"GB", GIB},
                 {"GiB", GIB}, {"T", TIB},  {"TB", TIB},  {"TiB", TIB}};
    span unit;
    int64_t v;
    size_t i;
    int rc;

    if ((rc = number_unit_parse(span_trim(s), &v, &unit, why)) < 0) return rc;
    for (i = 0; i < sizeof units / sizeof units[0]; i++)
        if (span_ieq(unit, units[i].unit)) return scale(v, units[i].bytes, out, why);
    return -EINVAL;
}

static int int_parse(const char *s, int64_t *out, const char **why)
{
    span sp = span_trim(s);
    const char *p = sp.p, *end = sp.p + sp.n;
    bool neg = false;
    int64_t v;
    int nd;

    if (p < end && (*p == '-' || *p == '+')) neg = *p++ == '-';
    nd = digits_parse(&p, end, &v);
    if (nd == -ERANGE) {
        *why = "number too large";
        return -ERANGE;
    }
    if (nd == 0 || p != end) return -EINVAL;
    *out = neg ? -v : v;
    return 0;
}

static int bool_parse(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    span sp = span_trim(s);
    size_t i;

    for (i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (span_ieq(sp, yes[i])) {
            *out = 1;
            return 0;
        }
        if (span_ieq(sp, no[i])) {
            *out = 0;
            return 0;
        }
    }
    return -EINVAL;
}

int ls_parse_duration_ms(const char *s, int64_t *out)
{
    const char *why = NULL;
    return duration_parse(s, out, &why);
}

int ls_parse_size(const char *s, int64_t *out)
{
    const char *why = NULL;
    return size_parse(s, out, &why);
}

int ls_parse_bool(const char *s, int *out)
{
    return bool_parse(s, out);
}

/* ---- string checks ---------------------------------------------------- */

static int port_check(const char *p, const char *end, const char **why)
{
    const char *q = p;
    int64_t v;
    int nd = digits_parse(&q, end, &v);

    if (nd <= 0 || q != end || nd > 5 || v > 65535) {
        *why = "port must be a number 0..65535";
        return -EINVAL;
    }
    return 0;
}

/* "host:port" or "[ipv6]:port". */
static int optional_listen_check(const char *s, size_t n, const char **why)
{
    return n == 0 ? 0 : listen_check(s, n, why);
}

static int listen_check(const char *s, size_t n, const char **why)
{
    const char *end = s + n, *colon = NULL, *p;

    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close) {
            *why = "missing ] after the IPv6 address";
            return -EINVAL;
        }
        if (close == s + 1) {
            *why = "empty host";
            return -EINVAL;
        }
        for (p = s + 1; p < close; p++)
            if (!isalnum((unsigned char)*p) && *p != ':' && *p != '.' && *p != '%') {
                *why = "invalid character in the IPv6 address";
                return -EINVAL;
            }
        if (!memchr(s + 1, ':', (size_t)(close - s - 1))) {
            *why = "brackets are only for IPv6 addresses";
            return -EINVAL;
        }
        if (close + 1 == end || close[1] != ':') {
            *why = "missing :port";
            return -EINVAL;
        }
        return port_check(close + 2, end, why);
    }
    for (p = s; p < end; p++)
        if (*p == ':') colon = p;
    if (!colon) {
        *why = "missing :port";
        return -EINVAL;
    }
    if (colon == s) {
        *why = "empty host";
        return -EINVAL;
    }
    for (p = s; p < colon; p++) {
        if (*p == ':') {
            *why = "IPv6 addresses need brackets, as in [::1]:8080";
            return -EINVAL;
        }
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_') {
            *why = "invalid character in the host";
            return -EINVAL;
        }
    }
    return port_check(colon + 1, end, why);
}

static int nonempty_check(const char *s, size_t n, const char **why)
{
    (void)s;
    if (n == 0) {
        *why = "must not be empty";
        return -EINVAL;
    }
    return 0;
}

/*
 * cluster.nats: empty, or nats://host:port items separated by commas
 * (blanks around them allowed); host as in http.listen, IPv6 in brackets.
 */
static int nats_urls_check(const char *s, size_t n, const char **why)
{
    const char *end = s + n, *p = s;

    if (n == 0) return 0;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *a = p, *b = comma ? comma : end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b == a) {
            *why = "an empty item in the list";
            return -EINVAL;
        }
        if ((size_t)(b - a) < 7 || strncasecmp(a, "nats://", 7) != 0) {
            *why = "each server must be written nats://host:port";
            return -EINVAL;
        }
        if (listen_check(a + 7, (size_t)(b - a - 7), why) < 0) return -EINVAL;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

/* cluster.node: empty, or 1..64 of [A-Za-z0-9_-] (one NATS token, a KV key). */
static int node_name_check(const char *s, size_t n, const char **why)
{
    if (n > 64) {
        *why = "at most 64 characters";
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-') {
            *why = "only letters, digits, _ and - (one NATS subject token)";
            return -EINVAL;
        }
    return 0;
}

/* "http://host..." or "https://host...": a scheme, a non-empty host, no blanks. */
static int url_check(const char *s, size_t n, const char **why)
{
    size_t skip;

    if (n >= 7 && strncasecmp(s, "http://", 7) == 0)
        skip = 7;
    else if (n >= 8 && strncasecmp(s, "https://", 8) == 0)
        skip = 8;
    else {
        *why = "must start with http:// or https://";
        return -EINVAL;
    }
    if (skip == n || s[skip] == '/' || s[skip] == '?' || s[skip] == '#') {
        *why = "missing host";
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++)
        if (s[i] == ' ' || s[i] == '\t') {
            *why = "contains a blank (percent-encode it as %20)";
            return -EINVAL;
        }
    return 0;
}

/* Event type names in ls_event_type order (engine.h). */
/* Every event type, by its name (engine.h): device, alarm, source and AUDIT events. */
#define EVENTS_ALL ((INT64_C(1) << LS_EV__COUNT) - 1)

/* The names joined by sep into buf. */
static void event_names(char *buf, size_t len, const char *sep)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int t = 0; t < LS_EV__COUNT; t++) {
        int w = snprintf(buf + at, len - at, "%s%s", t ? sep : "", ls_event_name((ls_event_type)t));
        if (w < 0 || (size_t)w >= len - at) return;
        at += (size_t)w;
    }
}

int ls_parse_event_types(const char *s, int64_t *mask)
{
    int64_t m = 0;
    const char *p = s;

    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p) break;
        const char *w = p;
        while (*p && *p != ' ' && *p != '\t' && *p != ',')
            p++;
        span sp = {w, (size_t)(p - w)};
        int64_t bit = 0;
        if (span_ieq(sp, "all")) bit = EVENTS_ALL;
        for (int t = 0; t < LS_EV__COUNT && !bit; t++)
            if (span_ieq(sp, ls_event_name((ls_event_type)t))) bit = INT64_C(1) << t;
        if (!bit) return -EINVAL;
        m |= bit;
    }
    if (!m) return -EINVAL;
    *mask = m;
    return 0;
}

/* ---- applying one value ----------------------------------------------- */

typedef struct unit_def {
    const char *unit;
    int64_t scale;
} unit_def;

/* Writes v in the largest unit that divides it exactly, else in `base`. */
static void fmt_units(char *buf, size_t len, int64_t v, const unit_def *units, size_t n,
                      const char *base)
{
    for (size_t i = 0; i < n; i++)
        if (v != 0 && v % units[i].scale == 0) {
            snprintf(buf, len, "%" PRId64 "%s", v / units[i].scale, units[i].unit);
            return;
        }
    snprintf(buf, len, "%" PRId64 "%s", v, base);
}

static void fmt_duration(char *buf, size_t len, int64_t ms)
{
    static const unit_def units[] = {
        {"d", MS_DAY}, {"h", MS_HOUR}, {"m", MS_MINUTE}, {"s", MS_SECOND}};
    fmt_units(buf, len, ms, units, sizeof units / sizeof units[0], "ms");
}

static void fmt_size(char *buf, size_t len, int64_t b)
{
    static const unit_def units[] = {{"TiB", TIB}, {"GiB", GIB}, {"MiB", MIB}, {"KiB", KIB}};
    fmt_units(buf, len, b, units, sizeof units / sizeof units[0], "B");
}

static void fmt_value(const cfg_key *row, char *buf, size_t len, int64_t v)
{
    if (row->type == CFG_DURATION)
        fmt_duration(buf, len, v);
    else if (row->type == CFG_SIZE)
        fmt_size(buf, len, v);
    else
        snprintf(buf, len, "%" PRId64, v);
}

static void words_join(const cfg_key *row, char *buf, size_t len, const char *sep)
{
    size_t i, used = 0;

    buf[0] = '\0';
    for (i = 0; row->words[i] && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i ? sep : "", row->words[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
}

/* What a row accepts, for the help text and the Markdown table. */
static void row_allowed(const cfg_key *row, char *buf, size_t len)
{
    char lo[32], hi[32];

    switch (row->type) {
    case CFG_STRING:
        snprintf(buf, len, "%s", row->allowed ? row->allowed : "any text");
        break;
    case CFG_DURATION:
    case CFG_SIZE:
    case CFG_INT:
        fmt_value(row, lo, sizeof lo, row->min);
        fmt_value(row, hi, sizeof hi, row->max);
        snprintf(buf, len, "%s .. %s", lo, hi);
        break;
    case CFG_BOOL:
        snprintf(buf, len, "true/false, yes/no, on/off, 1/0");
        break;
    case CFG_ENUM:
        words_join(row, buf, len, ", ");
        break;
    case CFG_EVENTS: {
        char names[200];
        event_names(names, sizeof names, ", ");
        snprintf(buf, len, "all, or event types separated by commas: %s", names);
        break;
    }
    }
}

/* What a row accepts, phrased for an error message ("expected ..."). */
static void row_expect(const cfg_key *row, char *buf, size_t len)
{
    char lo[32], hi[32], words[200];

    fmt_value(row, lo, sizeof lo, row->min);
    fmt_value(row, hi, sizeof hi, row->max);
    switch (row->type) {
    case CFG_STRING:
        snprintf(buf, len, "expected %s (at most %zu bytes)",
                 row->allowed ? row->allowed : "text without control characters", row->size - 1);
        break;
    case CFG_DURATION:
        snprintf(buf, len,
                 "expected a duration with a unit (250ms, 30s, 10m, 2h, 1d) between %s and %s", lo,
                 hi);
        break;
    case CFG_SIZE:
        snprintf(buf, len,
                 "expected a size in bytes, optionally with a unit (B, KiB, MiB, GiB), between %s "
                 "and %s",
                 lo, hi);
        break;
    case CFG_INT:
        snprintf(buf, len, "expected an integer between %s and %s", lo, hi);
        break;
    case CFG_BOOL:
        snprintf(buf, len, "expected true/false, yes/no, on/off or 1/0");
        break;
    case CFG_ENUM:
        words_join(row, words, sizeof words, ", ");
        snprintf(buf, len, "expected one of %s", words);
        break;
    case CFG_EVENTS:
        event_names(words, sizeof words, ", ");
        snprintf(buf, len, "expected all, or one or more of %s separated by commas", words);
        break;
    }
}

/*
 * Parses `value` as `row` says and stores it into the struct at `base`
 * (ls_config, or ls_webhook_config for webhook_table rows).  On failure it
 * is unchanged, *why may point to a short reason, and the return is negative.
 */
static int row_apply(void *base, const cfg_key *row, const char *value, const char **why)
{
    char *field = (char *)base + row->offset;
    int64_t v = 0;
    int iv = 0, rc;
    size_t i;

    switch (row->type) {
    case CFG_STRING: {
        span sp = span_trim(value);
        for (i = 0; i < sp.n; i++)
            if ((unsigned char)sp.p[i] < 0x20 || sp.p[i] == 0x7f) {
                *why = "contains a control character";
                return -EINVAL;
            }
        if (sp.n >= row->size) {
            *why = "too long";
            return -EINVAL;
        }
        if (row->check && (rc = row->check(sp.p, sp.n, why)) < 0) return rc;
        memcpy(field, sp.p, sp.n);
        field[sp.n] = '\0';
        return 0;
    }
    case CFG_DURATION:
    case CFG_SIZE:
    case CFG_INT:
        if (row->type == CFG_DURATION)
            rc = duration_parse(value, &v, why);
        else if (row->type == CFG_SIZE)
            rc = size_parse(value, &v, why);
        else
            rc = int_parse(value, &v, why);
        if (rc < 0) return rc;
        if (v < row->min || v > row->max) {
            *why = "out of range";
            return -ERANGE;
        }
        memcpy(field, &v, sizeof v);
        return 0;
    case CFG_BOOL:
        if ((rc = bool_parse(value, &iv)) < 0) return rc;
        memcpy(field, &iv, sizeof iv);
        return 0;
    case CFG_ENUM: {
        span sp = span_trim(value);
        for (i = 0; row->words[i]; i++)
            if (span_ieq(sp, row->words[i])) {
                iv = (int)i;
                memcpy(field, &iv, sizeof iv);
                return 0;
            }
        return -EINVAL;
    }
    case CFG_EVENTS:
        if ((rc = ls_parse_event_types(value, &v)) < 0) return rc;
        memcpy(field, &v, sizeof v);
        return 0;
    }
    return -EINVAL;
}

void ls_config_defaults(ls_config *c)
{
    const char *why = NULL;
    size_t i;

    memset(c, 0, sizeof *c);
    for (i = 0; i < CFG_NKEYS; i++)
        if (row_apply(c, &cfg_table[i], cfg_table[i].def, &why) < 0)
            abort(); /* a default outside its own bounds: a bug in cfg_table */
}

/* ---- webhook sections ------------------------------------------------- */

/* A webhook name: 1..LS_WEBHOOK_NAME_MAX of [A-Za-z0-9_-].  0 or -EINVAL. */
static int webhook_name_check(const char *s, size_t n)
{
    if (n == 0 || n > LS_WEBHOOK_NAME_MAX) return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-') return -EINVAL;
    return 0;
}

static const cfg_key *webhook_key_find(const char *key, size_t n)
{
    for (size_t i = 0; i < WEBHOOK_NKEYS; i++)
        if (strlen(webhook_table[i].key) == n && strncasecmp(webhook_table[i].key, key, n) == 0)
            return &webhook_table[i];
    return NULL;
}

/*
 * NAME's slot (name[0..n), any case); if NAME is new, the next free slot
 * filled with the webhook defaults and *is_new set (the caller counts it in
 * nwebhooks once its value is good).  NULL when all LS_WEBHOOKS_MAX are taken.
 */
static ls_webhook_config *webhook_slot(ls_config *c, const char *name, size_t n, bool *is_new)
{
    const char *why = NULL;
    ls_webhook_config *w;
    int i;

    for (i = 0; i < c->nwebhooks; i++)
        if (strlen(c->webhooks[i].name) == n && strncasecmp(c->webhooks[i].name, name, n) == 0)
            return &c->webhooks[i];
    if (c->nwebhooks >= LS_WEBHOOKS_MAX) return NULL;
    *is_new = true;
    w = &c->webhooks[c->nwebhooks];
    memset(w, 0, sizeof *w);
    for (size_t k = 0; k < n; k++)
        w->name[k] = (char)tolower((unsigned char)name[k]);
    for (size_t k = 0; k < WEBHOOK_NKEYS; k++)
        if (webhook_table[k].def[0] && /* "" = unset (url) or empty (secret) */
            row_apply(w, &webhook_table[k], webhook_table[k].def, &why) < 0)
            abort(); /* a default outside its own bounds: a bug in webhook_table */
    return w;
}

/* Applies "webhook.NAME.key" = value; like ls_config_set_key. */
static int webhook_set_key(ls_config *c, const char *name, const char *value, const char *origin,
                           char *err, size_t errlen)
{
    const char *rest = name + strlen(WEBHOOK_PREFIX), *dot = strrchr(rest, '.');
    const char *why = NULL;
    char q[80], expect[256];
    const cfg_key *row;
    ls_webhook_config *w;
    bool is_new = false;
    size_t n;
    int rc;

    value_quote(q, sizeof q, name);
    if (!dot || webhook_name_check(rest, (size_t)(dot - rest)) < 0) {
        err_set(err, errlen,
                "%s: \"%s\": expected webhook.NAME.key, NAME being 1..%d letters, digits, _ or -",
                origin, q, LS_WEBHOOK_NAME_MAX);
        return -ENOENT;
    }
    n = (size_t)(dot - rest);
    if (!(row = webhook_key_find(dot + 1, strlen(dot + 1)))) {
        err_set(err, errlen,
                "%s: unknown key \"%s\" (webhook keys: url, events, secret, batch, "
                "timeout)",
                origin, q);
        return -ENOENT;
    }
    if (!(w = webhook_slot(c, rest, n, &is_new))) {
        err_set(err, errlen, "%s: \"%s\": too many webhooks (at most %d)", origin, q,
                LS_WEBHOOKS_MAX);
        return -ENOSPC;
    }
    if ((rc = row_apply(w, row, value, &why)) < 0) {
        value_quote(q, sizeof q, value);
        row_expect(row, expect, sizeof expect);
        err_set(err, errlen, "%s: webhook.%s.%s = \"%s\": %s%s%s", origin, w->name, row->key, q,
                why ? why : "", why ? "; " : "", expect);
        if (is_new) memset(w, 0, sizeof *w); /* as ls_config_defaults() left it */
        return -EINVAL;
    }
    if (is_new) c->nwebhooks++;
    return 0;
}

int ls_config_validate(const ls_config *c, char *err, size_t errlen)
{
    if (!c->http_tls_cert[0] != !c->http_tls_key[0]) {
        err_set(err, errlen,
                "http.tls_cert and http.tls_key go together: set both (HTTPS) or "
                "neither (plain HTTP)");
        return -EINVAL;
    }
    if (c->udp_auth == LS_UDP_AUTH_HMAC && !c->udp_keys_file[0]) {
        err_set(err, errlen, "udp.auth = hmac needs udp.keys_file");
        return -EINVAL;
    }
    for (int i = 0; i < c->nwebhooks; i++)
        if (!c->webhooks[i].url[0]) {
            err_set(err, errlen, "webhook.%s: url is required", c->webhooks[i].name);
            return -EINVAL;
        }
    return 0;
}

int ls_config_set_key(ls_config *c, const char *name, const char *value, const char *origin,
                      char *err, size_t errlen)
{
    const cfg_key *row;
    const char *why = NULL;
    char q[80], expect[256];
    int rc;

    if (strncasecmp(name, WEBHOOK_PREFIX, strlen(WEBHOOK_PREFIX)) == 0)
        return webhook_set_key(c, name, value, origin, err, errlen);
    if (!(row = key_find(name))) {
        unknown_key_error(err, errlen, origin, name);
        return -ENOENT;
    }
    if ((rc = row_apply(c, row, value, &why)) < 0) {
        value_quote(q, sizeof q, value);
        row_expect(row, expect, sizeof expect);
        err_set(err, errlen, "%s: %s.%s = \"%s\": %s%s%s", origin, row->section, row->key, q,
                why ? why : "", why ? "; " : "", expect);
        return -EINVAL;
    }
    return 0;
}

int ls_config_set(ls_config *c, const char *assignment, char *err, size_t errlen)
{
    const char *eq = strchr(assignment, '=');
    char origin[256], name[NAME_MAX_LEN], q[80];
    size_t n;
    span sp;

    if (!eq) {
        value_quote(q, sizeof q, assignment);
        err_set(err, errlen, "--set %s: expected section.key=value", q);
        return -EINVAL;
    }
    value_quote(q, sizeof q, assignment);
    snprintf(origin, sizeof origin, "--set %s", q);
    sp = span_trim(assignment); /* '=' is not a blank, so eq >= sp.p */
    n = (size_t)(eq - sp.p);
    while (n > 0 && isspace((unsigned char)sp.p[n - 1]))
        n--;
    if (n >= sizeof name) n = sizeof name - 1; /* cannot be a key; reported as unknown */
    memcpy(name, sp.p, n);
    name[n] = '\0';
    return ls_config_set_key(c, name, eq + 1, origin, err, errlen);
}

/* ---- environment ------------------------------------------------------ */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int ls_config_apply_env(ls_config *c, char *const *envp, char *err, size_t errlen)
{
    char origin[NAME_MAX_LEN + 16], name[NAME_MAX_LEN];
    ls_config tmp = *c;
    char *const *p;
    int rc;

    for (p = envp; p && *p; p++) {
        const char *var = *p, *eq = strchr(var, '=');
        const cfg_key *row;
        int n;

        if (!has_prefix(var, ENV_PREFIX) || !eq) continue;
        /* Test harnesses pass LASTSEEN_BIN, LASTSEEN_TEST_*; they are not keys. */
        if (has_prefix(var, ENV_PREFIX "BIN") || has_prefix(var, ENV_PREFIX "TEST")) continue;
        n = eq - var > 200 ? 200 : (int)(eq - var);
        if (has_prefix(var, WEBHOOK_ENV_PREFIX)) {
            /* LASTSEEN_WEBHOOK_NAME_KEY: the key follows the last '_'. */
            const char *nm = var + strlen(WEBHOOK_ENV_PREFIX), *us = NULL;
            for (const char *k = nm; k < eq; k++)
                if (*k == '_') us = k;
            if (!us || us == nm || (size_t)(eq - nm) >= sizeof name - strlen(WEBHOOK_PREFIX) - 1 ||
                !webhook_key_find(us + 1, (size_t)(eq - us - 1))) {
                err_set(err, errlen,
                        "environment: unknown variable %.*s (webhooks: LASTSEEN_WEBHOOK_NAME_URL, "
                        "_EVENTS, _SECRET, _BATCH, _TIMEOUT)",
                        n, var);
                return -ENOENT;
            }
            snprintf(origin, sizeof origin, "environment %.*s", n, var);
            snprintf(name, sizeof name, WEBHOOK_PREFIX "%.*s.%.*s", (int)(us - nm), nm,
                     (int)(eq - us - 1), us + 1);
            if ((rc = ls_config_set_key(&tmp, name, eq + 1, origin, err, errlen)) < 0) return rc;
            continue;
        }
        row = env_find(var, (size_t)(eq - var));
        if (!row) {
            char sugg[NAME_MAX_LEN];
            const cfg_key *s = key_suggest(var, (size_t)(eq - var), true);
            if (s) {
                row_env_name(s, sugg, sizeof sugg);
                err_set(err, errlen, "environment: unknown variable %.*s (did you mean %s?)", n,
                        var, sugg);
            } else {
                err_set(err, errlen, "environment: unknown variable %.*s", n, var);
            }
            return -ENOENT;
        }
        snprintf(origin, sizeof origin, "environment %.*s", n, var);
        row_name(row, name, sizeof name);
        if ((rc = ls_config_set_key(&tmp, name, eq + 1, origin, err, errlen)) < 0) return rc;
    }
    *c = tmp;
    return 0;
}

/* ---- INI file --------------------------------------------------------- */

typedef struct load_state {
    ls_config *c;
    FILE *f;
    const char *path;
    char *line; /* getline buffer */
    size_t cap;
    int lineno;    /* lines handed to inih so far: equals inih's own count */
    int fail_line; /* line of the first error found here, 0 = none */
    int rc;
    char *err;
    size_t errlen;
} load_state;

/*
 * fgets-like reader for ini_parse_stream.  It reads whole lines itself so
 * that a line too long for inih's fixed buffer is an error rather than a
 * silent cut, and it stops the parse (returns NULL) after the first error.
 * Every line handed over ends in '\n' and fits, so inih counts lines the same.
 */
static char *load_reader_cb(char *str, int num, void *stream)
{
    load_state *st = stream;
    ssize_t got;
    size_t len;

    if (st->fail_line) return NULL;
    errno = 0;
    got = getline(&st->line, &st->cap, st->f);
    if (got < 0) {
        if (!feof(st->f) || ferror(st->f)) {
            int e = errno ? errno : EIO;
            err_set(st->err, st->errlen, "%s: cannot read: %s", st->path, strerror(e));
            st->fail_line = st->lineno + 1;
            st->rc = -e;
        }
        return NULL;
    }
    st->lineno++;
    len = (size_t)got;
    if (len > 0 && st->line[len - 1] == '\n') len--;
    if (memchr(st->line, '\0', len)) {
        err_set(st->err, st->errlen, "%s:%d: line contains a NUL byte", st->path, st->lineno);
        st->fail_line = st->lineno;
        st->rc = -EINVAL;
        return NULL;
    }
    if (num < 2 || len > (size_t)num - 2) {
        err_set(st->err, st->errlen,
                "%s:%d: line longer than %d characters (use the environment or --set for "
                "longer values)",
                st->path, st->lineno, num > 2 ? num - 2 : 0);
        st->fail_line = st->lineno;
        st->rc = -EINVAL;
        return NULL;
    }
    memcpy(str, st->line, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    return str;
}

static int load_handler_cb(void *user, const char *section, const char *name, const char *value)
{
    load_state *st = user;
    char origin[4200], full[NAME_MAX_LEN], q[80];
    int rc;

    if (st->fail_line) return 0;
    if (!section[0]) {
        value_quote(q, sizeof q, name);
        err_set(st->err, st->errlen, "%s:%d: key \"%s\" is outside any [section]", st->path,
                st->lineno, q);
        st->fail_line = st->lineno;
        st->rc = -ENOENT;
        return 0;
    }
    snprintf(origin, sizeof origin, "%s:%d", st->path, st->lineno);
    snprintf(full, sizeof full, "%s.%s", section, name);
    if ((rc = ls_config_set_key(st->c, full, value, origin, st->err, st->errlen)) < 0) {
        st->fail_line = st->lineno;
        st->rc = rc;
        return 0;
    }
    return 1;
}

int ls_config_load_file(ls_config *c, const char *path, char *err, size_t errlen)
{
    ls_config tmp = *c;
    load_state st;
    int line;

    memset(&st, 0, sizeof st);
    st.c = &tmp;
    st.path = path;
    st.err = err;
    st.errlen = errlen;
    st.f = fopen(path, "r");
    if (!st.f) {
        int e = errno;
        err_set(err, errlen, "%s: cannot open: %s", path, strerror(e));
        return -e;
    }
    line = ini_parse_stream(load_reader_cb, &st, load_handler_cb, &st);
    free(st.line);
    fclose(st.f);
    /* inih returns the first line it found wrong, ours included; report the earliest. */
    if (line > 0 && (st.fail_line == 0 || line < st.fail_line)) {
        err_set(err, errlen, "%s:%d: syntax error: expected [section], key = value or a comment",
                path, line);
        return -EINVAL;
    }
    if (st.fail_line) return st.rc;
    if (line < 0) {
        err_set(err, errlen, "%s: out of memory while parsing", path);
        return -ENOMEM;
    }
    *c = tmp;
    return 0;
}

/* ---- help and docs ---------------------------------------------------- */

void ls_config_print_help(FILE *f)
{
    char name[NAME_MAX_LEN], allowed[256];
    int wname = 3, wdef = 7;
    size_t i;

    for (i = 0; i < CFG_NKEYS; i++) {
        row_name(&cfg_table[i], name, sizeof name);
        if ((int)strlen(name) > wname) wname = (int)strlen(name);
        if ((int)strlen(cfg_table[i].def) > wdef) wdef = (int)strlen(cfg_table[i].def);
    }
    fprintf(f, "Configuration keys: [section] key = value in the file, LASTSEEN_SECTION_KEY in\n"
               "the environment, --set section.key=value; --set > environment > file > default.\n"
               "\n");
    fprintf(f, "  %-*s  %-*s  %s\n", wname, "key", wdef, "default", "description");
    for (i = 0; i < CFG_NKEYS; i++) {
        const cfg_key *row = &cfg_table[i];
        row_name(row, name, sizeof name);
        row_allowed(row, allowed, sizeof allowed);
        fprintf(f, "  %-*s  %-*s  %s (%s: %s)\n", wname, name, wdef, row->def, row->doc,
                cfg_type_names[row->type], allowed);
    }
    fprintf(f,
            "\nWebhooks: up to %d sections [webhook.NAME], LASTSEEN_WEBHOOK_NAME_KEY in the\n"
            "environment, --set webhook.NAME.key=value:\n\n",
            LS_WEBHOOKS_MAX);
    for (i = 0; i < WEBHOOK_NKEYS; i++) {
        const cfg_key *row = &webhook_table[i];
        row_name(row, name, sizeof name);
        row_allowed(row, allowed, sizeof allowed);
        fprintf(f, "  %-*s  %-*s  %s (%s: %s)\n", wname, name, wdef, row->def[0] ? row->def : "-",
                row->doc, cfg_type_names[row->type], allowed);
    }
}

/* Writes s into a Markdown table cell, escaping the column separator. */
static void md_cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') fputc('\\', f);
        fputc(*s, f);
    }
}

void ls_config_print_markdown(FILE *f)
{
    char name[NAME_MAX_LEN], env[NAME_MAX_LEN], allowed[256];
    size_t i;

    fprintf(f, "| key | type | default | allowed | description |\n");
    fprintf(f, "| --- | --- | --- | --- | --- |\n");
    for (i = 0; i < CFG_NKEYS; i++) {
        const cfg_key *row = &cfg_table[i];
        row_name(row, name, sizeof name);
        row_env_name(row, env, sizeof env);
        row_allowed(row, allowed, sizeof allowed);
        fprintf(f, "| `%s`<br>`%s` | %s | `", name, env, cfg_type_names[row->type]);
        md_cell(f, row->def);
        fprintf(f, "` | ");
        md_cell(f, allowed);
        fprintf(f, " | ");
        md_cell(f, row->doc);
        fprintf(f, " |\n");
    }
}

void ls_config_mqtt_opts(const ls_config *c, ls_mqtt_opts *o)
{
    *o = (ls_mqtt_opts){
        .host = c->mqtt_host,
        .port = c->mqtt_port,
        .v5 = c->mqtt_protocol == LS_MQTT_V5,
        .username = c->mqtt_username,
        .password = c->mqtt_password,
        .cafile = c->mqtt_cafile,
        .certfile = c->mqtt_certfile,
        .keyfile = c->mqtt_keyfile,
        .tls_insecure = c->mqtt_tls_insecure,
        .keepalive_ms = c->mqtt_keepalive,
        .session_expiry_ms = c->mqtt_session_expiry,
        .reconnect_min_ms = c->mqtt_reconnect_min,
        .reconnect_max_ms = c->mqtt_reconnect_max,
    };
}
