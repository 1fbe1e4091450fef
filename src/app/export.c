/*
 * export.c - `lastseen export`: the store's devices as JSON lines on stdout.
 *
 * One device a line, in the store's key order (byte order of the ids),
 * with exactly the fields and names of GET /api/v1/devices/{id}: the line
 * is written by ls_format_device_fields(), the function the API's own
 * ls_format_device() ends in.  A device without its own timeout reports
 * state.default_inactivity_timeout of the configuration export runs with,
 * as the daemon would.
 *
 * The store is opened read-only (store.h), so export works while a daemon
 * runs on the same data directory and never creates or changes anything.
 * It reads the devices in one read transaction: the output is one
 * consistent state of the store.  What it cannot see: changes of the last
 * store.flush_interval that were only activity (lastActivityTime of a
 * device that stayed active) are still in the daemon's memory; every
 * transition, configuration and session is on disk before the API
 * acknowledged it.  Cost: one pass over the store, streaming (one line of
 * memory); while stdout blocks, the read transaction pins the pages it
 * sees and a running daemon's file grows.
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
#include "core/format.h"

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

typedef struct export_state {
    FILE *out;
    int64_t default_timeout;
    ls_buf line;
    uint64_t devices;
    int write_errno; /* stdout failed with this */
} export_state;

static int export_cb(void *ud, const ls_device_state *d)
{
    export_state *st = ud;
    ls_device_fields f = {
        .id = d->id,
        .id_len = d->id_len,
        .type = d->type && d->type_len ? d->type : "default",
        .type_len = d->type && d->type_len ? d->type_len : 7,
        .active = d->active,
        .last_activity = d->last_activity,
        .last_connect = d->last_connect,
        .last_disconnect = d->last_disconnect,
        .inactivity_alarm = d->inactivity_alarm,
        .timeout_ms = d->timeout_ms ? d->timeout_ms : st->default_timeout,
        .timeout_source = d->timeout_ms ? "device" : "default",
        .sessions = d->sessions,
        .has_c8y = d->has_c8y,
        .response_interval = d->response_interval,
    };
    ls_buf_reset(&st->line);
    if (ls_format_device_fields(&st->line, &f) < 0 || ls_buf_putc(&st->line, '\n') < 0)
        return -ENOMEM;
    errno = 0;
    if (fwrite(st->line.p, 1, st->line.len, st->out) != st->line.len) {
        st->write_errno = errno ? errno : EIO;
        return -st->write_errno;
    }
    st->devices++;
    return 0;
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
    export_state st = {.out = stdout, .default_timeout = c.cfg.state_default_inactivity_timeout};
    ls_buf_init(&st.line, 1 << 16);
    rc = ls_store_load_devices(s, export_cb, &st);
    ls_store_close(s);
    ls_buf_free(&st.line);
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
