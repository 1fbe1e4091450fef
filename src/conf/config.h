/*
 * config.h - lastseen's configuration: one table, four layers.
 *
 * Every key is one row of the table in config.c (name, type, default,
 * bounds, doc line); the INI parser, --set, the LASTSEEN_SECTION_KEY
 * environment variables, --help and docs/configuration.md are all driven by
 * it, so they cannot disagree.  Precedence: --set > env > file > default.
 */
#ifndef LS_CONFIG_H
#define LS_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/log.h"
#include "mqtt/client.h"

/*
 * A [webhook.NAME] section: its own small key table in config.c.  NAME is
 * 1..LS_WEBHOOK_NAME_MAX letters, digits, '_' or '-', case-insensitive
 * (kept in lower case, so LASTSEEN_WEBHOOK_PAGER_URL and [webhook.pager]
 * name the same webhook).
 */
#define LS_WEBHOOKS_MAX 16
#define LS_WEBHOOK_NAME_MAX 32
typedef struct ls_webhook_config {
    char name[LS_WEBHOOK_NAME_MAX + 1];
    char url[1024];   /* http:// or https:// */
    int64_t events;   /* bit (1 << ls_event_type) per event type sent */
    char secret[256]; /* "" = no signature */
    int64_t batch;    /* events per POST, 1 = the body is one event */
    int64_t timeout;  /* ms, for one POST */
} ls_webhook_config;

typedef struct ls_config {
    char http_listen[256];                        /* http.listen, host:port */
    int64_t http_max_body;                        /* http.max_body, bytes */
    int64_t http_threads;                         /* http.threads */
    int64_t http_max_streams;                     /* open event streams at most */
    int64_t http_stream_max_backlog;              /* events a stream may fall behind */
    int64_t http_stream_keepalive;                /* ms between keep-alive comments */
    int64_t http_max_connections;                 /* open at once, all clients */
    int64_t http_max_connections_per_ip;          /* open at once from one address, 0 = no cap */
    int64_t http_header_timeout;                  /* ms for a request's headers to arrive */
    char http_tls_cert[1024];                     /* PEM certificate chain; "" = plain HTTP */
    char http_tls_key[1024];                      /* PEM private key of http_tls_cert */
    int http_reporting_strategy;                  /* ls_report_strategy */
    int64_t http_reporting_period;                /* ms */
    int http_auth;                                /* LS_HTTP_AUTH_* */
    int http_auth_healthz;                        /* bool: /healthz needs a credential */
    int http_auth_metrics;                        /* bool: /metrics needs one (scope read) */
    int audit_events;                             /* LS_AUDIT_* */
    char data_dir[4096];                          /* store.data_dir */
    int64_t store_flush_interval;                 /* ms */
    int64_t store_commit_wait;                    /* ms */
    int64_t store_shutdown_wait;                  /* ms */
    int64_t store_max_size;                       /* bytes, 0 = no cap */
    int store_sync;                               /* bool */
    int64_t engine_shards;                        /* 0 = one per online core */
    int64_t state_default_inactivity_timeout;     /* ms */
    int64_t state_max_clock_skew;                 /* ms */
    int64_t state_max_devices;                    /* 0 = unlimited */
    int state_restart_policy;                     /* 0 grace, 1 strict (ls_restart_policy) */
    char udp_listen[256];                         /* udp.listen, "" = off */
    int64_t udp_rcvbuf;                           /* bytes */
    int udp_auth;                                 /* LS_UDP_AUTH_* */
    char udp_keys_file[1024];                     /* "<source> <hex key>" lines */
    int64_t udp_auth_window;                      /* ms a signed ts may lie in the past */
    int state_monitor_by_default;                 /* bool */
    int64_t availability_grace;                   /* ms */
    int64_t transport_session_inactivity_timeout; /* ms, 0 = never */
    int alarms_enabled;                           /* bool */
    int64_t alarms_retention;                     /* ms */
    int events_stdout;                            /* bool */
    int64_t events_retention;                     /* ms */
    char events_file[4096]; /* events.file, relative to data_dir unless absolute */
    int log_level;          /* LS_LOG_* */
    ls_webhook_config webhooks[LS_WEBHOOKS_MAX];
    int nwebhooks;

    /* [mqtt]: off while host is empty (see src/in/mqtt.c). */
    char mqtt_host[256];
    int64_t mqtt_port;
    int mqtt_protocol; /* LS_MQTT_V311, LS_MQTT_V5 */
    char mqtt_client_id[128];
    char mqtt_username[256];
    char mqtt_password[256];
    char mqtt_cafile[1024];
    char mqtt_certfile[1024];
    char mqtt_keyfile[1024];
    int mqtt_tls_insecure;
    int64_t mqtt_keepalive; /* ms */
    int64_t mqtt_qos;
    int mqtt_clean_session;
    int64_t mqtt_session_expiry; /* ms, MQTT 5 */
    char mqtt_topics[4096];
    char mqtt_payload_ts[128];
    char mqtt_status_topic[520];
    char mqtt_online_payload[64];
    char mqtt_offline_payload[64];
    int mqtt_sparkplug;
    char mqtt_event_topic[520];
    char mqtt_state_topic[520];
    int mqtt_gate;
    int64_t mqtt_reconnect_min; /* ms */
    int64_t mqtt_reconnect_max; /* ms */
    char mqtt_sync_topic[520];
    int64_t mqtt_sync_timeout; /* ms */

    /* [cluster]: off while nats is empty (src/cluster/, docs/cluster.md). */
    char cluster_nats[1024];         /* comma-separated nats:// URLs */
    char cluster_node[65];           /* "" = the host name */
    int64_t cluster_partitions;      /* 1..1024 */
    int64_t cluster_lease_ttl;       /* ms */
    int64_t cluster_input_retention; /* ms */
} ls_config;

enum { LS_MQTT_V311 = 0, LS_MQTT_V5 };
enum { LS_UDP_AUTH_OFF = 0, LS_UDP_AUTH_HMAC };
enum { LS_HTTP_AUTH_ON = 0, LS_HTTP_AUTH_OFF };
enum { LS_AUDIT_AUTO = 0, LS_AUDIT_ON, LS_AUDIT_OFF };

/* The [mqtt] connection options of c, borrowing c's strings. */
void ls_config_mqtt_opts(const ls_config *c, ls_mqtt_opts *o);

/* Fills every key with its default. */
void ls_config_defaults(ls_config *c);

/*
 * Loads an INI file over *c.  On error returns a negative code and writes one
 * line into err naming the file, line, key, value and what is allowed.
 */
int ls_config_load_file(ls_config *c, const char *path, char *err, size_t errlen);

/* Applies LASTSEEN_SECTION_KEY variables from envp (NULL-terminated). */
int ls_config_apply_env(ls_config *c, char *const *envp, char *err, size_t errlen);

/* Applies one "section.key=value" assignment (from --set). */
int ls_config_set(ls_config *c, const char *assignment, char *err, size_t errlen);

/* Applies one key by name ("section.key"); `origin` prefixes error messages. */
int ls_config_set_key(ls_config *c, const char *name, const char *value, const char *origin,
                      char *err, size_t errlen);

/*
 * Checks what single keys cannot: every webhook has a url, http.tls_cert
 * and http.tls_key are both set or neither, udp.auth = hmac has a
 * udp.keys_file.  Call after the last layer.  0, or -EINVAL with one line in err.
 */
int ls_config_validate(const ls_config *c, char *err, size_t errlen);

/* Parses a list of event type names (commas and/or blanks between them,
 * any case, or "all") into a bit mask (1 << ls_event_type).  0 or -EINVAL. */
int ls_parse_event_types(const char *s, int64_t *mask);

/* Writes the key table for --help, and as the Markdown of docs/configuration.md. */
void ls_config_print_help(FILE *f);
void ls_config_print_markdown(FILE *f);

/* Value parsers shared with the rest of the daemon (0 or negative). */
int ls_parse_duration_ms(const char *s, int64_t *out); /* "250ms", "30s", "10m", "2h", "1d" */
int ls_parse_size(const char *s, int64_t *out);        /* "512", "64KiB", "16MiB", "1GiB" */
int ls_parse_bool(const char *s, int *out);            /* true/false/yes/no/on/off/1/0 */

#endif
