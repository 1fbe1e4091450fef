/*
 * store.c - lastseen's durable state in one LMDB environment.
 *
 * FORMAT (LS_STORE_FORMAT 2).  The directory `dir` is the LMDB environment:
 * dir/data.mdb holds the data, dir/lock.mdb the reader table.  Named
 * databases, all with LMDB's default byte-wise key order:
 *
 *   "meta"     "format"      -> u32 LE, the format version (1 or 2)
 *              "pruned_upto" -> u64 LE, the highest outbox seq ever pruned
 *              "alarm_last_id" -> u64 LE, the highest alarm id ever given
 *              "mark" + u64 BE seq -> i64 LE wall ms: events with this seq
 *                            and later were committed at or after that
 *                            time (one mark a minute at most; for
 *                            events.retention, see ls_store_prunable())
 *   "devices"  device id (1..511 bytes, as given) -> device record:
 *                u8  record version (1 or 2)
 *                u8  active (0 or 1)
 *                u16 type_len
 *                u32 sessions
 *                i64 timeout_ms, last_activity, last_connect,
 *                    last_disconnect, inactivity_alarm
 *              version 2 only:
 *                u8  c8y flags: bit 0 = has c8y_RequiredAvailability
 *                u8  0
 *                i16 its responseInterval (minutes)
 *              then type_len bytes of type (0 bytes for NULL or "");
 *              all integers little-endian: 48 (v1) or 52 (v2) bytes plus
 *              the type.
 *   "types"    type name (1..511 bytes) -> type settings, 16 bytes:
 *                u8 version (1), u8 flags (bit 0: responseInterval set),
 *                u8 monitored (0 unset, 1 false, 2 true), u8 severity,
 *                i16 responseInterval, u16 0, i64 inactivityTimeout (0 unset)
 *   "alarms"   id as u64 BIG-endian -> alarm record:
 *                u8 version (1), u8 status, u8 severity, u8 0, u32 count,
 *                i64 time, firstOccurrenceTime, since (the lastActivityTime
 *                its text quotes), lastUpdated; then the device id
 *              (40 bytes plus the id).
 *   "outbox"   seq as u64 BIG-endian (so key order is seq order) -> event
 *              record, version 2 (format 2):
 *                u8  record version (2)
 *                u8  event type (an ls_event_type; 255: not recorded)
 *                u16 device id length (0: not recorded)
 *                u32 line length
 *                u32 device offset from the start of the line: the id is
 *                    a slice of the line (an id the JSON did not escape)
 *                    or, at offset = line length, stored after it
 *                u32 state offset, u32 state length (0: none): the
 *                    device's state object inside the line
 *              then the event's JSON line, without the newline, then the
 *              id if it is not in the line; integers little-endian, 20
 *              bytes plus the line (plus the id).  Version 1 (format 1):
 *              the JSON line alone; it starts with '{', never with 2.
 *   "cursors"  sink name -> u64 LE, the last seq the sink delivered.
 *
 * A new store is created with every database and "format" in one
 * transaction, so a store with entries but no "meta"/"format" is not ours
 * (LS_STORE_ECORRUPT); one with a higher format is refused untouched
 * (LS_STORE_EVERSION).  Databases added after format 1 ("types",
 * "alarms") are created when a store lacks them, so older stores open
 * unchanged otherwise.  Format 2 changed the outbox record: a format-1
 * store opened for writing is marked format 2 at once (its outbox may
 * still hold version-1 lines, which are read as such, with no type or
 * device: the core reads those from the line), so that an older
 * lastseen, which would hand the new records' header to its sinks as
 * part of the line, refuses it instead.  Each device record carries its own version: this
 * build writes version 2 and reads 1 and 2 (a version-1 device has no
 * c8y_RequiredAvailability); anything else, or a length that does not add
 * up, is reported as damage naming the record.  An older lastseen refuses
 * a store holding version-2 records for that reason: downgrading is not
 * supported.
 *
 * DURABILITY.  Every ls_store_write() is one LMDB transaction: all of a
 * batch or nothing, in every mode, and a crash of the process (kill -9)
 * never loses a committed batch.  opts->sync = 1: the commit fsyncs the data
 * pages and then the meta page, so a returned write survives power loss.
 * opts->sync = 0 adds MDB_NOMETASYNC: the data pages are still synced but
 * the meta page is only synced by the next commit, so an OS crash or power
 * loss may lose the last committed batch, never consistency.  MDB_NOSYNC and
 * MDB_WRITEMAP are never used (NOSYNC is only safe on ordering filesystems,
 * WRITEMAP lets a stray pointer write scribble on the file).
 *
 * GROWTH.  LMDB's map size is the largest the file may become.  It starts
 * at max(opts->initial_size, the file's size rounded up to 1 MiB).  When a
 * write hits MDB_MAP_FULL (in a put or in the commit) the transaction is
 * aborted, the map doubled, capped at opts->max_size, and the whole batch
 * applied again; at the cap the write fails with LS_STORE_EFULL, nothing of
 * the batch applied, and the store stays usable for smaller batches.  The
 * file never shrinks: pages freed by deletes and prunes are reused.
 * Resizing remaps the file, which LMDB allows only while this process has
 * no transaction open; the read functions below hold a read lock on
 * `map_lock` for the life of their read transaction and the resize takes it
 * exclusively.  So a read callback must never call ls_store_write() (a
 * resize would deadlock), and a read that runs long (loading millions of
 * devices) delays a resize and pins old pages, growing the file.
 *
 * DAMAGED FILES.  LMDB trusts its file: it maps it and follows page
 * numbers, so a data.mdb shorter than its last committed page (a truncated
 * copy, a restored partial backup) would kill the process with SIGBUS on
 * the first read of a missing page.  ls_store_open() therefore compares the
 * file size with the last committed page before any transaction and refuses
 * a short file.  LMDB may legitimately leave the last page(s) unwritten when
 * they were allocated and freed in the same transaction, and it commits
 * before the file is extended over them; so the store keeps data.mdb as
 * long as the whole map at all times (a sparse ftruncate at open and after
 * each growth: holes cost no disk) and a commit can never reference a page
 * past the end of the file.  The check thus refuses only a file that lost
 * its tail after it was written.  A
 * file whose header is not LMDB's gives MDB_INVALID; both are logged with
 * the path and reported as LS_STORE_ECORRUPT.  Damage inside pages that
 * LMDB does not check is out of reach of this layer.
 *
 * COSTS.  A write costs one transaction (with sync = 1, two fsyncs) plus
 * O(log n) per op; batch as much as the loss window allows.  Outbox events
 * with increasing seq are appended with MDB_APPEND (no search, full pages).
 * Prune deletes from the front, O(log n) each.  A retry after MAP_FULL
 * re-applies the whole batch, so a first big load starting from a small
 * map costs about twice its size in work.  Reads are zero-copy from the
 * map inside their transaction: device id and type, type names and alarm
 * sources are copied to NUL-terminated buffers for the callback (records
 * are the engine's: ls_device_state, ls_type_config, ls_alarm, encoded and
 * decoded here and in batch.c), event lines are passed as
 * pointers into the map, valid only during the callback.  Each read
 * function opens and closes its own read transaction (MDB_NOTLS, so any
 * thread may read); one writer thread at a time.
 *
 * RESIDENT PAGES.  Without MDB_WRITEMAP the map is a read-only shared
 * mapping of the file: the pages a read touches count in the process's
 * RSS until the kernel reclaims them, though they are only page cache.
 * ls_store_drop_pages() unmaps them from the process after a big read
 * (madvise MADV_DONTNEED, which on a shared file mapping drops the page
 * table entries and keeps the cached data; later reads fault them back
 * from the page cache); holding the read side of `map_lock` keeps a
 * resize from remapping meanwhile.  The daemon calls it after its
 * start-up load, which reads the whole file.  Pages that commits read
 * later (the B-tree paths to dirty records) come back into the RSS
 * gradually; they are not dropped again.  ls_store_read_outbox() notes the
 * runs of pages it read, and those are dropped at most once a second (or
 * once DROP_BYTES are pending): every event is read by the sinks, so
 * without that the process would map the whole outbox (days of events,
 * with events.retention) into its RSS.  Not after each read: every
 * madvise flushes the TLB of every thread of the process, and the shards'
 * threads, whose tables live on TLB misses, lost a measurable share of a
 * reconnect storm's throughput to one flush per read.
 *
 * READ-ONLY.  opts->read_only opens an existing store with MDB_RDONLY, for
 * `lastseen export` next to a running daemon.  Nothing is created: a
 * missing directory, data.mdb or format is reported, never made; the map
 * is never grown by us.  LMDB still registers the reader in lock.mdb (it
 * creates that file only if it is missing and the directory is writable),
 * which is what keeps the writer from reusing the pages a read transaction
 * still sees.  When the writer process has grown the map past ours, a read
 * transaction fails with MDB_MAP_RESIZED: rd_begin() then adopts the
 * size recorded in the file and retries.  A long read pins the pages it
 * sees, so the writer's file grows while it lasts.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "store/store_int.h"

#define MOD "store"
#define MIB ((uint64_t)1 << 20)
#define DROP_RUNS 32               /* runs of pages to drop kept at once */
#define DROP_BYTES (64 * MIB)      /* dropped once this many are pending */
#define DROP_EVERY_NS 1000000000LL /* or once a second */
#define DEFAULT_INITIAL_SIZE (64 * MIB)

struct ls_store {
    MDB_env *env;
    MDB_dbi meta, devices, outbox, cursors, types, alarms;
    pthread_rwlock_t map_lock; /* read: a read txn is open; write: resizing */
    uint64_t map_size;         /* writer thread only */
    uint64_t max_size;
    int full_logged;
    int read_only;
    char *dir;
    /* Writer thread: the device ops of the batch being applied, by key. */
    struct dev_op *dev_ops;
    size_t dev_cap;
    /* Pages outbox reads touched, to drop from the resident set (see
     * RESIDENT PAGES), under drop_mu. */
    pthread_mutex_t drop_mu;
    struct {
        uintptr_t lo, hi;
    } drop[DROP_RUNS];
    int ndrop;
    uint64_t drop_bytes;
    int64_t drop_at; /* mono ns: the next drop, unless DROP_BYTES come first */
};

/* ---- errors ------------------------------------------------------------ */

/* Maps an LMDB or errno result to the store's convention. */
static int map_rc(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_MAP_FULL:
        return LS_STORE_EFULL;
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INCOMPATIBLE:
        return LS_STORE_ECORRUPT;
    case MDB_TXN_FULL:
        return -E2BIG;
    case MDB_READERS_FULL:
    case MDB_MAP_RESIZED:
        return -EAGAIN;
    default:
        return rc > 0 ? -rc : -EIO;
    }
}

/* Logs "DIR: what: LMDB's reason" once and returns the mapped code. */
static int fail(const ls_store *s, const char *what, int rc)
{
    ls_error(MOD, "%s: %s: %s", s->dir, what, mdb_strerror(rc));
    return map_rc(rc);
}

/* ---- open / close ------------------------------------------------------ */

static uint64_t round_up(uint64_t v, uint64_t unit)
{
    return (v + unit - 1) / unit * unit;
}

/*
 * Refuses a data.mdb shorter than its last committed page, which LMDB
 * would fault on (see DAMAGED FILES above).  Reads only the meta pages,
 * which mdb_env_open() has already read and checked.
 */
static int check_tail(ls_store *s)
{
    MDB_envinfo info;
    MDB_stat st;
    struct stat sb;
    int fd, rc;

    if ((rc = mdb_env_info(s->env, &info)) || (rc = mdb_env_stat(s->env, &st)) ||
        (rc = mdb_env_get_fd(s->env, &fd)))
        return fail(s, "reading the store header", rc);
    if (fstat(fd, &sb) < 0) return fail(s, "fstat data.mdb", errno);
    if (st.ms_psize < 512) {
        ls_error(MOD, "%s/data.mdb: page size %u in the header: damaged", s->dir, st.ms_psize);
        return LS_STORE_ECORRUPT;
    }
    uint64_t pages = (uint64_t)sb.st_size / st.ms_psize;
    if ((uint64_t)info.me_last_pgno >= pages) {
        ls_error(MOD,
                 "%s/data.mdb: file is %lld bytes but its last committed page ends at %llu: "
                 "truncated or damaged; refusing to open",
                 s->dir, (long long)sb.st_size,
                 (unsigned long long)((uint64_t)info.me_last_pgno + 1) * st.ms_psize);
        return LS_STORE_ECORRUPT;
    }
    return 0;
}

/*
 * Makes data.mdb as long as the map, sparse, so that no commit can leave
 * a committed page past the end of the file (see DAMAGED FILES).  Called
 * with no transaction open.  A failure is logged and otherwise ignored:
 * the store is consistent, only a crash before the next extension could
 * make the next open's size check refuse it.
 */
static void extend_file(ls_store *s)
{
    MDB_envinfo info;
    struct stat sb;
    int fd;

    if (s->read_only) return;
    if (mdb_env_info(s->env, &info) || mdb_env_get_fd(s->env, &fd) || fstat(fd, &sb) < 0) return;
    if ((uint64_t)sb.st_size >= (uint64_t)info.me_mapsize) return;
    if (ftruncate(fd, (off_t)info.me_mapsize) < 0)
        ls_warn(MOD, "%s/data.mdb: cannot extend to %llu bytes: %s", s->dir,
                (unsigned long long)info.me_mapsize, strerror(errno));
}

/* Opens one named database of an existing store; not finding it is damage. */
static int open_db(ls_store *s, MDB_txn *txn, const char *name, unsigned flags, MDB_dbi *dbi)
{
    int rc = mdb_dbi_open(txn, name, flags, dbi);
    if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
        ls_error(MOD, "%s: not a lastseen store (no \"%s\" database)", s->dir, name);
        return LS_STORE_ECORRUPT;
    }
    if (rc) return fail(s, "opening a database", rc);
    return 0;
}

/* Checks meta "format" of an existing store (the txn has "meta" open) into *fmt. */
static int check_format(ls_store *s, MDB_txn *txn, uint32_t *fmt)
{
    MDB_val k = {6, "format"}, v;
    int rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        ls_error(MOD, "%s: not a lastseen store (no format version)", s->dir);
        return LS_STORE_ECORRUPT;
    }
    if (rc) return fail(s, "reading the format version", rc);
    if (v.mv_size != 4) {
        ls_error(MOD, "%s: format version is %zu bytes, not 4: damaged", s->dir, v.mv_size);
        return LS_STORE_ECORRUPT;
    }
    uint32_t f = store__get_le32(v.mv_data);
    if (f > LS_STORE_FORMAT) {
        ls_error(MOD,
                 "%s: store format %u is newer than this lastseen supports (%d); refusing to open",
                 s->dir, f, LS_STORE_FORMAT);
        return LS_STORE_EVERSION;
    }
    if (f == 0) {
        ls_error(MOD, "%s: store format 0 is not valid: damaged", s->dir);
        return LS_STORE_ECORRUPT;
    }
    *fmt = f;
    return 0;
}

/* The databases: the first four since format 1, the others created when missing. */
#define NDBS 6
#define NDBS_V1 4

/* Creates the databases of a new store, or opens and checks an existing one. */
static int open_dbs(ls_store *s)
{
    static const char *const names[NDBS] = {"meta",    "devices", "outbox",
                                            "cursors", "types",   "alarms"};
    MDB_dbi *dbis[NDBS] = {&s->meta, &s->devices, &s->outbox, &s->cursors, &s->types, &s->alarms};
    MDB_txn *txn;
    MDB_dbi main;
    MDB_stat ms;
    int rc;

    if ((rc = mdb_txn_begin(s->env, NULL, s->read_only ? MDB_RDONLY : 0, &txn)))
        return fail(s, "begin", rc);
    if ((rc = mdb_dbi_open(txn, NULL, 0, &main)) || (rc = mdb_stat(txn, main, &ms))) {
        rc = fail(s, "reading the main database", rc);
        goto abort;
    }
    if (ms.ms_entries == 0 && s->read_only) {
        ls_error(MOD, "%s: no store here (data.mdb was never initialised)", s->dir);
        rc = -ENOENT;
        goto abort;
    }
    if (ms.ms_entries == 0) {
        unsigned char f[4];
        store__put_le32(f, LS_STORE_FORMAT);
        MDB_val k = {6, "format"}, v = {4, f};
        for (int i = 0; i < NDBS; i++)
            if ((rc = mdb_dbi_open(txn, names[i], MDB_CREATE, dbis[i]))) break;
        if (!rc) rc = mdb_put(txn, s->meta, &k, &v, 0);
        if (!rc)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        if (rc) return fail(s, "creating the store", rc);
        extend_file(s);
        ls_info(MOD, "%s: created store (format %d)", s->dir, LS_STORE_FORMAT);
        return 0;
    }
    /* Existing: "meta" and the format first, so a newer store is refused as such. */
    uint32_t fmt = LS_STORE_FORMAT;
    if ((rc = open_db(s, txn, "meta", 0, &s->meta)) < 0) goto abort;
    if ((rc = check_format(s, txn, &fmt)) < 0) goto abort;
    for (int i = 1; i < NDBS_V1; i++)
        if ((rc = open_db(s, txn, names[i], 0, dbis[i])) < 0) goto abort;
    for (int i = NDBS_V1; i < NDBS; i++) {
        if ((rc = mdb_dbi_open(txn, names[i], 0, dbis[i])) == MDB_NOTFOUND && s->read_only) {
            rc = 0; /* an older store, read as it is: only its devices are read (export) */
        } else if (rc == MDB_NOTFOUND) {
            rc = mdb_dbi_open(txn, names[i], MDB_CREATE, dbis[i]);
            if (!rc) ls_info(MOD, "%s: added the \"%s\" database", s->dir, names[i]);
        }
        if (rc) {
            rc = fail(s, "opening a database", rc);
            goto abort;
        }
    }
    if (fmt < LS_STORE_FORMAT && !s->read_only) {
        unsigned char f[4];
        store__put_le32(f, LS_STORE_FORMAT);
        MDB_val k = {6, "format"}, v = {4, f};
        if ((rc = mdb_put(txn, s->meta, &k, &v, 0))) {
            rc = fail(s, "upgrading the format version", rc);
            goto abort;
        }
        ls_info(MOD, "%s: store format %u upgraded to %d (new outbox records)", s->dir, fmt,
                LS_STORE_FORMAT);
    }
    /* Unless a database was added or the format upgraded, nothing was
     * written: this commit keeps the handles and touches no page (a
     * read-only transaction's commit also keeps them). */
    if ((rc = mdb_txn_commit(txn))) return fail(s, "opening the databases", rc);
    return 0;
abort:
    mdb_txn_abort(txn);
    return rc;
}

int ls_store_open(ls_store **out, const char *dir, const ls_store_options *o)
{
    static const ls_store_options defaults = {.initial_size = DEFAULT_INITIAL_SIZE, .sync = 1};
    char path[PATH_MAX];
    struct stat sb;
    int rc;

    *out = NULL;
    if (!o) o = &defaults;
    if (!dir || !*dir) return -EINVAL;
    if (snprintf(path, sizeof(path), "%s/data.mdb", dir) >= (int)sizeof(path)) {
        ls_error(MOD, "%s: path too long", dir);
        return -ENAMETOOLONG;
    }
    ls_store *s = calloc(1, sizeof(*s));
    if (!s || !(s->dir = strdup(dir))) {
        free(s);
        return -ENOMEM;
    }
    pthread_rwlock_init(&s->map_lock, NULL);
    pthread_mutex_init(&s->drop_mu, NULL);
    s->max_size = o->max_size;
    s->read_only = o->read_only;

    if (s->read_only && stat(path, &sb) < 0) {
        rc = -errno;
        ls_error(MOD, "%s: no store here (%s: %s)", dir, path, strerror(errno));
        goto fail;
    }
    if (!s->read_only && mkdir(dir, 0755) < 0 && errno != EEXIST) {
        rc = -errno;
        ls_error(MOD, "%s: cannot create the store directory: %s", dir, strerror(errno));
        goto fail;
    }
    uint64_t fsize = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    uint64_t map = o->initial_size ? o->initial_size : DEFAULT_INITIAL_SIZE;
    if (s->read_only) map = MIB; /* raised to the file's size below; never grown by us */
    if (s->max_size && map > s->max_size) map = s->max_size;
    if (round_up(fsize, MIB) > map) map = round_up(fsize, MIB);
    map = round_up(map, (uint64_t)sysconf(_SC_PAGESIZE));
    if (map > SIZE_MAX) {
        ls_error(MOD, "%s: map size %llu does not fit this machine", dir, (unsigned long long)map);
        rc = -EFBIG;
        goto fail;
    }

    if ((rc = mdb_env_create(&s->env))) {
        rc = fail(s, "mdb_env_create", rc);
        goto fail;
    }
    if ((rc = mdb_env_set_maxdbs(s->env, NDBS)) ||
        (rc = mdb_env_set_mapsize(s->env, (size_t)map))) {
        rc = fail(s, "configuring LMDB", rc);
        goto fail;
    }
    unsigned flags = MDB_NOTLS | (o->sync ? 0 : MDB_NOMETASYNC) | (s->read_only ? MDB_RDONLY : 0);
    if ((rc = mdb_env_open(s->env, dir, flags, 0644))) {
        const char *why = rc == MDB_INVALID ? " (not an LMDB file, or its header is damaged)"
                          : rc == MDB_VERSION_MISMATCH ? " (written by an incompatible LMDB)"
                                                       : "";
        ls_error(MOD, "%s: cannot open the store: %s%s", dir, mdb_strerror(rc), why);
        rc = map_rc(rc);
        goto fail;
    }
    if ((rc = check_tail(s)) < 0 || (rc = open_dbs(s)) < 0) goto fail;
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    s->map_size = info.me_mapsize;
    extend_file(s);
    *out = s;
    return 0;
fail:
    ls_store_close(s);
    return rc;
}

void ls_store_close(ls_store *s)
{
    if (!s) return;
    if (s->env) mdb_env_close(s->env);
    pthread_rwlock_destroy(&s->map_lock);
    pthread_mutex_destroy(&s->drop_mu);
    free(s->dir);
    free(s->dev_ops);
    free(s);
}

/* ---- writes ------------------------------------------------------------ */

/* The highest seq in the outbox, 0 if empty. */
static int outbox_last(ls_store *s, MDB_txn *txn, uint64_t *last)
{
    MDB_cursor *c;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, s->outbox, &c);
    if (rc) return rc;
    rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    *last = 0;
    if (rc == MDB_NOTFOUND)
        rc = 0;
    else if (!rc && k.mv_size != 8)
        rc = MDB_CORRUPTED;
    else if (!rc)
        *last = store__get_be64(k.mv_data);
    mdb_cursor_close(c);
    return rc;
}

static int meta_get_u64(ls_store *s, MDB_txn *txn, const char *key, uint64_t *out)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, s->meta, &k, &v);
    *out = 0;
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return rc;
    if (v.mv_size != 8) return MDB_CORRUPTED;
    *out = store__get_le64(v.mv_data);
    return 0;
}

#define MARK_PREFIX "mark"
#define MARK_KEY 12

static void mark_key(unsigned char *k, uint64_t seq)
{
    memcpy(k, MARK_PREFIX, 4);
    store__put_be64(k + 4, seq);
}

/* Deletes the retention marks of seq <= upto: their events are gone. */
static int prune_marks(ls_store *s, MDB_txn *txn, uint64_t upto)
{
    unsigned char kb[MARK_KEY];
    MDB_cursor *c;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, s->meta, &c);
    if (rc) return rc;
    mark_key(kb, 0);
    k = (MDB_val){MARK_KEY, kb};
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); !rc;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != MARK_KEY || memcmp(k.mv_data, MARK_PREFIX, 4)) break;
        if (store__get_be64((const unsigned char *)k.mv_data + 4) > upto) break;
        if ((rc = mdb_cursor_del(c, 0))) break;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Deletes outbox events with seq <= upto and raises meta "pruned_upto". */
static int prune(ls_store *s, MDB_txn *txn, uint64_t upto)
{
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t top = 0, old;
    int rc = mdb_cursor_open(txn, s->outbox, &c);
    if (rc) return rc;
    /* After mdb_cursor_del the cursor sits on the next record; MDB_NEXT returns it. */
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); !rc; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8) {
            rc = MDB_CORRUPTED;
            break;
        }
        uint64_t seq = store__get_be64(k.mv_data);
        if (seq > upto) break;
        if ((rc = mdb_cursor_del(c, 0))) break;
        top = seq;
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) return rc;
    if ((rc = prune_marks(s, txn, upto))) return rc;
    if (top == 0) return 0;
    if ((rc = meta_get_u64(s, txn, "pruned_upto", &old))) return rc;
    if (top <= old) return 0;
    unsigned char b[8];
    store__put_le64(b, top);
    MDB_val mk = {11, "pruned_upto"}, mv = {8, b};
    return mdb_put(txn, s->meta, &mk, &mv, 0);
}

/*
 * Device ops are applied in key order.  A batch of random ids put in
 * arrival order visits the B-tree's leaves at random, and a commit of many
 * devices (a reconnect storm's) then spends most of its time in cache
 * misses; in key order each leaf is reached once, next to the previous
 * one (`lastseen-bench store-flush --order random|sorted`: about 2x).  Ops
 * on one key keep their order (the sort is stable), and no other op reads
 * the devices, so the result is the batch's.
 */
#define DEV_OPS_KEEP 65536 /* dev_ops entries kept between batches, at least */

struct dev_op {
    uint64_t prefix; /* the key's first 8 bytes, big-endian, zero-padded */
    size_t pos;      /* the op's place in the batch: order among equal keys */
    const unsigned char *key;
    size_t klen;
};

static int dev_op_cmp(const void *a, const void *b)
{
    const struct dev_op *x = a, *y = b;
    if (x->prefix != y->prefix) return x->prefix < y->prefix ? -1 : 1;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = n > 8 ? memcmp(x->key + 8, y->key + 8, n - 8) : 0;
    if (c) return c;
    if (x->klen != y->klen) return x->klen < y->klen ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Applies one device op; returns an LMDB result. */
static int apply_device(ls_store *s, MDB_txn *txn, const store__op *op)
{
    MDB_val k = {op->klen, (void *)op->key}, v = {op->vlen, (void *)op->val};
    if (op->type == STORE__OP_PUT_DEVICE) return mdb_put(txn, s->devices, &k, &v, 0);
    int rc = mdb_del(txn, s->devices, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Applies the first n collected device ops, in the order of s->dev_ops. */
static int apply_collected(ls_store *s, MDB_txn *txn, const ls_store_batch *b, size_t n)
{
    store__op op;
    int rc;
    for (size_t i = 0; i < n; i++) {
        size_t p = s->dev_ops[i].pos;
        if (!store__batch_next(b, &p, &op)) return EINVAL;
        if ((rc = apply_device(s, txn, &op))) return rc;
    }
    return 0;
}

/* Collects a device op for the sorted pass; 0, or LS_ENOMEM (the caller
 * applies it at once, in batch order). */
static int collect_device(ls_store *s, size_t *n, size_t pos, const store__op *op)
{
    if (*n == s->dev_cap) {
        size_t cap = s->dev_cap ? s->dev_cap * 2 : 1024;
        struct dev_op *v = realloc(s->dev_ops, cap * sizeof(*v));
        if (!v) return LS_ENOMEM;
        s->dev_ops = v;
        s->dev_cap = cap;
    }
    uint64_t p = 0;
    for (size_t i = 0; i < 8; i++)
        p = p << 8 | (i < op->klen ? op->key[i] : 0);
    s->dev_ops[(*n)++] = (struct dev_op){.prefix = p, .pos = pos, .key = op->key, .klen = op->klen};
    return 0;
}

/* Applies every op of `b`: device ops in key order, the others in batch
 * order; returns an LMDB result. */
static int apply(ls_store *s, MDB_txn *txn, const ls_store_batch *b)
{
    size_t pos = 0, ndev = 0;
    store__op op;
    uint64_t last = 0;
    int have_last = 0, rc = 0, sorted = 1;
    unsigned char nb[8];

    for (size_t at = 0; store__batch_next(b, &pos, &op); at = pos) {
        MDB_val k = {op.klen, (void *)op.key}, v = {op.vlen, (void *)op.val};
        switch (op.type) {
        case STORE__OP_PUT_DEVICE:
        case STORE__OP_DEL_DEVICE:
            /* Once one could not be collected, the rest go in batch order too. */
            if (sorted && collect_device(s, &ndev, at, &op) == 0) break;
            if (sorted) { /* apply what was collected first: order per key */
                sorted = 0;
                if ((rc = apply_collected(s, txn, b, ndev))) break;
            }
            rc = apply_device(s, txn, &op);
            break;
        case STORE__OP_EVENT:
            if (!have_last) {
                if ((rc = outbox_last(s, txn, &last))) break;
                have_last = 1;
            }
            store__put_be64(nb, op.num);
            k = (MDB_val){8, nb};
            rc = mdb_put(txn, s->outbox, &k, &v, op.num > last ? MDB_APPEND : 0);
            if (!rc && op.num > last) last = op.num;
            break;
        case STORE__OP_CURSOR:
            store__put_le64(nb, op.num);
            v = (MDB_val){8, nb};
            rc = mdb_put(txn, s->cursors, &k, &v, 0);
            break;
        case STORE__OP_PRUNE:
            rc = prune(s, txn, op.num);
            break;
        case STORE__OP_MARK: {
            unsigned char mk[MARK_KEY];
            mark_key(mk, op.num);
            k = (MDB_val){MARK_KEY, mk};
            rc = mdb_put(txn, s->meta, &k, &v, 0);
            break;
        }
        case STORE__OP_PUT_TYPE:
            rc = mdb_put(txn, s->types, &k, &v, 0);
            break;
        case STORE__OP_DEL_TYPE:
            rc = mdb_del(txn, s->types, &k, NULL);
            if (rc == MDB_NOTFOUND) rc = 0;
            break;
        case STORE__OP_PUT_ALARM: {
            uint64_t top;
            store__put_be64(nb, op.num);
            k = (MDB_val){8, nb};
            if ((rc = mdb_put(txn, s->alarms, &k, &v, 0))) break;
            if ((rc = meta_get_u64(s, txn, "alarm_last_id", &top)) || op.num <= top) break;
            unsigned char tb[8];
            store__put_le64(tb, op.num);
            MDB_val mk = {13, "alarm_last_id"}, mv = {8, tb};
            rc = mdb_put(txn, s->meta, &mk, &mv, 0);
            break;
        }
        case STORE__OP_DEL_ALARM:
            store__put_be64(nb, op.num);
            k = (MDB_val){8, nb};
            rc = mdb_del(txn, s->alarms, &k, NULL);
            if (rc == MDB_NOTFOUND) rc = 0;
            break;
        default:
            rc = EINVAL;
        }
        if (rc) return rc;
    }
    /* After a burst, give back what a much smaller batch would not need. */
    if (s->dev_cap > DEV_OPS_KEEP && ndev < s->dev_cap / 4) {
        size_t cap = ndev * 2 > DEV_OPS_KEEP ? ndev * 2 : DEV_OPS_KEEP;
        struct dev_op *v = realloc(s->dev_ops, cap * sizeof(*v));
        if (v) {
            s->dev_ops = v;
            s->dev_cap = cap;
        }
    }
    if (!sorted || ndev == 0) return 0;
    qsort(s->dev_ops, ndev, sizeof(*s->dev_ops), dev_op_cmp);
    return apply_collected(s, txn, b, ndev);
}

/*
 * Sets the map size (0: adopt the file's), with no transaction of ours
 * open: under the write side of map_lock.  The pages noted for dropping
 * are forgotten: their addresses belong to the old map.  An LMDB result.
 */
static int remap(ls_store *s, size_t size)
{
    pthread_rwlock_wrlock(&s->map_lock);
    int rc = mdb_env_set_mapsize(s->env, size);
    pthread_mutex_lock(&s->drop_mu);
    s->ndrop = 0;
    s->drop_bytes = 0;
    pthread_mutex_unlock(&s->drop_mu);
    pthread_rwlock_unlock(&s->map_lock);
    return rc;
}

/* Doubles the map, capped at max_size; LS_STORE_EFULL at the cap. Writer thread, no txn open. */
static int grow(ls_store *s)
{
    uint64_t cur = s->map_size, next = cur > UINT64_MAX / 2 ? UINT64_MAX : cur * 2;
    if (s->max_size && next > s->max_size) next = s->max_size;
    if (next > SIZE_MAX) next = SIZE_MAX;
    if (next <= cur) {
        if (!s->full_logged)
            ls_error(MOD, "%s: store.max_size reached (%llu bytes)", s->dir,
                     (unsigned long long)(s->max_size ? s->max_size : cur));
        s->full_logged = 1;
        return LS_STORE_EFULL;
    }
    int rc = remap(s, (size_t)next);
    if (rc) return fail(s, "growing the map", rc);
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    s->map_size = info.me_mapsize;
    extend_file(s);
    ls_info(MOD, "%s: map grown from %llu to %llu bytes", s->dir, (unsigned long long)cur,
            (unsigned long long)s->map_size);
    return 0;
}

/*
 * The real cause of an EIO from a write.  LMDB turns a short write into EIO
 * (mdb_page_flush(): "short write, filesystem full?"), and a short write is
 * what a full filesystem or an exhausted quota gives, so the errno that
 * says which is lost.  Writing PROBE_BYTES to a scratch file beside the
 * store asks the filesystem again: its errno (ENOSPC, EDQUOT, EIO...) is
 * the cause; if the probe succeeds, EIO stands.  The probe is removed at
 * once.  Not logged here: the committer logs write failures, paced.
 */
#define PROBE_BYTES 65536
static int probe_cause(const ls_store *s)
{
    char path[4200];
    static const char zero[4096];
    snprintf(path, sizeof(path), "%s/.write-probe", s->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return errno == EACCES || errno == EROFS ? errno : EIO;
    int cause = EIO;
    for (size_t done = 0; done < PROBE_BYTES;) {
        ssize_t n = write(fd, zero, sizeof(zero));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            cause = errno;
            break;
        }
        if (n == 0) break;
        done += (size_t)n;
    }
    if (cause == EIO && fsync(fd) < 0) cause = errno;
    close(fd);
    unlink(path);
    return cause;
}

int ls_store_write(ls_store *s, const ls_store_batch *b)
{
    int rc;

    if (!b || ls_store_batch_ops(b) == 0) return 0;
    if (s->read_only) {
        ls_error(MOD, "%s: write to a store opened read-only", s->dir);
        return -EROFS;
    }
    for (;;) {
        MDB_txn *txn;
        if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) == MDB_MAP_RESIZED) {
            /* Another process grew the map: adopt its size. */
            if ((rc = remap(s, 0))) return fail(s, "adopting the map size", rc);
            extend_file(s);
            continue;
        }
        if (rc) return fail(s, "begin write", rc);
        if ((rc = apply(s, txn, b)) == 0) {
            rc = mdb_txn_commit(txn); /* frees txn, also on failure */
        } else {
            mdb_txn_abort(txn);
        }
        if (rc == 0) break;
        /* A system error (errno > 0, LMDB's own are negative): the
         * committer logs it, paced; EIO's cause is looked for. */
        if (rc > 0) return rc == EIO ? -probe_cause(s) : -rc;
        if (rc != MDB_MAP_FULL) {
            if (rc == MDB_TXN_FULL)
                ls_error(MOD, "%s: batch of %zu ops dirties too many pages for one transaction",
                         s->dir, ls_store_batch_ops(b));
            return fail(s, "write", rc);
        }
        if ((rc = grow(s)) < 0) return rc;
    }
    return 0;
}

/* ---- reads ------------------------------------------------------------- */

/*
 * Begins a read txn under the map lock; on success rd_end() must follow.
 * MDB_MAP_RESIZED means another process grew the file past our map: adopt
 * its size (no txn of ours may be open meanwhile, hence the write lock)
 * and begin again.
 */
static int rd_begin(ls_store *s, MDB_txn **txn)
{
    for (int tries = 0;; tries++) {
        pthread_rwlock_rdlock(&s->map_lock);
        int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
        if (rc == 0) return 0; /* the read lock stays held until rd_end() */
        pthread_rwlock_unlock(&s->map_lock);
        if (rc != MDB_MAP_RESIZED || tries == 16) return fail(s, "begin read", rc);
        if ((rc = remap(s, 0))) return fail(s, "adopting the map size", rc);
    }
}

static void rd_end(ls_store *s, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&s->map_lock);
}

/* Decodes a version-1 or version-2 device record; NULL or a reason why it
 * is damaged.  *fixed gets the size of its fixed part (where the type starts). */
static const char *device_decode(const MDB_val *v, ls_device_state *d, size_t *fixed)
{
    const unsigned char *p = v->mv_data;
    if (v->mv_size < STORE__DEVICE_FIXED) return "record too short";
    if (p[0] != 1 && p[0] != 2) return "unknown record version";
    if (p[1] > 1) return "bad active flag";
    size_t tlen = store__get_le16(p + 2);
    *fixed = p[0] == 1 ? STORE__DEVICE_FIXED : STORE__DEVICE_FIXED_V2;
    if (v->mv_size != *fixed + tlen) return "length does not match type length";
    if (p[0] == 2) {
        if (p[48] > 1) return "bad c8y flags";
        d->has_c8y = p[48];
        d->response_interval = (int16_t)store__get_le16(p + 50);
    }
    d->active = p[1];
    d->type_len = tlen;
    d->sessions = store__get_le32(p + 4);
    d->timeout_ms = (int64_t)store__get_le64(p + 8);
    d->last_activity = (int64_t)store__get_le64(p + 16);
    d->last_connect = (int64_t)store__get_le64(p + 24);
    d->last_disconnect = (int64_t)store__get_le64(p + 32);
    d->inactivity_alarm = (int64_t)store__get_le64(p + 40);
    return NULL;
}

int ls_store_load_devices(ls_store *s, ls_store_device_cb cb, void *ud)
{
    char id[STORE__MAX_KEY + 1], small_type[256];
    char *big_type = NULL;
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val k, v;
    int rc, out = 0;

    if ((rc = rd_begin(s, &txn)) < 0) return rc;
    if ((rc = mdb_cursor_open(txn, s->devices, &c))) {
        out = fail(s, "opening a cursor", rc);
        goto end;
    }
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); !rc; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        ls_device_state d = {0};
        size_t fixed = STORE__DEVICE_FIXED;
        const char *why =
            k.mv_size > STORE__MAX_KEY ? "id too long" : device_decode(&v, &d, &fixed);
        if (why) {
            ls_error(MOD, "%s: device record '%.*s' is damaged: %s (%zu bytes)", s->dir,
                     (int)(k.mv_size > STORE__MAX_KEY ? STORE__MAX_KEY : k.mv_size),
                     (const char *)k.mv_data, why, v.mv_size);
            out = LS_STORE_ECORRUPT;
            break;
        }
        memcpy(id, k.mv_data, k.mv_size);
        id[k.mv_size] = '\0';
        d.id = id;
        d.id_len = k.mv_size;
        if (d.type_len) {
            char *t = small_type;
            if (d.type_len >= sizeof(small_type)) {
                if (!big_type && !(big_type = malloc(UINT16_MAX + 1))) {
                    out = -ENOMEM;
                    break;
                }
                t = big_type;
            }
            memcpy(t, (const unsigned char *)v.mv_data + fixed, d.type_len);
            t[d.type_len] = '\0';
            d.type = t;
        }
        if ((out = cb(ud, &d)) < 0) break;
        out = 0;
    }
    if (!out && rc && rc != MDB_NOTFOUND) out = fail(s, "reading devices", rc);
    mdb_cursor_close(c);
end:
    rd_end(s, txn);
    free(big_type);
    return out;
}

int ls_store_load_types(ls_store *s, ls_store_type_cb cb, void *ud)
{
    char name[STORE__MAX_KEY + 1];
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val k, v;
    int rc, out = 0;

    if ((rc = rd_begin(s, &txn)) < 0) return rc;
    if ((rc = mdb_cursor_open(txn, s->types, &c))) {
        out = fail(s, "opening a cursor", rc);
        goto end;
    }
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); !rc; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        const unsigned char *p = v.mv_data;
        const char *why = k.mv_size == 0 || k.mv_size > STORE__MAX_KEY ? "bad name length"
                          : v.mv_size != STORE__TYPE_SIZE              ? "record size"
                          : p[0] != STORE__TYPE_VERSION                ? "unknown record version"
                          : p[1] > 1 || p[2] > 2                       ? "bad flags"
                                                                       : NULL;
        if (why) {
            ls_error(MOD, "%s: type record '%.*s' is damaged: %s (%zu bytes)", s->dir,
                     (int)(k.mv_size > STORE__MAX_KEY ? STORE__MAX_KEY : k.mv_size),
                     (const char *)k.mv_data, why, v.mv_size);
            out = LS_STORE_ECORRUPT;
            break;
        }
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        ls_type_config t = {
            .has_ri = p[1],
            .monitored = (int)p[2] - 1,
            .severity = (ls_severity)p[3],
            .response_interval = (int16_t)store__get_le16(p + 4),
            .timeout_ms = (int64_t)store__get_le64(p + 8),
        };
        if ((out = cb(ud, name, k.mv_size, &t)) < 0) break;
        out = 0;
    }
    if (!out && rc && rc != MDB_NOTFOUND) out = fail(s, "reading types", rc);
    mdb_cursor_close(c);
end:
    rd_end(s, txn);
    return out;
}

int ls_store_load_alarms(ls_store *s, ls_store_alarm_cb cb, void *ud)
{
    char *source;
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val k, v;
    int rc, out = 0;

    if (!(source = malloc(UINT16_MAX + 1))) return -ENOMEM;
    if ((rc = rd_begin(s, &txn)) < 0) {
        free(source);
        return rc;
    }
    if ((rc = mdb_cursor_open(txn, s->alarms, &c))) {
        out = fail(s, "opening a cursor", rc);
        goto end;
    }
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); !rc; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        const unsigned char *p = v.mv_data;
        const char *why = k.mv_size != 8                                ? "key is not 8 bytes"
                          : v.mv_size <= STORE__ALARM_FIXED             ? "record too short"
                          : v.mv_size - STORE__ALARM_FIXED > UINT16_MAX ? "record too long"
                          : p[0] != STORE__ALARM_VERSION                ? "unknown record version"
                                                                        : NULL;
        if (why) {
            ls_error(MOD, "%s: alarm record %llu is damaged: %s (%zu bytes)", s->dir,
                     (unsigned long long)(k.mv_size == 8 ? store__get_be64(k.mv_data) : 0), why,
                     v.mv_size);
            out = LS_STORE_ECORRUPT;
            break;
        }
        /* The callback copies what it keeps: the source is reused. */
        ls_alarm a = {
            .id = store__get_be64(k.mv_data),
            .status = p[1],
            .severity = p[2],
            .count = store__get_le32(p + 4),
            .time = (int64_t)store__get_le64(p + 8),
            .first = (int64_t)store__get_le64(p + 16),
            .since = (int64_t)store__get_le64(p + 24),
            .updated = (int64_t)store__get_le64(p + 32),
            .source = source,
            .source_len = (uint16_t)(v.mv_size - STORE__ALARM_FIXED),
        };
        memcpy(source, p + STORE__ALARM_FIXED, a.source_len);
        source[a.source_len] = '\0';
        if ((out = cb(ud, &a)) < 0) break;
        out = 0;
    }
    if (!out && rc && rc != MDB_NOTFOUND) out = fail(s, "reading alarms", rc);
    mdb_cursor_close(c);
end:
    rd_end(s, txn);
    free(source);
    return out;
}

uint64_t ls_store_alarm_last_id(ls_store *s)
{
    MDB_txn *txn;
    uint64_t last = 0;
    int rc;
    if (rd_begin(s, &txn) < 0) return 0;
    if ((rc = meta_get_u64(s, txn, "alarm_last_id", &last)))
        fail(s, "reading the last alarm id", rc);
    rd_end(s, txn);
    return last;
}

uint64_t ls_store_device_count(ls_store *s)
{
    MDB_txn *txn;
    MDB_stat st;
    int rc;
    if (rd_begin(s, &txn) < 0) return 0;
    if ((rc = mdb_stat(txn, s->devices, &st))) {
        fail(s, "counting devices", rc);
        st.ms_entries = 0;
    }
    rd_end(s, txn);
    return st.ms_entries;
}

/* The pages of the map a read touched, as runs of adjacent pages, to be
 * dropped from the resident set (see RESIDENT PAGES). */
typedef struct page_runs {
    ls_store *s;
    uintptr_t page;   /* page size */
    uintptr_t lo, hi; /* the current run [lo, hi), empty when lo == hi */
} page_runs;

/* Under drop_mu: drops every pending run.  The caller holds map_lock
 * (read), so no resize can remap meanwhile. */
static void drop_pending(ls_store *s, int64_t now)
{
    for (int i = 0; i < s->ndrop; i++)
        madvise((void *)s->drop[i].lo, s->drop[i].hi - s->drop[i].lo, MADV_DONTNEED);
    s->ndrop = 0;
    s->drop_bytes = 0;
    s->drop_at = now + DROP_EVERY_NS;
}

/* Hands the current run over to the store's pending runs. */
static void runs_note(page_runs *r)
{
    ls_store *s = r->s;
    if (r->hi <= r->lo) return;
    pthread_mutex_lock(&s->drop_mu);
    int i = 0;
    while (i < s->ndrop && !(r->lo <= s->drop[i].hi && r->hi >= s->drop[i].lo))
        i++;
    if (i == DROP_RUNS) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        drop_pending(s, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
        i = 0;
    }
    if (i == s->ndrop) { /* a run of its own */
        s->drop[s->ndrop].lo = r->lo;
        s->drop[s->ndrop++].hi = r->hi;
        s->drop_bytes += r->hi - r->lo;
    } else { /* overlaps or touches run i */
        uintptr_t lo = s->drop[i].lo < r->lo ? s->drop[i].lo : r->lo;
        uintptr_t hi = s->drop[i].hi > r->hi ? s->drop[i].hi : r->hi;
        s->drop_bytes += (hi - lo) - (s->drop[i].hi - s->drop[i].lo);
        s->drop[i].lo = lo;
        s->drop[i].hi = hi;
    }
    pthread_mutex_unlock(&s->drop_mu);
    r->lo = r->hi = 0;
}

/* At the end of a read: drops the pending runs if they are due. */
static void runs_end(page_runs *r)
{
    ls_store *s = r->s;
    struct timespec ts;
    runs_note(r);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    pthread_mutex_lock(&s->drop_mu);
    if (s->ndrop && (now >= s->drop_at || s->drop_bytes >= DROP_BYTES)) drop_pending(s, now);
    pthread_mutex_unlock(&s->drop_mu);
}

static void runs_add(page_runs *r, const void *p, size_t n)
{
    uintptr_t lo = (uintptr_t)p & ~(r->page - 1);
    uintptr_t hi = ((uintptr_t)p + n + r->page - 1) & ~(r->page - 1);
    if (r->hi > r->lo && lo <= r->hi && hi >= r->lo) { /* overlaps or touches the run */
        if (lo < r->lo) r->lo = lo;
        if (hi > r->hi) r->hi = hi;
        return;
    }
    runs_note(r);
    r->lo = lo;
    r->hi = hi;
}

int64_t ls_store_read_outbox(ls_store *s, uint64_t after, uint64_t upto, size_t max,
                             ls_store_outbox_cb cb, void *ud)
{
    unsigned char kb[8];
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val k, v;
    ls_store_event ev;
    int64_t n = 0;
    int rc;
    page_runs runs = {.s = s, .page = (uintptr_t)sysconf(_SC_PAGESIZE)};

    if (max == 0 || after >= upto) return 0;
    if ((rc = rd_begin(s, &txn)) < 0) return rc;
    if ((rc = mdb_cursor_open(txn, s->outbox, &c))) {
        n = fail(s, "opening a cursor", rc);
        goto end;
    }
    store__put_be64(kb, after + 1);
    k = (MDB_val){8, kb};
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); !rc && (size_t)n < max;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8) {
            ls_error(MOD, "%s: outbox key of %zu bytes, not 8: damaged", s->dir, k.mv_size);
            n = LS_STORE_ECORRUPT;
            break;
        }
        uint64_t seq = store__get_be64(k.mv_data);
        if (seq > upto) break;
        runs_add(&runs, k.mv_data, k.mv_size);
        runs_add(&runs, v.mv_data, v.mv_size);
        const char *why = store__event_decode(seq, v.mv_data, v.mv_size, &ev);
        if (why) {
            ls_error(MOD, "%s: outbox event seq %llu (%zu bytes): %s: damaged", s->dir,
                     (unsigned long long)seq, v.mv_size, why);
            n = LS_STORE_ECORRUPT;
            break;
        }
        int r = cb(ud, &ev);
        if (r < 0) {
            n = r;
            break;
        }
        n++;
    }
    if (n >= 0 && rc && rc != MDB_NOTFOUND) n = fail(s, "reading events", rc);
    mdb_cursor_close(c);
    runs_end(&runs); /* before rd_end(): no resize can remap meanwhile */
end:
    rd_end(s, txn);
    return n;
}

typedef struct line_read {
    ls_store_event_cb cb;
    void *ud;
} line_read;

static int line_cb(void *ud, const ls_store_event *ev)
{
    line_read *lr = ud;
    return lr->cb(lr->ud, ev->seq, ev->line, ev->line_len);
}

int64_t ls_store_read_events(ls_store *s, uint64_t after, size_t max, ls_store_event_cb cb,
                             void *ud)
{
    line_read lr = {.cb = cb, .ud = ud};
    return ls_store_read_outbox(s, after, UINT64_MAX, max, line_cb, &lr);
}

uint64_t ls_store_last_seq(ls_store *s)
{
    MDB_txn *txn;
    uint64_t last = 0, pruned = 0;
    int rc;
    if (rd_begin(s, &txn) < 0) return 0;
    if ((rc = outbox_last(s, txn, &last)) || (rc = meta_get_u64(s, txn, "pruned_upto", &pruned)))
        fail(s, "reading the last seq", rc);
    rd_end(s, txn);
    return last > pruned ? last : pruned;
}

uint64_t ls_store_first_seq(ls_store *s)
{
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t first = 0;
    int rc;
    if (rd_begin(s, &txn) < 0) return 0;
    if ((rc = mdb_cursor_open(txn, s->outbox, &c)) == 0) {
        rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        if (!rc && k.mv_size == 8)
            first = store__get_be64(k.mv_data);
        else if (!rc)
            rc = MDB_CORRUPTED;
        mdb_cursor_close(c);
    }
    if (rc && rc != MDB_NOTFOUND) fail(s, "reading the first seq", rc);
    rd_end(s, txn);
    return first;
}

uint64_t ls_store_cursor(ls_store *s, const char *sink)
{
    MDB_txn *txn;
    MDB_val k = {sink ? strlen(sink) : 0, (void *)sink}, v;
    uint64_t seq = 0;
    int rc;
    if (k.mv_size == 0 || k.mv_size > STORE__MAX_KEY) return 0;
    if (rd_begin(s, &txn) < 0) return 0;
    rc = mdb_get(txn, s->cursors, &k, &v);
    if (!rc && v.mv_size == 8)
        seq = store__get_le64(v.mv_data);
    else if (!rc)
        rc = MDB_CORRUPTED;
    if (rc && rc != MDB_NOTFOUND) fail(s, "reading a sink cursor", rc);
    rd_end(s, txn);
    return seq;
}

uint64_t ls_store_prunable(ls_store *s, int64_t cutoff)
{
    unsigned char kb[MARK_KEY];
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t upto = 0;
    int rc;
    if (rd_begin(s, &txn) < 0) return 0;
    if ((rc = mdb_cursor_open(txn, s->meta, &c)) == 0) {
        mark_key(kb, 0);
        k = (MDB_val){MARK_KEY, kb};
        for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); !rc;
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            if (k.mv_size != MARK_KEY || memcmp(k.mv_data, MARK_PREFIX, 4)) break;
            if (v.mv_size != 8) {
                rc = MDB_CORRUPTED;
                break;
            }
            /* Marks are in seq order; a clock step back makes times non-monotonic,
             * and stopping at the first later one keeps more, never less. */
            if ((int64_t)store__get_le64(v.mv_data) > cutoff) break;
            upto = store__get_be64((const unsigned char *)k.mv_data + 4) - 1;
        }
        mdb_cursor_close(c);
    }
    if (rc && rc != MDB_NOTFOUND) fail(s, "reading retention marks", rc);
    rd_end(s, txn);
    return upto;
}

/*
 * LMDB does not say where it mapped the file (me_mapaddr is only set for
 * MDB_FIXEDMAP), so the map is found in /proc/self/maps by the file's
 * device and inode.
 */
void ls_store_drop_pages(ls_store *s)
{
    struct stat sb;
    int fd;
    pthread_rwlock_rdlock(&s->map_lock);
    FILE *f = NULL;
    if (mdb_env_get_fd(s->env, &fd) || fstat(fd, &sb) < 0 ||
        !(f = fopen("/proc/self/maps", "re"))) {
        ls_warn(MOD, "%s/data.mdb: cannot find the map to drop its pages", s->dir);
        goto out;
    }
    char line[4352];
    while (fgets(line, sizeof(line), f)) {
        unsigned long long lo, hi, off, ino;
        unsigned maj, mnr;
        if (sscanf(line, "%llx-%llx %*s %llx %x:%x %llu", &lo, &hi, &off, &maj, &mnr, &ino) != 6)
            continue;
        if (ino != (unsigned long long)sb.st_ino || maj != major(sb.st_dev) ||
            mnr != minor(sb.st_dev))
            continue;
        if (madvise((void *)(uintptr_t)lo, (size_t)(hi - lo), MADV_DONTNEED) < 0)
            ls_warn(MOD, "%s/data.mdb: madvise(MADV_DONTNEED) of the map: %s", s->dir,
                    strerror(errno));
    }
    fclose(f);
out:
    pthread_rwlock_unlock(&s->map_lock);
}

void ls_store_usage(ls_store *s, uint64_t *map_size, uint64_t *used)
{
    MDB_envinfo info;
    MDB_stat st;
    *map_size = *used = 0;
    pthread_rwlock_rdlock(&s->map_lock);
    if (!mdb_env_info(s->env, &info) && !mdb_env_stat(s->env, &st)) {
        *map_size = info.me_mapsize;
        *used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    }
    pthread_rwlock_unlock(&s->map_lock);
}
