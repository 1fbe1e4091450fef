/*
 * export.c - `lastseen export`: the store's devices as JSON lines on stdout.
 *
 * One device a line, in the store's key order (byte order of the ids),
 * written by ls_format_record(), the writer GET /api/v1/devices/{id} uses,
 * from what GET shows it from: the device's record, its availability
 * resolved by the engine's own rule (ls_type_level_of() and
 * ls_availability_of()) from its own settings, its type's stored settings
 * and the configuration export runs with (state.default_inactivity_timeout,
 * availability.grace, state.monitor_by_default: give it the daemon's), and
 * its open alarm from the stored alarms.  So a line equals what GET
 * returns for the device, field for field.
 *
 * The store is opened read-only (store.h), so export works while a daemon
 * runs on the same data directory and never creates or changes anything.
 * It reads the types, then the alarms, then the devices, each in one read
 * transaction: the devices are one consistent state of the store, the
 * types and alarms the state just before.  What it cannot see: changes of
 * the last store.flush_interval that were only activity (lastActivityTime
 * of a device that stayed active) are still in the daemon's memory; every
 * transition, configuration and session is on disk before the API
 * acknowledged it.  Cost: one pass over the devices, streaming (one line
 * of memory), plus the types and alarms in memory; while stdout blocks,
 * the read transaction pins the pages it sees and a running daemon's file
 * grows.
 *
 * Also here: the option parsing and configuration layers both
 * subcommands share (import.c holds the other one).
 */
#include "app/export.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "core/daemon.h"
#include "core/format.h"
#include "engine/strmap.h"

extern char **environ;

#define MAX_SETS 256

static void usage(FILE *f, const char *name)
{
    if (!strcmp(name, "export"))
        fprintf(f,
                "usage: lastseen export [--data-dir DIR] [-c FILE] [--set KEY=VALUE]...\n"
                "\n"
                "Writes every device of the store in DIR (default: store.data_dir) to stdout\n"
                "as JSON lines, one device a line, with the fields of GET /api/v1/devices/{id}.\n"
                "Reads only: works while a daemon runs on the same directory.\n");
    else
        fprintf(f,
                "usage: lastseen import FILE|- [--data-dir DIR] [-c FILE] [--set KEY=VALUE]...\n"
                "\n"
                "Loads devices from JSON lines (as written by lastseen export; - reads stdin)\n"
                "into the store in DIR (default: store.data_dir), replacing devices with the same\n"
                "id.  Every line is checked first: one bad line and nothing is imported.  Refused\n"
                "while a daemon runs on the directory.\n");
    fprintf(f, "\n"
               "  --data-dir DIR      the data directory (beats store.data_dir)\n"
               "  -c, --config FILE   read an INI configuration file\n"
               "  --set KEY=VALUE     set one configuration key (section.key=value)\n"
               "  --help              print this help and exit\n");
}

/* "--opt VALUE" or "--opt=VALUE": the value, or NULL when argv[*i] is not opt. */
static const char *opt_value(int argc, char **argv, int *i, const char *opt, int *missing)
{
    size_t n = strlen(opt);
    const char *a = argv[*i];
    if (strncmp(a, opt, n) != 0) return NULL;
    if (a[n] == '=' && opt[1] == '-') return a + n + 1;
    if (a[n] != '\0') return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

int ls_cli__setup(ls_cli *c, int argc, char **argv, int want_file)
{
    const char *file = NULL, *data_dir = NULL, *sets[MAX_SETS];
    size_t nsets = 0;
    char err[1024];

    memset(c, 0, sizeof(*c));
    c->name = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int missing = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, c->name);
            return 0;
        } else if ((v = opt_value(argc, argv, &i, "--data-dir", &missing))) {
            data_dir = v;
        } else if ((v = opt_value(argc, argv, &i, "--config", &missing)) ||
                   (!missing && (v = opt_value(argc, argv, &i, "-c", &missing)))) {
            file = v;
        } else if ((v = opt_value(argc, argv, &i, "--set", &missing))) {
            if (nsets == MAX_SETS) {
                fprintf(stderr, "lastseen %s: more than %d --set options\n", c->name, MAX_SETS);
                return 2;
            }
            sets[nsets++] = v;
        } else if (missing) {
            fprintf(stderr, "lastseen %s: %s needs a value\n", c->name, a);
            return 2;
        } else if (want_file && !c->file && (a[0] != '-' || !strcmp(a, "-"))) {
            c->file = a;
        } else {
            fprintf(stderr, "lastseen %s: unexpected argument \"%s\" (see lastseen %s --help)\n",
                    c->name, a, c->name);
            return 2;
        }
    }
    if (want_file && !c->file) {
        fprintf(stderr, "lastseen %s: which file? (a path, or - for stdin; see --help)\n", c->name);
        return 2;
    }

    /* Layers in order of precedence, lowest first, as for the daemon. */
    ls_config_defaults(&c->cfg);
    if (file && ls_config_load_file(&c->cfg, file, err, sizeof(err)) < 0) {
        fprintf(stderr, "lastseen %s: %s\n", c->name, err);
        return 2;
    }
    if (ls_config_apply_env(&c->cfg, environ, err, sizeof(err)) < 0) {
        fprintf(stderr, "lastseen %s: %s\n", c->name, err);
        return 2;
    }
    for (size_t i = 0; i < nsets; i++) {
        if (ls_config_set(&c->cfg, sets[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "lastseen %s: %s\n", c->name, err);
            return 2;
        }
    }
    if (data_dir && ls_config_set_key(&c->cfg, "store.data_dir", data_dir, "--data-dir", err,
                                      sizeof(err)) < 0) {
        fprintf(stderr, "lastseen %s: %s\n", c->name, err);
        return 2;
    }
    if (snprintf(c->store_dir, sizeof(c->store_dir), "%s/store", c->cfg.data_dir) >=
        (int)sizeof(c->store_dir)) {
        fprintf(stderr, "lastseen %s: store.data_dir is too long\n", c->name);
        return 2;
    }
    ls_log_set_level(c->cfg.log_level);
    return -1;
}

/* A stored type's level, by name. */
typedef struct export_type {
    ls_type_level level;
    size_t len;
    char name[]; /* the map's key */
} export_type;

typedef struct export_state {
    FILE *out;
    ls_engine_config ec;
    ls_strmap types;    /* name -> export_type, the stored types the engine takes */
    ls_type_level none; /* the level of a type without settings */
    ls_alarms *alarms;  /* the stored alarms */
    ls_buf line;
    uint64_t devices;
    int write_errno; /* stdout failed with this */
} export_state;

static int type_cb(void *ud, const char *name, size_t len, const ls_type_config *c)
{
    export_state *st = ud;
    if (ls_engine_type_check(name, len, c) < 0) {
        /* The daemon does not restore it either (persist.c). */
        ls_warn("export", "stored device type %.*s is invalid: its devices show the default",
                (int)len, name);
        return 0;
    }
    export_type *t = malloc(sizeof(*t) + len);
    if (!t) return LS_ENOMEM;
    ls_type_level_of(c, &st->ec, &t->level);
    t->len = len;
    memcpy(t->name, name, len);
    if (ls_strmap_put(&st->types, t->name, len, t) < 0) {
        free(t);
        return LS_ENOMEM;
    }
    return 0;
}

static int alarm_cb(void *ud, const ls_alarm *a)
{
    export_state *st = ud;
    int rc = ls_alarms_restore(st->alarms, a);
    return rc == LS_ENOMEM ? rc : 0; /* an invalid one is not restored by the daemon either */
}

static int export_cb(void *ud, const ls_device_state *d)
{
    export_state *st = ud;
    int has_type = d->type && d->type_len;
    const export_type *t =
        ls_strmap_get(&st->types, has_type ? d->type : "default", has_type ? d->type_len : 7);
    ls_availability av;
    ls_availability_of(d->timeout_ms, d->has_c8y, d->response_interval, t ? &t->level : &st->none,
                       &st->ec, &av);
    ls_buf_reset(&st->line);
    if (ls_format_record(&st->line, d, &av, st->alarms) < 0 || ls_buf_putc(&st->line, '\n') < 0)
        return LS_ENOMEM;
    errno = 0;
    if (fwrite(st->line.p, 1, st->line.len, st->out) != st->line.len) {
        st->write_errno = errno ? errno : EIO;
        return -st->write_errno;
    }
    st->devices++;
    return 0;
}

static void free_types(export_state *st)
{
    for (uint64_t i = 0; st->types.e && i <= st->types.mask; i++)
        if (st->types.e[i].key) free(st->types.e[i].val);
    ls_strmap_close(&st->types);
}

int ls_export_main(int argc, char **argv)
{
    ls_cli c;
    ls_store *s;
    int rc = ls_cli__setup(&c, argc, argv, 0);
    if (rc >= 0) return rc;

    ls_store_options o = {.read_only = 1};
    if ((rc = ls_store_open(&s, c.store_dir, &o)) < 0) {
        if (rc == -ENOENT)
            fprintf(stderr,
                    "lastseen export: no store in %s (store.data_dir %s): nothing to export\n",
                    c.store_dir, c.cfg.data_dir);
        else
            fprintf(stderr, "lastseen export: cannot open the store in %s: %s\n", c.store_dir,
                    ls_strerror(rc));
        return 1;
    }
    export_state st = {.out = stdout, .ec = ls_core_engine_config(&c.cfg)};
    ls_type_level_of(NULL, &st.ec, &st.none);
    ls_strmap_init(&st.types, 0x6c617374);
    ls_buf_init(&st.line, 1 << 16);
    rc = ls_alarms_new(&st.alarms, NULL, NULL, 0x7365656e);
    if (rc >= 0) rc = ls_store_load_types(s, type_cb, &st);
    if (rc >= 0) rc = ls_store_load_alarms(s, alarm_cb, &st);
    if (rc >= 0) rc = ls_store_load_devices(s, export_cb, &st);
    ls_store_close(s);
    ls_buf_free(&st.line);
    ls_alarms_close(st.alarms);
    free_types(&st);
    errno = 0;
    if ((fflush(stdout) != 0 || ferror(stdout)) && !st.write_errno)
        st.write_errno = errno ? errno : EIO;
    if (st.write_errno) {
        fprintf(stderr, "lastseen export: cannot write to stdout: %s\n", strerror(st.write_errno));
        return 1;
    }
    if (rc < 0) {
        fprintf(stderr, "lastseen export: stopped after %llu devices: %s\n",
                (unsigned long long)st.devices, ls_strerror(rc));
        return 1;
    }
    fprintf(stderr, "exported %llu devices\n", (unsigned long long)st.devices);
    return 0;
}
