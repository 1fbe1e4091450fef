/*
 * fuzz_input.c - libFuzzer target for the parsers of outside input that
 * need no running daemon: device id validation, strict percent-decoding of
 * paths and query parameters, request-body JSON parsing (with the
 * big-integer fallback; the clamped Cumulocity responseInterval), the
 * configuration value parsers, --set
 * assignments (webhook sections included), event type lists, reading
 * type and device back from event lines, the line parser of `lastseen
 * import`, the UDP heartbeat line parser, signed UDP heartbeat lines
 * (udp.auth = hmac: against a fixed key table, and the lines the fuzzer
 * finds signed again with a key of it), the UDP key file parser, MQTT topic
 * patterns (parse, then match the input against a fixed pattern and
 * against itself), Sparkplug B messages (topic and protobuf payload), the
 * Authorization header (parsed, then checked against a fixed set of
 * tokens: bearer and Basic), the token file and scope lists, and cluster
 * mode's input messages: a device token read back into its id (and
 * encoded again), the subject ls.in.<p>.<token> and the `Ls` header.
 *
 *   make fuzz            # builds build-fuzz/fuzz_input with clang
 *   build-fuzz/fuzz_input -max_total_time=60
 *
 * The first input byte picks the parser; the rest is its input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/tokens.h"
#include "conf/config.h"
#include "app/export.h"
#include "engine/engine.h"
#include "mqtt/topic.h"
#include "in/sparkplug.h"
#include "in/udp.h"
#include "in/udp_auth.h"
#include "core/device_in.h"
#include "core/format.h"
#include "cluster/msg.h"
#include "cluster/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void sp_cb(void *ud, ls_sp_op op, const char *id, size_t len, int retained)
{
    (void)ud;
    (void)retained;
    if ((unsigned)op > LS_SP_OFFLINE || len == 0 || len > 1024 || memchr(id, '\0', len)) abort();
}

/* A match's device level lies inside the topic and holds no '/'. */
static void match_check(const ls_topic_pattern *pat, const char *t, size_t n)
{
    const char *dev;
    size_t dl;
    if (ls_topic_match(pat, t, n, &dev, &dl) &&
        (dev < t || dev + dl > t + n || memchr(dev, '/', dl)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    char *s = malloc(n + 1);
    if (!s) return 0;
    memcpy(s, p, n);
    s[n] = '\0';
    switch (data[0] % 19) {
    case 0: {
        const char *why = ls_id_check(p, n);
        /* A valid id never holds a control byte. */
        if (!why)
            for (size_t i = 0; i < n; i++)
                if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) abort();
        break;
    }
    case 1: {
        char *out = malloc(n + 1);
        size_t len;
        if (out && ls_api_pct_decode(p, n, out, &len) == 0 && len > n) abort();
        free(out);
        break;
    }
    case 2: {
        json_error_t err;
        json_t *j = ls_api_json_parse(p, n, JSON_DECODE_ANY, &err);
        int ri;
        /* Whatever number came in, a responseInterval is within Cumulocity's range. */
        if (j && ls_json_response_interval(j, &ri) == 0 && (ri < LS_RI_MIN || ri > LS_RI_MAX))
            abort();
        json_decref(j);
        break;
    }
    case 3: {
        int64_t v;
        if (ls_parse_duration_ms(s, &v) == 0 && v < 0) abort();
        if (ls_parse_size(s, &v) == 0 && v < 0) abort();
        break;
    }
    case 4: {
        int b;
        (void)ls_parse_bool(s, &b);
        break;
    }
    case 5: {
        char why[256];
        ls_store_batch *b = ls_store_batch_new();
        /* A refused line adds nothing and always says why; an accepted one adds one device. */
        int rc = b ? ls_import_line(b, p, n, why, sizeof(why)) : 0;
        if (b && rc < 0 && (ls_store_batch_ops(b) != 0 || !why[0])) abort();
        if (b && rc == 0 && ls_store_batch_ops(b) != 1) abort();
        ls_store_batch_free(b);
        break;
    }
    case 6: {
        /* A UDP heartbeat line: an accepted id is valid and inside the line. */
        const char *id;
        size_t len;
        int64_t ts;
        ls_udp_reject why;
        int rc = ls_udp_parse_line(p, n, &id, &len, &ts, &why);
        if (rc == 0 && (id < p || id + len > p + n || ls_id_check(id, len) || ts < 0)) abort();
        if (rc < 0 && (unsigned)why >= LS_UDP__REJECTS) abort();
        break;
    }
    case 7: {
        int64_t m;
        if (ls_parse_event_types(s, &m) == 0 && (m < 1 || m > ((int64_t)1 << LS_EV__COUNT) - 1))
            abort();
        break;
    }
    case 8: {
        ls_config *c = malloc(sizeof(*c));
        char err[512];
        if (!c) break;
        ls_config_defaults(c);
        (void)ls_config_set(c, s, err, sizeof(err));
        (void)ls_config_validate(c, err, sizeof(err));
        if (c->nwebhooks < 0 || c->nwebhooks > LS_WEBHOOKS_MAX) abort();
        free(c);
        break;
    }
    case 9: {
        const char *dev = NULL;
        size_t dev_len = 0;
        int t = ls_format_event_peek(p, n, &dev, &dev_len);
        if (t >= LS_EV__COUNT || (t >= 0 && (dev < p || dev + dev_len > p + n))) abort();
        break;
    }
    case 10: {
        static ls_topic_pattern fixed, own;
        const char *why;
        if (!fixed.nlevels) ls_topic_pattern_parse(&fixed, "sensors/+/{device}/#", 20, &why);
        match_check(&fixed, p, n);
        if (ls_topic_pattern_parse(&own, p, n, &why) == 0) {
            if (own.device < 0 || strlen(own.filter) > n) abort();
            match_check(&own, p, n);
        }
        ls_buf b;
        ls_buf_init(&b, 1 << 16);
        if (ls_topic_expand(&b, "x/{device}", p, n) == 0 &&
            (memchr(b.p, '+', b.len) || memchr(b.p, '#', b.len)))
            abort();
        ls_buf_free(&b);
        break;
    }
    case 12: {
        /* A signed UDP heartbeat line.  An accepted one has a valid id inside
         * the line and a ts within the window; the same id and ts signed
         * with the key of "gw-1" are accepted too. */
        static ls_udp_keys *keys;
        static const char kf[] =
            "gw-1 000102030405060708090a0b0c0d0e0f\n"
            "gw-1 101112131415161718191a1b1c1d1e1f\nfleet.b "
            "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f\n";
        char err[128], line[512];
        if (!keys && ls_udp_keys_parse(kf, sizeof(kf) - 1, &keys, err, sizeof(err)) < 0) abort();
        const int64_t now = 1732255200000, back = 300000, ahead = 5000;
        const char *id;
        size_t len;
        int64_t ts;
        ls_udp_reject why;
        int rc = ls_udp_parse_signed(keys, p, n, now, back, ahead, &id, &len, &ts, &why);
        if (rc == 0 && (id < p || id + len > p + n || ls_id_check(id, len) || ts < now - back ||
                        ts > now + ahead))
            abort();
        if (rc < 0 && (unsigned)why >= LS_UDP__REJECTS) abort();
        if (rc < 0 && why == LS_UDP_OUT_OF_WINDOW) {
            /* Authentic but stale: re-signed inside the window, it passes. */
            size_t k =
                ls_udp_sign(ls_udp_keys_signer(keys, "gw-1"), id, len, now, line, sizeof(line));
            if (k && ls_udp_parse_signed(keys, line, k, now, back, ahead, &id, &len, &ts, &why))
                abort();
        }
        break;
    }
    case 13: {
        /* The UDP key file: a table that parses has keys; a refusal says why. */
        ls_udp_keys *k = NULL;
        char err[128] = "";
        if (ls_udp_keys_parse(p, n, &k, err, sizeof(err)) == 0) {
            size_t sources, nkeys = ls_udp_keys_count(k, &sources);
            if (!nkeys || !sources || sources > nkeys || nkeys > LS_UDP_KEYS_MAX) abort();
        } else if (k || !err[0]) {
            abort();
        }
        ls_udp_keys_free(k);
        break;
    }
    case 11: {
        /* A topic line, then the payload. */
        static ls_sparkplug *sp;
        if (!sp && ls_sparkplug_new(&sp) < 0) break;
        const char *nl = memchr(p, '\n', n);
        size_t tl = nl ? (size_t)(nl - p) : n;
        char topic[256];
        int k = snprintf(topic, sizeof(topic), "spBv1.0/%.*s", (int)(tl < 200 ? tl : 200), p);
        if (memchr(topic, '\0', (size_t)k)) break;
        const char *pl = nl ? nl + 1 : p + n;
        ls_sparkplug_message(sp, topic, (size_t)k, pl, (size_t)(p + n - pl), 0, sp_cb, NULL);
        break;
    }
    case 17: {
        /* An Authorization header: what it names lies inside it (or the
         * Basic buffer), and no guess gets a token of a fixed set. */
        static ls_tokens set;
        static char text[LS_TOKEN_TEXT_LEN + 1];
        if (!set.n && ls_tokens_add(&set, "ops", LS_SCOPES_ALL, 1, text) < 0) break;
        ls_auth_cred c;
        int rc = ls_auth_parse(s, &c);
        if (rc == 0 && c.kind == LS_CRED_BEARER &&
            (c.token < s || c.token + c.token_len > s + n ||
             ls_tokens_check(&set, c.token, c.token_len)))
            abort();
        if (rc == 0 && c.kind == LS_CRED_BASIC &&
            (c.name < c.buf || c.token + c.token_len > c.buf + sizeof(c.buf) ||
             ls_tokens_check_named(&set, c.name, c.name_len, c.token, c.token_len)))
            abort();
        if (rc == 0 && c.kind != LS_CRED_BEARER && c.kind != LS_CRED_BASIC &&
            c.kind != LS_CRED_NONE)
            abort();
        break;
    }
    case 18: {
        /* A token file and a scope list. */
        ls_tokens t = {0};
        char why[256];
        unsigned scopes;
        if (ls_tokens_parse(&t, p, n, why, sizeof(why)) == 0) {
            for (size_t i = 0; i < t.n; i++)
                if (ls_token_name_check(t.v[i].name, strlen(t.v[i].name)) ||
                    !(t.v[i].scopes & LS_SCOPES_ALL) || (t.v[i].scopes & ~LS_SCOPES_ALL))
                    abort();
        } else if (t.n || !why[0]) {
            abort();
        }
        ls_tokens_free(&t);
        if (ls_scopes_parse(s, &scopes) == 0 && (!scopes || (scopes & ~LS_SCOPES_ALL))) abort();
        break;
    }
    case 14: {
        /* A token read back is a valid id whose token is the input itself. */
        char id[LS_ID_BUF], tok[LS_TOKEN_BUF];
        size_t len;
        if (ls_token_decode(p, n, id, &len) == 0) {
            if (ls_id_check(id, len)) abort();
            size_t tn = ls_token_encode(id, len, tok);
            if (tn != n || memcmp(tok, p, n) != 0) abort();
        }
        break;
    }
    case 15: {
        unsigned part;
        const char *tok;
        size_t tn;
        if (ls_msg_parse_subject(p, n, 64, &part, &tok, &tn) == 0 &&
            (part >= 64 || tok < p || tok + tn > p + n || tn == 0 || memchr(tok, '.', tn)))
            abort();
        break;
    }
    case 16: {
        /* A header read back is written as a value that reads the same. */
        ls_msg_item it, again;
        char h[LS_MSG_HEADER_BUF];
        if (ls_msg_parse_header(p, n, &it) == 0) {
            size_t hn = ls_msg_header(h, it.kind, it.ts);
            if (it.ts < 0 || (!hn && (it.kind || it.ts))) abort();
            if (hn && (ls_msg_parse_header(h, hn, &again) < 0 || again.kind != it.kind ||
                       again.ts != it.ts))
                abort();
        }
        break;
    }
    }
    free(s);
    return 0;
}
