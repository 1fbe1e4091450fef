/*
 * test_config.c - unit tests for src/conf/config.c.
 *
 * Covers each value parser (good values, bad values, overflow, bounds), INI
 * loading from temporary files (errors must name file:line, key and value;
 * a failed load must leave the configuration untouched), the environment
 * and --set layers and their precedence, and that the help text, the
 * Markdown table, docs/configuration.md and lastseen.ini.example all agree
 * with the key table; and [webhook.NAME] sections through every layer.
 * Runs from the repository root (ctest sets it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"

#include "conf/config.h"

#define MS_DAY (INT64_C(86400000))

/* Every key, written independently of the table in config.c. */
static const char *const all_keys[][2] = {
    {"http.listen", "LASTSEEN_HTTP_LISTEN"},
    {"http.max_body", "LASTSEEN_HTTP_MAX_BODY"},
    {"http.threads", "LASTSEEN_HTTP_THREADS"},
    {"http.max_streams", "LASTSEEN_HTTP_MAX_STREAMS"},
    {"http.stream_max_backlog", "LASTSEEN_HTTP_STREAM_MAX_BACKLOG"},
    {"http.stream_keepalive", "LASTSEEN_HTTP_STREAM_KEEPALIVE"},
    {"http.max_connections", "LASTSEEN_HTTP_MAX_CONNECTIONS"},
    {"http.max_connections_per_ip", "LASTSEEN_HTTP_MAX_CONNECTIONS_PER_IP"},
    {"http.header_timeout", "LASTSEEN_HTTP_HEADER_TIMEOUT"},
    {"http.tls_cert", "LASTSEEN_HTTP_TLS_CERT"},
    {"http.tls_key", "LASTSEEN_HTTP_TLS_KEY"},
    {"http.reporting_strategy", "LASTSEEN_HTTP_REPORTING_STRATEGY"},
    {"http.reporting_period", "LASTSEEN_HTTP_REPORTING_PERIOD"},
    {"http.auth", "LASTSEEN_HTTP_AUTH"},
    {"http.auth_healthz", "LASTSEEN_HTTP_AUTH_HEALTHZ"},
    {"http.auth_metrics", "LASTSEEN_HTTP_AUTH_METRICS"},
    {"audit.events", "LASTSEEN_AUDIT_EVENTS"},
    {"store.data_dir", "LASTSEEN_STORE_DATA_DIR"},
    {"store.flush_interval", "LASTSEEN_STORE_FLUSH_INTERVAL"},
    {"store.commit_wait", "LASTSEEN_STORE_COMMIT_WAIT"},
    {"store.shutdown_wait", "LASTSEEN_STORE_SHUTDOWN_WAIT"},
    {"store.max_size", "LASTSEEN_STORE_MAX_SIZE"},
    {"store.sync", "LASTSEEN_STORE_SYNC"},
    {"engine.shards", "LASTSEEN_ENGINE_SHARDS"},
    {"state.default_inactivity_timeout", "LASTSEEN_STATE_DEFAULT_INACTIVITY_TIMEOUT"},
    {"state.max_clock_skew", "LASTSEEN_STATE_MAX_CLOCK_SKEW"},
    {"state.max_devices", "LASTSEEN_STATE_MAX_DEVICES"},
    {"state.restart_policy", "LASTSEEN_STATE_RESTART_POLICY"},
    {"events.file", "LASTSEEN_EVENTS_FILE"},
    {"udp.listen", "LASTSEEN_UDP_LISTEN"},
    {"udp.rcvbuf", "LASTSEEN_UDP_RCVBUF"},
    {"udp.auth", "LASTSEEN_UDP_AUTH"},
    {"udp.keys_file", "LASTSEEN_UDP_KEYS_FILE"},
    {"udp.auth_window", "LASTSEEN_UDP_AUTH_WINDOW"},
    {"state.monitor_by_default", "LASTSEEN_STATE_MONITOR_BY_DEFAULT"},
    {"availability.grace", "LASTSEEN_AVAILABILITY_GRACE"},
    {"transport.session_inactivity_timeout", "LASTSEEN_TRANSPORT_SESSION_INACTIVITY_TIMEOUT"},
    {"mqtt.host", "LASTSEEN_MQTT_HOST"},
    {"mqtt.port", "LASTSEEN_MQTT_PORT"},
    {"mqtt.protocol", "LASTSEEN_MQTT_PROTOCOL"},
    {"mqtt.client_id", "LASTSEEN_MQTT_CLIENT_ID"},
    {"mqtt.username", "LASTSEEN_MQTT_USERNAME"},
    {"mqtt.password", "LASTSEEN_MQTT_PASSWORD"},
    {"mqtt.cafile", "LASTSEEN_MQTT_CAFILE"},
    {"mqtt.certfile", "LASTSEEN_MQTT_CERTFILE"},
    {"mqtt.keyfile", "LASTSEEN_MQTT_KEYFILE"},
    {"mqtt.tls_insecure", "LASTSEEN_MQTT_TLS_INSECURE"},
    {"mqtt.keepalive", "LASTSEEN_MQTT_KEEPALIVE"},
    {"mqtt.qos", "LASTSEEN_MQTT_QOS"},
    {"mqtt.clean_session", "LASTSEEN_MQTT_CLEAN_SESSION"},
    {"mqtt.session_expiry", "LASTSEEN_MQTT_SESSION_EXPIRY"},
    {"mqtt.topics", "LASTSEEN_MQTT_TOPICS"},
    {"mqtt.payload_ts", "LASTSEEN_MQTT_PAYLOAD_TS"},
    {"mqtt.status_topic", "LASTSEEN_MQTT_STATUS_TOPIC"},
    {"mqtt.online_payload", "LASTSEEN_MQTT_ONLINE_PAYLOAD"},
    {"mqtt.offline_payload", "LASTSEEN_MQTT_OFFLINE_PAYLOAD"},
    {"mqtt.sparkplug", "LASTSEEN_MQTT_SPARKPLUG"},
    {"mqtt.event_topic", "LASTSEEN_MQTT_EVENT_TOPIC"},
    {"mqtt.state_topic", "LASTSEEN_MQTT_STATE_TOPIC"},
    {"mqtt.gate", "LASTSEEN_MQTT_GATE"},
    {"mqtt.reconnect_min", "LASTSEEN_MQTT_RECONNECT_MIN"},
    {"mqtt.reconnect_max", "LASTSEEN_MQTT_RECONNECT_MAX"},
    {"mqtt.sync_topic", "LASTSEEN_MQTT_SYNC_TOPIC"},
    {"mqtt.sync_timeout", "LASTSEEN_MQTT_SYNC_TIMEOUT"},
    {"events.stdout", "LASTSEEN_EVENTS_STDOUT"},
    {"events.retention", "LASTSEEN_EVENTS_RETENTION"},
    {"alarms.enabled", "LASTSEEN_ALARMS_ENABLED"},
    {"alarms.retention", "LASTSEEN_ALARMS_RETENTION"},
    {"log.level", "LASTSEEN_LOG_LEVEL"},
    {"cluster.nats", "LASTSEEN_CLUSTER_NATS"},
    {"cluster.node", "LASTSEEN_CLUSTER_NODE"},
    {"cluster.partitions", "LASTSEEN_CLUSTER_PARTITIONS"},
    {"cluster.lease_ttl", "LASTSEEN_CLUSTER_LEASE_TTL"},
    {"cluster.input_retention", "LASTSEEN_CLUSTER_INPUT_RETENTION"},
};
#define NKEYS (sizeof all_keys / sizeof all_keys[0])

/* ---- helpers ---------------------------------------------------------- */

/* Writes `text` to a fresh file in /tmp; its name goes into path[64]. */
static void ini_write(char *path, const char *text)
{
    size_t n = strlen(text);
    int fd;

    snprintf(path, 64, "/tmp/lastseen-test-config-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    assert_int_equal(close(fd), 0);
}

/* Loads `text` as an INI file over *c; returns the result, error in err. */
static int ini_load(ls_config *c, const char *text, char *path, char *err, size_t errlen)
{
    int rc;

    ini_write(path, text);
    rc = ls_config_load_file(c, path, err, errlen);
    unlink(path);
    return rc;
}

/* Applies one --set and expects success. */
static void set_ok(ls_config *c, const char *assignment)
{
    char err[512] = "";
    int rc = ls_config_set(c, assignment, err, sizeof err);
    if (rc != 0) fail_msg("--set %s failed: %s", assignment, err);
}

/* Applies one --set, expects failure, and checks err contains `want`. */
static void set_bad(const char *assignment, const char *want)
{
    ls_config c, before;
    char err[512] = "";

    ls_config_defaults(&c);
    before = c;
    if (ls_config_set(&c, assignment, err, sizeof err) >= 0)
        fail_msg("--set %s unexpectedly succeeded", assignment);
    if (want && !strstr(err, want))
        fail_msg("--set %s: error \"%s\" lacks \"%s\"", assignment, err, want);
    assert_memory_equal(&c, &before, sizeof c);
}

static char *capture(void (*print)(FILE *))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    print(f);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static char *file_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    if (!f) fail_msg("cannot open %s (tests run from the repository root)", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ---- defaults --------------------------------------------------------- */

static void test_defaults(void **state)
{
    ls_config c;
    (void)state;

    memset(&c, 0xaa, sizeof c);
    ls_config_defaults(&c);
    assert_string_equal(c.http_listen, "127.0.0.1:8080");
    assert_int_equal(c.http_max_body, 16 * 1024 * 1024);
    assert_int_equal(c.http_threads, 1);
    assert_string_equal(c.data_dir, "./data");
    assert_int_equal(c.state_default_inactivity_timeout, 600000);
    assert_int_equal(c.state_max_clock_skew, 5000);
    assert_int_equal(c.state_max_devices, 0);
    assert_int_equal(c.engine_shards, 0); /* one per online core */
    assert_int_equal(c.events_stdout, 0);
    assert_int_equal(c.log_level, LS_LOG_INFO);
    assert_int_equal(c.http_reporting_strategy, 0); /* ALL */
    assert_int_equal(c.http_reporting_period, 3000);
    assert_int_equal(c.state_monitor_by_default, 1);
    assert_int_equal(c.availability_grace, 180000);
    assert_int_equal(c.transport_session_inactivity_timeout, 600000);
    assert_int_equal(c.alarms_retention, 7 * MS_DAY);
    assert_int_equal(c.alarms_enabled, 1);
    assert_string_equal(c.cluster_nats, ""); /* a single node */
    assert_string_equal(c.cluster_node, ""); /* the host name */
    assert_int_equal(c.cluster_partitions, 64);
    assert_int_equal(c.cluster_lease_ttl, 20000);
    assert_int_equal(c.cluster_input_retention, MS_DAY);
}

/* ---- parsers ---------------------------------------------------------- */

static void test_parse_duration(void **state)
{
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {
        {"250ms", 250},
        {"30s", 30000},
        {"10m", 600000},
        {"2h", 7200000},
        {"1d", MS_DAY},
        {"0ms", 0},
        {"0s", 0},
        {"  5s\t", 5000},
        {"5 s", 5000},
        {"007s", 7000},
        {"9223372036854775807ms", INT64_MAX},
        {"106751991167d", 106751991167 * MS_DAY},
    };
    static const char *const bad[] = {
        "",   "   ",  "5",  "600",  "-5s", "+5s",   "5x",    "5 parsecs", "s",
        "ms", "1.5s", "5S", "5sec", "5s5", "5 s s", "0x10s", "5ms ms",
    };
    static const char *const overflow[] = {
        "9223372036854775808ms",
        "99999999999999999999s",
        "9223372036854776s",
        "106751991168d",
    };
    int64_t v;
    size_t i;
    (void)state;

    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        v = -1;
        if (ls_parse_duration_ms(good[i].s, &v) != 0)
            fail_msg("duration \"%s\" rejected", good[i].s);
        assert_int_equal(v, good[i].ms);
    }
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 42;
        if (ls_parse_duration_ms(bad[i], &v) >= 0) fail_msg("duration \"%s\" accepted", bad[i]);
        assert_int_equal(v, 42); /* untouched on failure */
    }
    for (i = 0; i < sizeof overflow / sizeof overflow[0]; i++)
        if (ls_parse_duration_ms(overflow[i], &v) != -ERANGE)
            fail_msg("duration \"%s\" did not overflow", overflow[i]);
}

static void test_parse_size(void **state)
{
    static const struct {
        const char *s;
        int64_t bytes;
    } good[] = {
        {"0", 0},
        {"512", 512},
        {" 512 ", 512},
        {"10B", 10},
        {"64KiB", 64 * 1024},
        {"2K", 2048},
        {"3KB", 3072},
        {"16MiB", 16 * 1024 * 1024},
        {"1M", 1024 * 1024},
        {"1MB", 1024 * 1024},
        {"16mib", 16 * 1024 * 1024},
        {"1GiB", INT64_C(1) << 30},
        {"1G", INT64_C(1) << 30},
        {"1GB", INT64_C(1) << 30},
        {"4 KiB", 4096},
        {"9223372036854775807", INT64_MAX},
    };
    static const char *const bad[] = {"",          "KiB",   "-1",    "1.5MiB", "12XB",
                                      "5 parsecs", "1KiB2", "0x400", "1 K B"};
    static const char *const overflow[] = {"9223372036854775808", "9007199254740992KiB",
                                           "8589934592GiB"};
    int64_t v;
    size_t i;
    (void)state;

    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        v = -1;
        if (ls_parse_size(good[i].s, &v) != 0) fail_msg("size \"%s\" rejected", good[i].s);
        assert_int_equal(v, good[i].bytes);
    }
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (ls_parse_size(bad[i], &v) >= 0) fail_msg("size \"%s\" accepted", bad[i]);
    for (i = 0; i < sizeof overflow / sizeof overflow[0]; i++)
        if (ls_parse_size(overflow[i], &v) != -ERANGE)
            fail_msg("size \"%s\" did not overflow", overflow[i]);
}

static void test_parse_bool(void **state)
{
    static const char *const yes[] = {"true", "TRUE", "True", "yes",   "YES",
                                      "on",   "On",   "1",    " true "};
    static const char *const no[] = {"false", "FALSE", "no", "No", "off", "OFF", "0", "\toff\n"};
    static const char *const bad[] = {"", "maybe", "2", "t", "y", "enable", "truee", "-1"};
    size_t i;
    int v;
    (void)state;

    for (i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        v = -1;
        assert_int_equal(ls_parse_bool(yes[i], &v), 0);
        assert_int_equal(v, 1);
    }
    for (i = 0; i < sizeof no / sizeof no[0]; i++) {
        v = -1;
        assert_int_equal(ls_parse_bool(no[i], &v), 0);
        assert_int_equal(v, 0);
    }
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 7;
        if (ls_parse_bool(bad[i], &v) >= 0) fail_msg("bool \"%s\" accepted", bad[i]);
        assert_int_equal(v, 7);
    }
}

static void test_int_keys(void **state)
{
    ls_config c;
    (void)state;

    ls_config_defaults(&c);
    set_ok(&c, "http.threads=64");
    assert_int_equal(c.http_threads, 64);
    set_ok(&c, "http.threads= +8 ");
    assert_int_equal(c.http_threads, 8);
    set_ok(&c, "state.max_devices=4294967295");
    assert_int_equal(c.state_max_devices, INT64_C(4294967295));
    set_ok(&c, "state.max_devices=0");
    assert_int_equal(c.state_max_devices, 0);

    set_bad("http.threads=0", "between 1 and 64");
    set_bad("http.threads=65", "between 1 and 64");
    set_bad("http.threads=-1", "between 1 and 64");
    set_bad("http.threads=abc", "expected an integer");
    set_bad("http.threads=1.5", "expected an integer");
    set_bad("http.threads=4s", "expected an integer");
    set_bad("http.threads=", "expected an integer");
    set_bad("http.threads=0x10", "expected an integer");
    set_bad("state.max_devices=4294967296", "between 0 and 4294967295");
    set_ok(&c, "engine.shards=4");
    assert_int_equal(c.engine_shards, 4);
    set_bad("engine.shards=65", "between 0 and 64");
    set_bad("state.max_devices=99999999999999999999", "too large");
    set_bad("state.max_devices=-99999999999999999999", "too large");
}

static void test_duration_size_keys(void **state)
{
    ls_config c;
    (void)state;

    ls_config_defaults(&c);
    set_ok(&c, "state.default_inactivity_timeout=1ms");
    assert_int_equal(c.state_default_inactivity_timeout, 1);
    set_ok(&c, "state.default_inactivity_timeout=3650d");
    assert_int_equal(c.state_default_inactivity_timeout, 3650 * MS_DAY);
    set_ok(&c, "state.max_clock_skew=0s");
    assert_int_equal(c.state_max_clock_skew, 0);
    set_ok(&c, "state.max_clock_skew=24h");
    assert_int_equal(c.state_max_clock_skew, MS_DAY);
    set_ok(&c, "http.max_body=1KiB");
    assert_int_equal(c.http_max_body, 1024);
    set_ok(&c, "http.max_body=1GiB");
    assert_int_equal(c.http_max_body, INT64_C(1) << 30);
    set_ok(&c, "http.max_body=2048");
    assert_int_equal(c.http_max_body, 2048);

    set_bad("state.default_inactivity_timeout=0ms", "between 1ms and 3650d");
    set_bad("state.default_inactivity_timeout=3651d", "between 1ms and 3650d");
    set_bad("state.default_inactivity_timeout=600", "unit");
    set_bad("state.max_clock_skew=25h", "between 0ms and 1d");
    set_bad("state.max_clock_skew=-1s", "negative");
    set_bad("state.max_clock_skew=99999999999999999999d", "too large");
    set_bad("http.max_body=1023", "between 1KiB and 1GiB");
    set_bad("http.max_body=1025MiB", "between 1KiB and 1GiB");
    set_bad("http.max_body=lots", "expected a size");

    set_ok(&c, "availability.grace=0s");
    assert_int_equal(c.availability_grace, 0);
    set_ok(&c, "transport.session_inactivity_timeout=0s");
    assert_int_equal(c.transport_session_inactivity_timeout, 0);
    set_ok(&c, "http.reporting_period=1ms");
    assert_int_equal(c.http_reporting_period, 1);
    set_bad("availability.grace=25h", "between 0ms and 1d");
    set_bad("http.reporting_period=0ms", "between 1ms and 1h");
    set_bad("alarms.retention=0s", "between 1s and 3650d");
}

static void test_bool_enum_keys(void **state)
{
    ls_config c;
    (void)state;

    ls_config_defaults(&c);
    set_ok(&c, "events.stdout=yes");
    assert_int_equal(c.events_stdout, 1);
    set_ok(&c, "events.stdout=OFF");
    assert_int_equal(c.events_stdout, 0);
    set_ok(&c, "log.level=debug");
    assert_int_equal(c.log_level, LS_LOG_DEBUG);
    set_ok(&c, "log.level=warn");
    assert_int_equal(c.log_level, LS_LOG_WARN);
    set_ok(&c, "log.level=ERROR");
    assert_int_equal(c.log_level, LS_LOG_ERROR);
    set_ok(&c, "log.level=info");
    assert_int_equal(c.log_level, LS_LOG_INFO);

    set_ok(&c, "http.reporting_strategy=FIRST_AND_LAST");
    assert_int_equal(c.http_reporting_strategy, 3);
    set_ok(&c, "http.reporting_strategy=first");
    assert_int_equal(c.http_reporting_strategy, 1);
    set_ok(&c, "http.reporting_strategy=LAST");
    assert_int_equal(c.http_reporting_strategy, 2);
    set_ok(&c, "state.monitor_by_default=false");
    assert_int_equal(c.state_monitor_by_default, 0);

    set_bad("http.reporting_strategy=SOME", "expected one of ALL, FIRST, LAST, FIRST_AND_LAST");
    set_bad("state.monitor_by_default=sometimes", "expected true/false");
    set_bad("events.stdout=maybe", "expected true/false");
    set_bad("log.level=verbose", "expected one of debug, info, warn, error");
    set_bad("log.level=", "expected one of");
}

static void test_string_keys(void **state)
{
    static const char *const good_listen[] = {"0.0.0.0:80",    "localhost:0", "example.org:65535",
                                              "[::1]:8080",    "[::]:80",     "[fe80::1%eth0]:9000",
                                              "my_host-1:8080"};
    static const char *const bad_listen[][2] = {
        {":8080", "empty host"},        {"localhost", "missing :port"},
        {"localhost:", "port"},         {"localhost:65536", "port"},
        {"localhost:80x", "port"},      {"localhost:-1", "port"},
        {"localhost:000080", "port"},   {"::1:8080", "brackets"},
        {"[::1]8080", "missing :port"}, {"[::1]", "missing :port"},
        {"[]:80", "empty host"},        {"[::1:80", "missing ]"},
        {"[localhost]:80", "IPv6"},     {"local host:80", "invalid character"},
        {"", "missing :port"},
    };
    char buf[600], long_dir[5000];
    ls_config c;
    size_t i;
    (void)state;

    ls_config_defaults(&c);
    for (i = 0; i < sizeof good_listen / sizeof good_listen[0]; i++) {
        snprintf(buf, sizeof buf, "http.listen=%s", good_listen[i]);
        set_ok(&c, buf);
        assert_string_equal(c.http_listen, good_listen[i]);
    }
    set_ok(&c, "http.listen =  10.0.0.1:9  ");
    assert_string_equal(c.http_listen, "10.0.0.1:9");
    for (i = 0; i < sizeof bad_listen / sizeof bad_listen[0]; i++) {
        snprintf(buf, sizeof buf, "http.listen=%s", bad_listen[i][0]);
        set_bad(buf, bad_listen[i][1]);
    }
    memset(buf, 'a', 300);
    memcpy(buf, "http.listen=", 12);
    snprintf(buf + 300, sizeof buf - 300, ":80");
    set_bad(buf, "too long");

    set_ok(&c, "store.data_dir=/var/lib/lastseen");
    assert_string_equal(c.data_dir, "/var/lib/lastseen");
    set_bad("store.data_dir=", "must not be empty");
    set_bad("store.data_dir=   ", "must not be empty");
    set_bad("store.data_dir=a\x01z", "control character");

    /* The longest path that fits, and one byte more. */
    snprintf(long_dir, sizeof long_dir, "store.data_dir=");
    memset(long_dir + 15, 'd', 4095);
    long_dir[15 + 4095] = '\0';
    set_ok(&c, long_dir);
    assert_int_equal(strlen(c.data_dir), 4095);
    long_dir[15 + 4095] = 'd';
    long_dir[15 + 4096] = '\0';
    set_bad(long_dir, "too long");
}

/* The [cluster] keys: server lists, node names, bounds. */
static void test_cluster_keys(void **state)
{
    ls_config c;
    (void)state;

    ls_config_defaults(&c);
    set_ok(&c, "cluster.nats=nats://127.0.0.1:4222");
    assert_string_equal(c.cluster_nats, "nats://127.0.0.1:4222");
    set_ok(&c, "cluster.nats=nats://10.0.0.1:4222, NATS://[::1]:4223 ,nats://nats-2.local:4224");
    set_ok(&c, "cluster.nats=");
    assert_string_equal(c.cluster_nats, "");
    set_bad("cluster.nats=127.0.0.1:4222", "nats://host:port");
    set_bad("cluster.nats=tls://127.0.0.1:4222", "nats://host:port");
    set_bad("cluster.nats=nats://127.0.0.1", "missing :port");
    set_bad("cluster.nats=nats://127.0.0.1:4222,,nats://127.0.0.1:4223", "empty item");
    set_bad("cluster.nats=nats://127.0.0.1:4222,", "empty item");
    set_bad("cluster.nats=nats://:4222", "empty host");

    set_ok(&c, "cluster.node=node-1_a");
    assert_string_equal(c.cluster_node, "node-1_a");
    set_bad("cluster.node=node.1", "one NATS subject token");
    set_bad("cluster.node=a b", "one NATS subject token");
    set_bad("cluster.node=n*", "one NATS subject token");
    set_bad("cluster.node=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "at most 64");

    set_ok(&c, "cluster.partitions=1");
    set_ok(&c, "cluster.partitions=1024");
    assert_int_equal(c.cluster_partitions, 1024);
    set_bad("cluster.partitions=0", "between 1 and 1024");
    set_bad("cluster.partitions=1025", "between 1 and 1024");

    set_ok(&c, "cluster.lease_ttl=3s");
    assert_int_equal(c.cluster_lease_ttl, 3000);
    set_bad("cluster.lease_ttl=2999ms", "cluster.lease_ttl");
    set_ok(&c, "cluster.input_retention=7d");
    assert_int_equal(c.cluster_input_retention, 7 * MS_DAY);
    set_bad("cluster.input_retention=10s", "cluster.input_retention");
}

static void test_set_errors(void **state)
{
    ls_config c;
    char err[512];
    (void)state;

    ls_config_defaults(&c);
    assert_int_equal(ls_config_set(&c, "http.listen", err, sizeof err), -EINVAL);
    assert_string_equal(err, "--set http.listen: expected section.key=value");
    assert_true(ls_config_set(&c, "http.lisen=x:1", err, sizeof err) < 0);
    assert_string_equal(
        err, "--set http.lisen=x:1: unknown key \"http.lisen\" (did you mean http.listen?)");
    assert_true(ls_config_set(&c, "listen=x:1", err, sizeof err) < 0);
    assert_non_null(strstr(err, "did you mean http.listen?"));
    assert_true(ls_config_set(&c, "nothing.like.it=1", err, sizeof err) < 0);
    assert_null(strstr(err, "did you mean"));
    assert_true(ls_config_set(&c, "=1", err, sizeof err) < 0);
    assert_true(ls_config_set(&c, "state.max_devices=many", err, sizeof err) < 0);
    assert_string_equal(err, "--set state.max_devices=many: state.max_devices = \"many\": "
                             "expected an integer between 0 and 4294967295");
    /* Blanks around the key are fine; errors never overflow or need a buffer. */
    set_ok(&c, "  http.threads  = 3");
    assert_int_equal(c.http_threads, 3);
    assert_true(ls_config_set(&c, "bogus", NULL, 0) < 0);
    assert_true(ls_config_set(&c, "http.threads=0", err, 8) < 0);
    assert_int_equal(strlen(err), 7);
}

static void test_set_key(void **state)
{
    ls_config c;
    char err[512];
    (void)state;

    ls_config_defaults(&c);
    assert_int_equal(ls_config_set_key(&c, "log.level", "warn", "api", err, sizeof err), 0);
    assert_int_equal(c.log_level, LS_LOG_WARN);
    assert_true(ls_config_set_key(&c, "log.level", "loud", "api", err, sizeof err) < 0);
    assert_string_equal(err, "api: log.level = \"loud\": expected one of debug, info, warn, error");
    assert_true(ls_config_set_key(&c, "log", "warn", "api", err, sizeof err) < 0);
    assert_string_equal(err, "api: unknown key \"log\"");
}

/* ---- file ------------------------------------------------------------- */

static void test_file_good(void **state)
{
    ls_config c;
    char path[64], err[512] = "";
    int rc;
    (void)state;

    ls_config_defaults(&c);
    rc = ini_load(&c,
                  "\xEF\xBB\xBF; lastseen test config\n"
                  "# comments of both kinds\n"
                  "\n"
                  "[http]\n"
                  "listen = [::1]:9090\n"
                  "max_body = 1MiB ; inline comment\n"
                  "threads: 4\n"
                  "\n"
                  "[store]\n"
                  "data_dir = /srv/lastseen\r\n"
                  "[state]\n"
                  "default_inactivity_timeout = 90s\n"
                  "max_clock_skew = 250ms\n"
                  "max_devices = 1000000\n"
                  "[events]\n"
                  "stdout = on\n"
                  "[log]\n"
                  "level = debug\n",
                  path, err, sizeof err);
    if (rc != 0) fail_msg("load failed: %s", err);
    assert_string_equal(c.http_listen, "[::1]:9090");
    assert_int_equal(c.http_max_body, 1024 * 1024);
    assert_int_equal(c.http_threads, 4);
    assert_string_equal(c.data_dir, "/srv/lastseen");
    assert_int_equal(c.state_default_inactivity_timeout, 90000);
    assert_int_equal(c.state_max_clock_skew, 250);
    assert_int_equal(c.state_max_devices, 1000000);
    assert_int_equal(c.events_stdout, 1);
    assert_int_equal(c.log_level, LS_LOG_DEBUG);
}

static void test_file_empty(void **state)
{
    ls_config c, d;
    char path[64], err[512];
    (void)state;

    ls_config_defaults(&c);
    ls_config_defaults(&d);
    assert_int_equal(ini_load(&c, "", path, err, sizeof err), 0);
    assert_int_equal(ini_load(&c, "; nothing\n[http]\n", path, err, sizeof err), 0);
    assert_memory_equal(&c, &d, sizeof c);
}

/* Loads `text`, expects failure with exactly "<path>:<want>", config untouched. */
static void file_bad(const char *text, const char *want)
{
    ls_config c, before;
    char path[64], err[512] = "", expect[600];

    ls_config_defaults(&c);
    set_ok(&c, "http.threads=7"); /* not a default, so "untouched" means something */
    before = c;
    if (ini_load(&c, text, path, err, sizeof err) >= 0) fail_msg("load of \"%s\" succeeded", text);
    snprintf(expect, sizeof expect, "%s:%s", path, want);
    assert_string_equal(err, expect);
    assert_memory_equal(&c, &before, sizeof c);
}

static void test_file_errors(void **state)
{
    (void)state;

    file_bad("[http]\nthreads = 2\nlisen = 1.2.3.4:80\n",
             "3: unknown key \"http.lisen\" (did you mean http.listen?)");
    file_bad("[state]\n\n\n\n\n\n\n\n\n\n\nmax_clock_skew = 5 parsecs\n",
             "12: state.max_clock_skew = \"5 parsecs\": expected a duration with a unit "
             "(250ms, 30s, 10m, 2h, 1d) between 0ms and 1d");
    file_bad("[state]\ndefault_inactivity_timeout = 600\n",
             "2: state.default_inactivity_timeout = \"600\": a unit is required; expected a "
             "duration with a unit (250ms, 30s, 10m, 2h, 1d) between 1ms and 3650d");
    file_bad("[htp]\nlisten = 1.2.3.4:80\n",
             "2: unknown key \"htp.listen\" (did you mean http.listen?)");
    file_bad("[http]\ndata_dir = /x\n",
             "2: unknown key \"http.data_dir\" (did you mean store.data_dir?)");
    file_bad("threads = 2\n", "1: key \"threads\" is outside any [section]");
    /* inih's own syntax errors carry their line number. */
    file_bad("[http]\nthreads = 2\nthis line has no equals sign\n",
             "3: syntax error: expected [section], key = value or a comment");
    file_bad("[http\nthreads = 2\n",
             "1: syntax error: expected [section], key = value or a comment");
    /* The first error wins, whichever kind it is. */
    file_bad("[http]\nnonsense\nthreads = 0\n",
             "2: syntax error: expected [section], key = value or a comment");
    file_bad("[http]\nthreads = 0\nnonsense\n",
             "2: http.threads = \"0\": out of range; expected an integer between 1 and 64");
    /* A good value before a bad one is not applied either (checked in file_bad). */
    file_bad("[log]\nlevel = debug\n[events]\nstdout = perhaps\n",
             "4: events.stdout = \"perhaps\": expected true/false, yes/no, on/off or 1/0");
}

static void test_file_long_line(void **state)
{
    char text[400], want[200];

    /* inih's buffer holds 198 characters plus newline: longer lines are errors, not cut. */
    static const size_t lens[] = {199 - 11, 250}; /* "data_dir = " is 11 */
    size_t i;
    (void)state;

    for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        snprintf(text, sizeof text, "[store]\ndata_dir = ");
        memset(text + 19, 'x', lens[i]);
        text[19 + lens[i]] = '\0';
        snprintf(text + strlen(text), sizeof text - strlen(text), "\n[http]\nthreads = 2\n");
        snprintf(want, sizeof want,
                 "2: line longer than 198 characters (use the environment or --set for longer "
                 "values)");
        file_bad(text, want);
    }
}

static void test_file_long_line_fits(void **state)
{
    char text[400], path[64], err[512] = "";
    ls_config c;
    size_t prefix;
    (void)state;

    ls_config_defaults(&c);
    snprintf(text, sizeof text, "[store]\ndata_dir = ");
    prefix = strlen(text);
    memset(text + prefix, 'y', 198 - 11);
    text[prefix + 198 - 11] = '\0';
    snprintf(text + strlen(text), sizeof text - strlen(text), "\n[http]\nthreads = 9\n");
    if (ini_load(&c, text, path, err, sizeof err) != 0) fail_msg("load failed: %s", err);
    assert_int_equal(strlen(c.data_dir), 198 - 11);
    assert_int_equal(c.http_threads, 9);
}

static void test_file_missing(void **state)
{
    ls_config c, before;
    char err[512], want[600];
    (void)state;

    ls_config_defaults(&c);
    before = c;
    assert_int_equal(ls_config_load_file(&c, "/nonexistent/lastseen.ini", err, sizeof err),
                     -ENOENT);
    snprintf(want, sizeof want, "/nonexistent/lastseen.ini: cannot open: %s", strerror(ENOENT));
    assert_string_equal(err, want);
    assert_true(ls_config_load_file(&c, "/tmp", err, sizeof err) < 0);
    assert_non_null(strstr(err, "/tmp: cannot read:"));
    assert_memory_equal(&c, &before, sizeof c);
}

/* ---- environment and precedence --------------------------------------- */

static void test_env(void **state)
{
    char *env[] = {
        "PATH=/usr/bin",
        "LASTSEEN_HTTP_LISTEN=0.0.0.0:9999",
        "LASTSEEN_STATE_DEFAULT_INACTIVITY_TIMEOUT=2m",
        "LASTSEEN_BIN=/usr/bin/lastseen",
        "LASTSEEN_BINDIR=/x",
        "LASTSEEN_TEST_PORT=1234",
        "LASTSEEN_TESTING=1",
        "lastseen_http_threads=9",
        "LASTSEEN_LOG_LEVEL=warn",
        NULL,
    };
    ls_config c;
    char err[512] = "";
    (void)state;

    ls_config_defaults(&c);
    if (ls_config_apply_env(&c, env, err, sizeof err) != 0) fail_msg("env failed: %s", err);
    assert_string_equal(c.http_listen, "0.0.0.0:9999");
    assert_int_equal(c.state_default_inactivity_timeout, 120000);
    assert_int_equal(c.http_threads, 1);
    assert_int_equal(c.log_level, LS_LOG_WARN);
    assert_int_equal(ls_config_apply_env(&c, NULL, err, sizeof err), 0);
}

static void test_env_errors(void **state)
{
    char *unknown[] = {"LASTSEEN_LOG_LEVEL=debug", "LASTSEEN_FOO=1", NULL};
    char *typo[] = {"LASTSEEN_HTTP_LISEN=1.2.3.4:5", NULL};
    char *bad[] = {"LASTSEEN_HTTP_THREADS=2", "LASTSEEN_HTTP_LISTEN=nowhere", NULL};
    ls_config c, before;
    char err[512];
    (void)state;

    ls_config_defaults(&c);
    before = c;
    assert_true(ls_config_apply_env(&c, unknown, err, sizeof err) < 0);
    assert_string_equal(err, "environment: unknown variable LASTSEEN_FOO");
    assert_memory_equal(&c, &before, sizeof c); /* LOG_LEVEL not applied */
    assert_true(ls_config_apply_env(&c, typo, err, sizeof err) < 0);
    assert_string_equal(err, "environment: unknown variable LASTSEEN_HTTP_LISEN (did you mean "
                             "LASTSEEN_HTTP_LISTEN?)");
    assert_true(ls_config_apply_env(&c, bad, err, sizeof err) < 0);
    assert_non_null(strstr(err, "environment LASTSEEN_HTTP_LISTEN: http.listen = \"nowhere\": "
                                "missing :port; expected host:port"));
    assert_int_equal(strncmp(err, "environment LASTSEEN_HTTP_LISTEN: ", 34), 0);
    assert_memory_equal(&c, &before, sizeof c); /* HTTP_THREADS not applied */
}

static void test_precedence(void **state)
{
    char *env[] = {"LASTSEEN_HTTP_THREADS=3", "LASTSEEN_STATE_MAX_DEVICES=30", NULL};
    ls_config c;
    char path[64], err[512] = "";
    (void)state;

    ls_config_defaults(&c);
    assert_int_equal(ini_load(&c,
                              "[http]\nthreads = 2\n"
                              "[state]\nmax_devices = 20\nmax_clock_skew = 2s\n",
                              path, err, sizeof err),
                     0);
    assert_int_equal(ls_config_apply_env(&c, env, err, sizeof err), 0);
    set_ok(&c, "http.threads=4");

    assert_int_equal(c.http_threads, 4);                 /* --set > env > file */
    assert_int_equal(c.state_max_devices, 30);           /* env > file */
    assert_int_equal(c.state_max_clock_skew, 2000);      /* file > default */
    assert_int_equal(c.http_max_body, 16 * 1024 * 1024); /* default */
}

/* ---- help, Markdown, docs, example ------------------------------------ */

static void test_help(void **state)
{
    char *out = capture(ls_config_print_help);
    size_t i;
    (void)state;

    for (i = 0; i < NKEYS; i++)
        if (!strstr(out, all_keys[i][0])) fail_msg("help lacks %s", all_keys[i][0]);
    assert_non_null(strstr(out, "libmicrohttpd worker threads"));
    assert_non_null(strstr(out, "127.0.0.1:8080"));
    free(out);
}

static void test_markdown(void **state)
{
    char *out = capture(ls_config_print_markdown), *line, *save = NULL;
    char want[256];
    size_t i, rows = 0;
    (void)state;

    static const char header[] = "| key | type | default | allowed | description |\n"
                                 "| --- | --- | --- | --- | --- |\n";
    assert_int_equal(strncmp(out, header, strlen(header)), 0);
    for (i = 0; i < NKEYS; i++) {
        snprintf(want, sizeof want, "| `%s`<br>`%s` |", all_keys[i][0], all_keys[i][1]);
        if (!strstr(out, want)) fail_msg("markdown lacks the row of %s", all_keys[i][0]);
    }
    assert_non_null(strstr(out, "| int | `1` | 1 .. 64 | libmicrohttpd worker threads |"));
    assert_non_null(strstr(out, "| duration | `5s` | 0ms .. 1d |"));
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        rows++;
    assert_int_equal(rows, NKEYS + 2);
    free(out);
}

static void test_docs_agree(void **state)
{
    static const char begin[] = "<!-- BEGIN KEYS -->\n", end[] = "<!-- END KEYS -->";
    char *doc = file_slurp("docs/configuration.md");
    char *out = capture(ls_config_print_markdown);
    char *b = strstr(doc, begin), *e;
    (void)state;

    assert_non_null(b);
    b += strlen(begin);
    e = strstr(b, end);
    assert_non_null(e);
    *e = '\0';
    if (strcmp(b, out) != 0)
        fail_msg("docs/configuration.md is out of date; regenerate the table between the "
                 "markers from ls_config_print_markdown()");
    free(out);
    free(doc);
}

/*
 * lastseen.ini.example writes prose as "; text" and each key, php.ini
 * style, as ";key = default".  As is it must load to the defaults; with those
 * ';' removed it must still load to the defaults and name every key.
 */
static void test_example_file(void **state)
{
    char *text = file_slurp("lastseen.ini.example"), *p, *q;
    ls_config c, d;
    char path[64], err[512] = "";
    size_t i;
    (void)state;

    ls_config_defaults(&d);
    ls_config_defaults(&c);
    if (ls_config_load_file(&c, "lastseen.ini.example", err, sizeof err) != 0)
        fail_msg("example: %s", err);
    assert_memory_equal(&c, &d, sizeof c);

    for (p = q = text; *p; p++)
        if (!(*p == ';' && (p == text || p[-1] == '\n') && p[1] != ' ' && p[1] != '\n')) *q++ = *p;
    *q = '\0';
    for (i = 0; i < NKEYS; i++) {
        const char *dot = strchr(all_keys[i][0], '.');
        char want[80];
        snprintf(want, sizeof want, "\n%s = ", dot + 1);
        if (!strstr(text, want)) fail_msg("lastseen.ini.example lacks %s", all_keys[i][0]);
    }
    memset(&c, 0, sizeof c);
    c.http_threads = 99; /* every key must be set by the file itself */
    if (ini_load(&c, text, path, err, sizeof err) != 0) fail_msg("uncommented example: %s", err);
    assert_memory_equal(&c, &d, sizeof c);
    free(text);
}

/* ---- webhook sections ------------------------------------------------- */

static void test_event_types(void **state)
{
    int64_t m = 0;
    (void)state;

    assert_int_equal(ls_parse_event_types("all", &m), 0);
    assert_int_equal(m, (INT64_C(1) << LS_EV__COUNT) - 1); /* alarm, source and AUDIT too */
    assert_int_equal(ls_parse_event_types("AUDIT, alarm_raised", &m), 0);
    assert_int_equal(m, (INT64_C(1) << LS_EV_AUDIT) | (INT64_C(1) << LS_EV_ALARM_RAISED));
    assert_int_equal(ls_parse_event_types("INACTIVITY_EVENT", &m), 0);
    assert_int_equal(m, 2);
    assert_int_equal(ls_parse_event_types(" activity_event,DISCONNECT_EVENT  connect_event,", &m),
                     0);
    assert_int_equal(m, 1 | 4 | 8);
    assert_int_equal(ls_parse_event_types("INACTIVITY_EVENT,INACTIVITY_EVENT", &m), 0);
    assert_int_equal(m, 2);
    m = 99;
    assert_int_equal(ls_parse_event_types("", &m), -EINVAL);
    assert_int_equal(ls_parse_event_types(" , ", &m), -EINVAL);
    assert_int_equal(ls_parse_event_types("INACTIVITY", &m), -EINVAL);
    assert_int_equal(ls_parse_event_types("INACTIVITY_EVENT;ACTIVITY_EVENT", &m), -EINVAL);
    assert_int_equal(m, 99); /* untouched on failure */
}

static void test_webhook_set(void **state)
{
    ls_config c;
    char err[512] = "";
    (void)state;

    ls_config_defaults(&c);
    assert_int_equal(c.nwebhooks, 0);
    set_ok(&c, "webhook.Pager.url=https://alerts.example.com/x?a=1");
    set_ok(&c, "webhook.pager.events=INACTIVITY_EVENT");
    set_ok(&c, "WEBHOOK.PAGER.SECRET= s3cret ");
    set_ok(&c, "webhook.archive.url=http://127.0.0.1:9/in");
    set_ok(&c, "webhook.archive.batch=500");
    set_ok(&c, "webhook.archive.timeout=250ms");
    assert_int_equal(c.nwebhooks, 2);
    assert_string_equal(c.webhooks[0].name, "pager");
    assert_string_equal(c.webhooks[0].url, "https://alerts.example.com/x?a=1");
    assert_int_equal(c.webhooks[0].events, 2);
    assert_string_equal(c.webhooks[0].secret, "s3cret");
    assert_int_equal(c.webhooks[0].batch, 1);       /* default */
    assert_int_equal(c.webhooks[0].timeout, 10000); /* default */
    assert_string_equal(c.webhooks[1].name, "archive");
    assert_int_equal(c.webhooks[1].events, (INT64_C(1) << LS_EV__COUNT) - 1); /* default: all */
    assert_string_equal(c.webhooks[1].secret, "");
    assert_int_equal(c.webhooks[1].batch, 500);
    assert_int_equal(c.webhooks[1].timeout, 250);
    assert_int_equal(ls_config_validate(&c, err, sizeof err), 0);
    set_ok(&c, "webhook.pager.url=http://other/"); /* a later layer overwrites */
    assert_string_equal(c.webhooks[0].url, "http://other/");
    assert_int_equal(c.nwebhooks, 2);
}

static void test_webhook_errors(void **state)
{
    ls_config c;
    char err[512] = "", assign[128];
    (void)state;

    set_bad("webhook.pager.ulr=http://x/", "unknown key \"webhook.pager.ulr\" (webhook keys: url,");
    set_bad("webhook.pager=http://x/", "expected webhook.NAME.key");
    set_bad("webhook..url=http://x/", "expected webhook.NAME.key");
    set_bad("webhook.pa.ger.url=http://x/", "expected webhook.NAME.key");
    set_bad("webhook.pag$r.url=http://x/", "expected webhook.NAME.key");
    set_bad("webhook.a1234567890123456789012345678901b.url=http://x/", "expected webhook.NAME.key");
    set_bad("webhook.p.url=ftp://x/", "webhook.p.url = \"ftp://x/\": must start with http://");
    set_bad("webhook.p.url=http://", "missing host");
    set_bad("webhook.p.url=http:///path", "missing host");
    set_bad("webhook.p.url=http://a b/", "contains a blank");
    set_bad("webhook.p.events=INACTIVITY", "webhook.p.events = \"INACTIVITY\": expected all, or");
    set_bad("webhook.p.events=", "expected all");
    set_bad("webhook.p.batch=0", "expected an integer between 1 and 1000");
    set_bad("webhook.p.batch=1001", "out of range");
    set_bad("webhook.p.timeout=5ms", "between 10ms and 10m");
    set_bad("webhook.p.timeout=10", "a unit is required");

    /* 16 webhooks fit; the 17th is refused and changes nothing. */
    ls_config_defaults(&c);
    for (int i = 0; i < LS_WEBHOOKS_MAX; i++) {
        snprintf(assign, sizeof assign, "webhook.w%d.url=http://127.0.0.1/%d", i, i);
        set_ok(&c, assign);
    }
    ls_config before = c;
    assert_int_equal(ls_config_set(&c, "webhook.w99.url=http://x/", err, sizeof err), -ENOSPC);
    assert_non_null(strstr(err, "too many webhooks (at most 16)"));
    assert_memory_equal(&c, &before, sizeof c);
    set_ok(&c, "webhook.W3.batch=7"); /* an existing one still can be changed */
    assert_int_equal(c.webhooks[3].batch, 7);

    /* A section without url. */
    ls_config_defaults(&c);
    set_ok(&c, "webhook.lonely.batch=2");
    assert_int_equal(ls_config_validate(&c, err, sizeof err), -EINVAL);
    assert_string_equal(err, "webhook.lonely: url is required");
}

static void test_webhook_file(void **state)
{
    ls_config c, before;
    char path[64], err[512] = "";
    (void)state;

    ls_config_defaults(&c);
    assert_int_equal(ini_load(&c,
                              "[http]\nthreads = 2\n"
                              "[webhook.pager]\nurl = http://127.0.0.1:9999/hook ; the pager\n"
                              "events = INACTIVITY_EVENT, ACTIVITY_EVENT\nsecret = abc\n"
                              "[Webhook.Archive]\nurl = https://example.com/\nbatch = 100\n",
                              path, err, sizeof err),
                     0);
    assert_int_equal(c.http_threads, 2);
    assert_int_equal(c.nwebhooks, 2);
    assert_string_equal(c.webhooks[0].url, "http://127.0.0.1:9999/hook");
    assert_int_equal(c.webhooks[0].events, 3);
    assert_string_equal(c.webhooks[0].secret, "abc");
    assert_string_equal(c.webhooks[1].name, "archive");
    assert_int_equal(c.webhooks[1].batch, 100);

    /* An error in a section names the file, the line and the key; nothing applies. */
    ls_config_defaults(&c);
    before = c;
    assert_true(ini_load(&c, "[webhook.pager]\nurl = http://x/\nbatch = many\n", path, err,
                         sizeof err) < 0);
    assert_non_null(strstr(err, ":3: webhook.pager.batch = \"many\": expected an integer"));
    assert_memory_equal(&c, &before, sizeof c);
    assert_true(
        ini_load(&c, "[webhook.pager]\nurl = http://x/\nretries = 3\n", path, err, sizeof err) < 0);
    assert_non_null(strstr(err, ":3: unknown key \"webhook.pager.retries\""));
    assert_true(ini_load(&c, "[webhook]\nurl = http://x/\n", path, err, sizeof err) < 0);
    assert_non_null(strstr(err, ":2: \"webhook.url\": expected webhook.NAME.key"));
    assert_memory_equal(&c, &before, sizeof c);
}

static void test_webhook_env(void **state)
{
    char *env[] = {
        "LASTSEEN_WEBHOOK_ON_CALL_URL=http://127.0.0.1:1/x",
        "LASTSEEN_WEBHOOK_ON_CALL_EVENTS=inactivity_event",
        "LASTSEEN_WEBHOOK_PAGER_SECRET=k",
        "LASTSEEN_WEBHOOK_PAGER_URL=https://p/",
        NULL,
    };
    char *bad_key[] = {"LASTSEEN_WEBHOOK_PAGER_URI=http://x/", NULL};
    char *no_name[] = {"LASTSEEN_WEBHOOK_URL=http://x/", NULL};
    char *bad_value[] = {"LASTSEEN_WEBHOOK_PAGER_URL=http://x/", "LASTSEEN_WEBHOOK_PAGER_BATCH=x",
                         NULL};
    ls_config c, before;
    char err[512] = "";
    (void)state;

    ls_config_defaults(&c);
    if (ls_config_apply_env(&c, env, err, sizeof err) != 0) fail_msg("env failed: %s", err);
    assert_int_equal(c.nwebhooks, 2);
    assert_string_equal(c.webhooks[0].name, "on_call");
    assert_string_equal(c.webhooks[0].url, "http://127.0.0.1:1/x");
    assert_int_equal(c.webhooks[0].events, 2);
    assert_string_equal(c.webhooks[1].name, "pager");
    assert_string_equal(c.webhooks[1].secret, "k");
    assert_string_equal(c.webhooks[1].url, "https://p/");
    assert_int_equal(ls_config_validate(&c, err, sizeof err), 0);

    ls_config_defaults(&c);
    before = c;
    assert_true(ls_config_apply_env(&c, bad_key, err, sizeof err) < 0);
    assert_non_null(strstr(err, "unknown variable LASTSEEN_WEBHOOK_PAGER_URI"));
    assert_true(ls_config_apply_env(&c, no_name, err, sizeof err) < 0);
    assert_non_null(strstr(err, "unknown variable LASTSEEN_WEBHOOK_URL"));
    assert_true(ls_config_apply_env(&c, bad_value, err, sizeof err) < 0);
    assert_non_null(
        strstr(err, "environment LASTSEEN_WEBHOOK_PAGER_BATCH: webhook.pager.batch = \"x\""));
    assert_memory_equal(&c, &before, sizeof c); /* the layer applies fully or not at all */
}

static void test_webhook_help(void **state)
{
    char *out = capture(ls_config_print_help);
    (void)state;

    assert_non_null(strstr(out, "webhook.NAME.url"));
    assert_non_null(strstr(out, "webhook.NAME.events"));
    assert_non_null(strstr(out, "webhook.NAME.secret"));
    assert_non_null(strstr(out, "webhook.NAME.batch"));
    assert_non_null(strstr(out, "webhook.NAME.timeout"));
    free(out);
    /* docs/configuration.md documents every webhook key by hand. */
    char *doc = file_slurp("docs/configuration.md");
    static const char *const keys[] = {"url", "events", "secret", "batch", "timeout"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "`webhook.NAME.%s`<br>`LASTSEEN_WEBHOOK_NAME_%c", keys[i],
                 keys[i][0] - 32);
        if (!strstr(doc, want)) fail_msg("docs/configuration.md lacks webhook.NAME.%s", keys[i]);
    }
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),       cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),     cmocka_unit_test(test_parse_bool),
        cmocka_unit_test(test_int_keys),       cmocka_unit_test(test_duration_size_keys),
        cmocka_unit_test(test_bool_enum_keys), cmocka_unit_test(test_string_keys),
        cmocka_unit_test(test_cluster_keys),   cmocka_unit_test(test_set_errors),
        cmocka_unit_test(test_set_key),        cmocka_unit_test(test_file_good),
        cmocka_unit_test(test_file_empty),     cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_file_long_line), cmocka_unit_test(test_file_long_line_fits),
        cmocka_unit_test(test_file_missing),   cmocka_unit_test(test_env),
        cmocka_unit_test(test_env_errors),     cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_help),           cmocka_unit_test(test_markdown),
        cmocka_unit_test(test_docs_agree),     cmocka_unit_test(test_example_file),
        cmocka_unit_test(test_event_types),    cmocka_unit_test(test_webhook_set),
        cmocka_unit_test(test_webhook_errors), cmocka_unit_test(test_webhook_file),
        cmocka_unit_test(test_webhook_env),    cmocka_unit_test(test_webhook_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
