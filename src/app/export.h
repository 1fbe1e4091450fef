/*
 * export.h - `lastseen export` and `lastseen import`: the store as JSON
 * lines, one device a line, in the shape GET /api/v1/devices/{id} returns.
 */
#ifndef LS_EXPORT_H
#define LS_EXPORT_H

#include <stddef.h>

#include "conf/config.h"
#include "store/store.h"

/*
 * The subcommands.  argv[0] is the subcommand's name.  Each returns the
 * process exit code: 0 done, 1 failed (with a message on stderr), 2 bad
 * arguments or configuration.
 */
int ls_export_main(int argc, char **argv);
int ls_import_main(int argc, char **argv);

/*
 * Parses one line of an export (n bytes) into a device record appended to
 * `b`.  Returns 0, or -1 with a reason (NUL-terminated) in why.
 * Exposed for the unit and fuzz tests.
 */
int ls_import_line(ls_store_batch *b, const char *p, size_t n, char *why, size_t whylen);

/* Shared by both subcommands (export.c). */
typedef struct ls_cli {
    const char *name; /* "export" or "import" */
    ls_config cfg;    /* defaults < file < LASTSEEN_* < --set < --data-dir */
    const char *file; /* the positional argument (import) */
    char store_dir[4200];
} ls_cli;

/*
 * Parses [--data-dir DIR] [-c FILE] [--set k=v]... and, when want_file,
 * exactly one positional FILE ("-" included), then loads the configuration
 * layers and sets the log level.  Returns -1 when the command should
 * run, else the exit code to return at once: 0 after --help, 2 after an
 * error (already reported on stderr).
 */
int ls_cli__setup(ls_cli *c, int argc, char **argv, int want_file);

#endif
