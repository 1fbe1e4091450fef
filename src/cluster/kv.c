/*
 * kv.c - one key of a KV bucket, written through JetStream publishes.
 *
 * A KV key is the subject $KV.<bucket>.<key> of the stream KV_<bucket>,
 * and its revision is the stream sequence of its last message.  cnats's
 * kvStore calls hide why a write failed (a refusal and a timeout look
 * alike) and a create that failed reads the key back with a second wait;
 * publishing with Nats-Expected-Last-Subject-Sequence ourselves gives the
 * JetStream error code (10071: the key is at another revision) and one
 * bounded wait per call.  What each result means for a lease:
 *
 *   - acknowledged: applied (LS_LEASE_OK);
 *   - JetStream 10071, wrong last sequence: refused;
 *   - no responders: nobody stored it, not applied (FAILED);
 *   - anything else, a timeout first of all: it may have been applied
 *     (UNKNOWN), and the caller reads the key back.
 *
 * A create publishes "no message expected"; if the key holds a delete
 * marker (a lease released), it reads the marker's revision and writes
 * over it at that revision, as kvStore_Create does.
 */
#include "cluster/kv.h"

#include <stdio.h>
#include <string.h>

#define KV_OP_HEADER "KV-Operation"

static void subject(const ls_kv_key *k, char *buf, size_t len)
{
    snprintf(buf, len, "$KV.%s.%s", k->bucket, k->key);
}

static ls_lease_outcome publish(const ls_kv_key *k, const char *v, size_t n, const char *op,
                                const jsPubOptions *po_in, uint64_t *rev)
{
    char subj[256];
    subject(k, subj, sizeof(subj));
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subj, NULL, v, (int)n);
    if (s == NATS_OK && op) s = natsMsgHeader_Set(m, KV_OP_HEADER, op);
    if (s != NATS_OK) {
        natsMsg_Destroy(m);
        return LS_LEASE_FAILED;
    }
    jsPubOptions po = *po_in;
    po.MaxWait = k->wait_ms;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    s = js_PublishMsg(&pa, k->js, m, &po, &jerr);
    natsMsg_Destroy(m);
    if (s == NATS_OK) {
        if (rev) *rev = pa->Sequence;
        jsPubAck_Destroy(pa);
        return LS_LEASE_OK;
    }
    if (jerr == JSStreamWrongLastSequenceErr) return LS_LEASE_REFUSED;
    if (s == NATS_NO_RESPONDERS) return LS_LEASE_FAILED;
    return LS_LEASE_UNKNOWN;
}

int ls_kv_read(const ls_kv_key *k, int *exists, uint64_t *rev, char *val, size_t *n)
{
    char subj[256], stream[128];
    subject(k, subj, sizeof(subj));
    snprintf(stream, sizeof(stream), "KV_%s", k->bucket);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = k->wait_ms;
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetLastMsg(&m, k->js, stream, subj, &jo, &jerr);
    *exists = 0;
    *rev = 0;
    *n = 0;
    val[0] = '\0';
    if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) return 1;
    if (s != NATS_OK) return 0;
    const char *op = NULL;
    *rev = natsMsg_GetSequence(m);
    if (natsMsgHeader_Get(m, KV_OP_HEADER, &op) != NATS_OK || !op) {
        *exists = 1;
        int len = natsMsg_GetDataLength(m);
        size_t c = len < 0 ? 0 : (size_t)len;
        if (c > LS_KV_VALUE_MAX - 1) c = LS_KV_VALUE_MAX - 1;
        memcpy(val, natsMsg_GetData(m), c);
        val[c] = '\0';
        *n = c;
    }
    natsMsg_Destroy(m);
    return 1;
}

ls_lease_outcome ls_kv_create(const ls_kv_key *k, const char *v, size_t n, uint64_t *rev)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.ExpectNoMessage = true;
    ls_lease_outcome o = publish(k, v, n, NULL, &po, rev);
    if (o != LS_LEASE_REFUSED) return o;
    /* Something is there: a value (refused), or a delete marker to write over. */
    int exists;
    uint64_t marker;
    char cur[LS_KV_VALUE_MAX];
    size_t len;
    if (!ls_kv_read(k, &exists, &marker, cur, &len)) return LS_LEASE_FAILED; /* not applied */
    if (exists || marker == 0) return LS_LEASE_REFUSED;
    jsPubOptions_Init(&po);
    po.ExpectLastSubjectSeq = marker;
    return publish(k, v, n, NULL, &po, rev);
}

ls_lease_outcome ls_kv_update(const ls_kv_key *k, const char *v, size_t n, uint64_t last,
                              uint64_t *rev)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.ExpectLastSubjectSeq = last;
    return publish(k, v, n, NULL, &po, rev);
}

ls_lease_outcome ls_kv_delete(const ls_kv_key *k, uint64_t last)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.ExpectLastSubjectSeq = last;
    return publish(k, NULL, 0, "DEL", &po, NULL);
}

ls_lease_outcome ls_kv_delete_any(const ls_kv_key *k)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    return publish(k, NULL, 0, "DEL", &po, NULL);
}

ls_lease_outcome ls_kv_put(const ls_kv_key *k, const char *v, size_t n)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    return publish(k, v, n, NULL, &po, NULL);
}
