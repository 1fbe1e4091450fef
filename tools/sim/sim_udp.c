/*
 * sim_udp.c - lastseen-sim's UDP transport: heartbeat lines "<id> <ts>\n"
 * (docs/api.md, UDP heartbeats), packed into datagrams of at most
 * DATAGRAM_MAX bytes, sent on one connected socket.  With --udp-keys and
 * --udp-source, each line is signed "<id> <ts> <source>:<mac>" by the
 * daemon's own code (src/in/udp_auth.c).
 *
 * UDP gets no answer: a report is "accepted" once the kernel took its
 * datagram, "failed" when sending it failed (ECONNREFUSED from an earlier
 * datagram, a full buffer...).  What the daemon really applied is in its
 * stats ("udp").  Ids with a space cannot be sent this way and are counted
 * as rejected.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "in/udp_auth.h"
#include "sim.h"

/* Fits an Ethernet MTU with IP and UDP headers, so nothing is fragmented. */
#define DATAGRAM_MAX 1400

typedef struct udp_out {
    sim_out base;
    int fd;
    char where[300];
    ls_udp_keys *keys;
    const ls_udp_key *key; /* signs, when set */
} udp_out;

static void udp_flush(udp_out *u, const char *buf, size_t len, size_t lines, sim_result *res)
{
    if (!len) return;
    if (send(u->fd, buf, len, 0) == (ssize_t)len) {
        res->accepted += lines;
        return;
    }
    res->failed += lines;
    snprintf(res->error, sizeof(res->error), "UDP %s: %s", u->where, strerror(errno));
}

static int udp_send(sim_out *o, const sim_batch *b, sim_result *res)
{
    udp_out *u = (udp_out *)o;
    char buf[DATAGRAM_MAX], line[400];
    size_t len = 0, lines = 0;
    for (size_t i = 0; i < b->n; i++) {
        int n;
        if (u->key) {
            n = (int)ls_udp_sign(u->key, b->ids[i], strlen(b->ids[i]), b->ts, line,
                                 sizeof(line) - 1);
            if (n > 0) line[n++] = '\n';
        } else {
            n = snprintf(line, sizeof(line), "%s %lld\n", b->ids[i], (long long)b->ts);
        }
        if (n <= 0 || (size_t)n >= sizeof(line) || strchr(b->ids[i], ' ')) {
            res->rejected++;
            snprintf(res->error, sizeof(res->error),
                     "UDP: id %.64s cannot be sent as a heartbeat line", b->ids[i]);
            continue;
        }
        if (len + (size_t)n > sizeof(buf)) {
            udp_flush(u, buf, len, lines, res);
            len = lines = 0;
        }
        memcpy(buf + len, line, (size_t)n);
        len += (size_t)n;
        lines++;
    }
    udp_flush(u, buf, len, lines, res);
    return 0;
}

static void udp_close(sim_out *o)
{
    udp_out *u = (udp_out *)o;
    if (!u) return;
    if (u->fd >= 0) close(u->fd);
    ls_udp_keys_free(u->keys);
    free(u);
}

int sim_udp_open(sim_out **out, const char *url, const char *keys_path, const char *source)
{
    const char *hp = strncmp(url, "udp://", 6) == 0 ? url + 6 : NULL;
    const char *colon = hp ? strrchr(hp, ':') : NULL;
    char host[256];
    if (!colon || colon == hp || (size_t)(colon - hp) >= sizeof(host) || !colon[1]) {
        fprintf(stderr, "lastseen-sim: --url %s: expected udp://HOST:PORT\n", url);
        return -EINVAL;
    }
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
    if (host[0] == '[' && strlen(host) > 2 && host[strlen(host) - 1] == ']') { /* [v6] */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *ai;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc) {
        fprintf(stderr, "lastseen-sim: --url %s: %s\n", url, gai_strerror(rc));
        return -EINVAL;
    }
    udp_out *u = calloc(1, sizeof(*u));
    if (!u) {
        freeaddrinfo(ai);
        return -ENOMEM;
    }
    u->base.send = udp_send;
    u->base.close = udp_close;
    if (keys_path) {
        char err[256];
        if (ls_udp_keys_load(keys_path, &u->keys, err, sizeof(err)) < 0 ||
            !(u->key = ls_udp_keys_signer(u->keys, source))) {
            fprintf(stderr, "lastseen-sim: --udp-keys %s: %s\n", keys_path,
                    u->keys ? "no key of --udp-source in it" : err);
            freeaddrinfo(ai);
            udp_close(&u->base);
            return -EINVAL;
        }
    }
    snprintf(u->where, sizeof(u->where), "%.250s", hp);
    u->fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (u->fd < 0 || connect(u->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        fprintf(stderr, "lastseen-sim: UDP %s: %s\n", hp, strerror(errno));
        freeaddrinfo(ai);
        udp_close(&u->base);
        return -EIO;
    }
    freeaddrinfo(ai);
    *out = &u->base;
    return 0;
}
