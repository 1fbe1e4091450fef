/*
 * sim.h - lastseen-sim, a device fleet simulator: what its parts share.
 *
 * sim.c owns the fleet, the schedule, the rate limit and the status line;
 * the transports (sim_http.c, sim_mqtt.c, sim_udp.c) only deliver a batch
 * of reports and say how it went.
 */
#ifndef LS_SIM_H
#define LS_SIM_H

#include <stddef.h>
#include <stdint.h>

/* One tick's reports: `n` device ids, each NUL-terminated. */
typedef struct sim_batch {
    const char **ids;
    size_t n;
    int64_t ts; /* wall ms the reports are stamped with */
} sim_batch;

/* How a batch went: items the receiver took, items it refused, items that
 * never got there (connection refused, timeout, 5xx...). */
typedef struct sim_result {
    uint64_t accepted, rejected, failed;
    char error[512]; /* the last failure, "" if none */
} sim_result;

typedef struct sim_out sim_out;
struct sim_out {
    int (*send)(sim_out *o, const sim_batch *b, sim_result *res);
    void (*close)(sim_out *o);
};

/* HTTP: POST /api/v1/activity, one request per batch, one kept-alive
 * connection.  `base` is e.g. "http://127.0.0.1:8080".  0 or negative. */
int sim_http_open(sim_out **out, const char *base);

/* MQTT: one publish per report on `topic` ("{id}" replaced by the id), to the
 * broker at `url` ("mqtt://host:port").  -ENOTSUP if built without
 * libmosquitto. */
int sim_mqtt_open(sim_out **out, const char *url, const char *topic, const char *client_id);

/* UDP: heartbeat lines "<id> <ts>" packed into datagrams, to `url`
 * ("udp://host:port"); with a key file (the daemon's udp.keys_file format)
 * and a source in it, each line signed "<id> <ts> <source>:<mac>" with the
 * source's first key.  0 or negative (the reason printed). */
int sim_udp_open(sim_out **out, const char *url, const char *keys_path, const char *source);

/* The device API for configuration: PUT {"inactivityTimeout": ms} on one
 * device over its own kept-alive connection.  0, or negative with `err` set. */
typedef struct sim_api sim_api;
int sim_api_open(sim_api **out, const char *base);
int sim_api_set_timeout(sim_api *a, const char *id, int64_t timeout_ms, char *err, size_t errlen);
void sim_api_close(sim_api *a);

/* Appends s as a JSON string (quotes included) / percent-encoded (every byte
 * outside A-Z a-z 0-9 - . _ ~); returns the new length, or -1 if cap is hit. */
long sim_json_str(char *out, size_t off, size_t cap, const char *s);
long sim_pct_encode(char *out, size_t off, size_t cap, const char *s);

#endif
