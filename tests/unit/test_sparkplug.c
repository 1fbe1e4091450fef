/*
 * test_sparkplug.c - Sparkplug B presence (src/in/sparkplug.c).
 *
 * Payloads are encoded here by hand in the protobuf wire format, with the
 * fields a real Sparkplug B payload carries and lastseen's .proto does not
 * declare (timestamps, seq, a string metric), so decoding is tested against
 * the wire format, not against the decoder's own schema.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "in/sparkplug.h"

typedef struct enc {
    uint8_t b[512];
    size_t n;
} enc;

static void varint(enc *e, uint64_t v)
{
    do {
        uint8_t c = v & 0x7f;
        v >>= 7;
        e->b[e->n++] = (uint8_t)(c | (v ? 0x80 : 0));
    } while (v);
}

static void field_varint(enc *e, unsigned num, uint64_t v)
{
    varint(e, num << 3);
    varint(e, v);
}

static void field_bytes(enc *e, unsigned num, const void *p, size_t n)
{
    varint(e, (num << 3) | 2);
    varint(e, n);
    memcpy(e->b + e->n, p, n);
    e->n += n;
}

/* A metric {name, timestamp, datatype, value} with long_value (11) or int_value (10). */
static void metric(enc *payload, const char *name, uint64_t value, int as_int)
{
    enc m = {.n = 0};
    field_bytes(&m, 1, name, strlen(name));
    field_varint(&m, 3, 1700000000000ULL);
    field_varint(&m, 4, as_int ? 3 : 8);
    field_varint(&m, as_int ? 10 : 11, value);
    field_bytes(payload, 2, m.b, m.n);
}

static enc payload(int with_bdseq, uint64_t bdseq)
{
    enc p = {.n = 0};
    field_varint(&p, 1, 1700000000000ULL); /* timestamp */
    enc s = {.n = 0};                      /* a string metric first */
    field_bytes(&s, 1, "Node Info/Name", 14);
    field_varint(&s, 4, 12);
    field_bytes(&s, 15, "pump station", 12);
    field_bytes(&p, 2, s.b, s.n);
    if (with_bdseq) metric(&p, "bdSeq", bdseq, 0);
    field_varint(&p, 3, 0); /* seq */
    return p;
}

typedef struct got {
    int n;
    ls_sp_op op[32];
    char id[32][128];
} got;

static void cb(void *ud, ls_sp_op op, const char *id, size_t len, int retained)
{
    got *g = ud;
    (void)retained;
    assert_true(g->n < 32);
    g->op[g->n] = op;
    snprintf(g->id[g->n], sizeof(g->id[0]), "%.*s", (int)len, id);
    g->n++;
}

static int msg(ls_sparkplug *sp, got *g, const char *topic, const enc *p)
{
    return ls_sparkplug_message(sp, topic, strlen(topic), p ? p->b : (const uint8_t *)"",
                                p ? p->n : 0, 0, cb, g);
}

static void test_bdseq_decode(void **state)
{
    (void)state;
    uint64_t v = 0;
    enc p = payload(1, 42);
    assert_int_equal(ls_sparkplug_bdseq(p.b, p.n, &v), 1);
    assert_int_equal(v, 42);
    enc q = payload(0, 0);
    assert_int_equal(ls_sparkplug_bdseq(q.b, q.n, &v), 0);
    enc r = {.n = 0};
    metric(&r, "bdSeq", 7, 1); /* as int_value */
    assert_int_equal(ls_sparkplug_bdseq(r.b, r.n, &v), 1);
    assert_int_equal(v, 7);
    assert_int_equal(ls_sparkplug_bdseq("", 0, &v), 0); /* empty: a valid empty payload */
    assert_int_equal(ls_sparkplug_bdseq("\xff\xff\xff", 3, &v), -1);
    assert_int_equal(ls_sparkplug_bdseq("\x12\x50zz", 4, &v), -1); /* length past the end */
    enc t = payload(1, 1);
    assert_int_equal(ls_sparkplug_bdseq(t.b, t.n - 3, &v), -1); /* truncated */
}

static void test_births_deaths(void **state)
{
    (void)state;
    ls_sparkplug *sp;
    got g = {0};
    assert_int_equal(ls_sparkplug_new(&sp), 0);
    enc b1 = payload(1, 1), b2 = payload(1, 2), none = payload(0, 0);

    assert_int_equal(msg(sp, &g, "spBv1.0/G/NBIRTH/N", &b1), 1);
    assert_int_equal(msg(sp, &g, "spBv1.0/G/DBIRTH/N/D1", &none), 1);
    assert_int_equal(msg(sp, &g, "spBv1.0/G/DBIRTH/N/D2", &none), 1);
    assert_int_equal(msg(sp, &g, "spBv1.0/G/DBIRTH/N/D2", &none), 1); /* twice: remembered once */
    assert_int_equal(msg(sp, &g, "spBv1.0/G/DDATA/N/D1", NULL), 1);
    assert_int_equal(msg(sp, &g, "spBv1.0/G/NDATA/N", NULL), 1);
    assert_int_equal(g.op[0], LS_SP_ONLINE);
    assert_string_equal(g.id[0], "G/N");
    assert_string_equal(g.id[1], "G/N/D1");
    assert_int_equal(g.op[4], LS_SP_ACTIVITY);
    assert_string_equal(g.id[4], "G/N/D1");
    assert_string_equal(g.id[5], "G/N");

    /* Rebirth with bdSeq 2; the old Will (bdSeq 1) arrives late: stale. */
    g.n = 0;
    assert_int_equal(msg(sp, &g, "spBv1.0/G/NBIRTH/N", &b2), 1);
    assert_int_equal(msg(sp, &g, "spBv1.0/G/NDEATH/N", &b1), -1);
    assert_int_equal(g.n, 1);
    ls_sparkplug_stats st;
    ls_sparkplug_get_stats(sp, &st);
    assert_int_equal(st.stale_deaths, 1);

    /* D1 dies alone, then the node: D2 and the node go offline. */
    g.n = 0;
    assert_int_equal(msg(sp, &g, "spBv1.0/G/DDEATH/N/D1", &none), 1);
    assert_int_equal(msg(sp, &g, "spBv1.0/G/NDEATH/N", &b2), 2);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.id[0], "G/N/D1");
    assert_int_equal(g.op[1], LS_SP_OFFLINE);
    assert_string_equal(g.id[1], "G/N/D2");
    assert_string_equal(g.id[2], "G/N");

    /* A second death: no device left to fan out to. */
    g.n = 0;
    assert_int_equal(msg(sp, &g, "spBv1.0/G/NDEATH/N", &b2), 1);
    /* A death without bdSeq, or of a node never born, is taken at its word. */
    assert_int_equal(msg(sp, &g, "spBv1.0/G/NDEATH/N", &none), 1);
    assert_int_equal(msg(sp, &g, "spBv1.0/G/NDEATH/Other", &b1), 1);
    assert_int_equal(g.n, 3);
    ls_sparkplug_get_stats(sp, &st);
    assert_int_equal(st.births, 5);
    assert_int_equal(st.deaths, 6);
    ls_sparkplug_free(sp);
}

static void test_bad_and_ignored(void **state)
{
    (void)state;
    ls_sparkplug *sp;
    got g = {0};
    enc garbage = {.b = {0xff, 0xff, 0xff, 0xff}, .n = 4}, ok = payload(1, 1);
    assert_int_equal(ls_sparkplug_new(&sp), 0);
    assert_int_equal(msg(sp, &g, "spBv1.0/G/NBIRTH/N", &garbage), -1);
    assert_int_equal(msg(sp, &g, "spBv1.0/G/DDEATH/N/D", &garbage), -1);
    assert_int_equal(msg(sp, &g, "spBv1.0/G/NCMD/N", &ok), -1);
    assert_int_equal(msg(sp, &g, "spBv1.0/G/DCMD/N/D", &ok), -1);
    assert_int_equal(msg(sp, &g, "spBv1.0/STATE/host-1", &ok), -1);
    assert_int_equal(msg(sp, &g, "spBv1.0/G/NFOO/N", &ok), -1);
    assert_int_equal(msg(sp, &g, "spBv1.0/G/NBIRTH", &ok), -1);     /* no node */
    assert_int_equal(msg(sp, &g, "spBv1.0/G/NBIRTH/N/X", &ok), -1); /* a node type with a device */
    assert_int_equal(msg(sp, &g, "spBv1.0/G/DBIRTH/N", &ok), -1);   /* a device type without */
    assert_int_equal(msg(sp, &g, "spBv1.0/G/DDATA/N/D/extra", &ok), -1);
    assert_int_equal(msg(sp, &g, "spBv1.0/G", &ok), -1);
    assert_int_equal(g.n, 0);
    ls_sparkplug_stats st;
    ls_sparkplug_get_stats(sp, &st);
    assert_int_equal(st.bad_payloads, 2);
    assert_int_equal(st.ignored, 4);
    assert_int_equal(st.bad_topics, 5);
    ls_sparkplug_free(sp);
}

/* Many nodes: the table grows, every node keeps its own bdSeq. */
static void test_many_nodes(void **state)
{
    (void)state;
    ls_sparkplug *sp;
    got g = {0};
    char topic[64];
    assert_int_equal(ls_sparkplug_new(&sp), 0);
    for (int i = 0; i < 5000; i++) {
        enc b = payload(1, (uint64_t)i);
        snprintf(topic, sizeof(topic), "spBv1.0/G/NBIRTH/n%d", i);
        g.n = 0;
        assert_int_equal(msg(sp, &g, topic, &b), 1);
    }
    for (int i = 0; i < 5000; i++) {
        enc wrong = payload(1, (uint64_t)i + 1), right = payload(1, (uint64_t)i);
        snprintf(topic, sizeof(topic), "spBv1.0/G/NDEATH/n%d", i);
        g.n = 0;
        assert_int_equal(msg(sp, &g, topic, &wrong), -1);
        assert_int_equal(msg(sp, &g, topic, &right), 1);
    }
    ls_sparkplug_stats st;
    ls_sparkplug_get_stats(sp, &st);
    assert_int_equal(st.stale_deaths, 5000);
    ls_sparkplug_free(sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bdseq_decode),
        cmocka_unit_test(test_births_deaths),
        cmocka_unit_test(test_bad_and_ignored),
        cmocka_unit_test(test_many_nodes),
    };
    return cmocka_run_group_tests_name("sparkplug", tests, NULL, NULL);
}
