/*
 * token.c - `lastseen token create|list|revoke`: the API's credentials.
 *
 * The tokens live in <store.data_dir>/tokens (api/tokens.h has the file's
 * format and why tokens are stored only hashed).  These commands work
 * whether or not a daemon runs on the directory: they never take the
 * directory's daemon lock; they rewrite the file whole (a new file renamed
 * over the old), and a running daemon notices the change within a second
 * (api/auth.c).  Two of them at once are kept apart by a flock on the data
 * directory itself, so that neither loses the other's change.
 *
 * create prints the token once, on its last line of output: it cannot be
 * shown again (only its hash is kept); revoke it and create another if it
 * is lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "api/tokens.h"
#include "app/export.h"
#include "app/token.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/lockfile.h"
#include "core/format.h"

#define MAX_ARGS 512

static void usage(FILE *f)
{
    fprintf(f,
            "usage: lastseen token create NAME --scope SCOPES [--data-dir DIR] [-c FILE] [--set "
            "K=V]...\n"
            "       lastseen token list [--data-dir DIR] [-c FILE] [--set K=V]...\n"
            "       lastseen token revoke NAME [--data-dir DIR] [-c FILE] [--set K=V]...\n"
            "\n"
            "Manages the API's credentials in DIR/tokens (default: store.data_dir), whether or\n"
            "not a daemon runs on DIR: a running daemon takes a change within a second.  Once a\n"
            "token exists, every API route needs one (docs/security.md).\n"
            "\n"
            "  create NAME         make a token named NAME (1-64 of A-Z a-z 0-9 . _ -); it is\n"
            "                      printed once, on the last line, and only its hash is kept\n"
            "  --scope SCOPES      what it may do, comma-separated: read (GET routes, the event\n"
            "                      stream, the dashboard), ingest (activity, bulk,\n"
            "                      connect/disconnect), admin (device and type configuration,\n"
            "                      deletes, alarm status)\n"
            "  list                the tokens: name, scopes, when made\n"
            "  revoke NAME         delete a token: requests with it are refused from then on\n"
            "  --data-dir DIR      the data directory (beats store.data_dir)\n"
            "  -c, --config FILE   read an INI configuration file\n"
            "  --set KEY=VALUE     set one configuration key (section.key=value)\n");
}

/* Holds the data directory's flock for a change (closed at exit). */
static int lock_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || flock(fd, LOCK_EX) < 0) {
        fprintf(stderr, "lastseen token: cannot lock %s: %s\n", dir, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

static int list(const ls_tokens *t, const char *path)
{
    printf("%-24s %-20s %s\n", "NAME", "SCOPES", "CREATED");
    for (size_t i = 0; i < t->n; i++) {
        char scopes[32], when[40];
        ls_scopes_format(t->v[i].scopes, scopes, sizeof(scopes));
        ls_format_iso8601(when, sizeof(when), t->v[i].created);
        printf("%-24s %-20s %s\n", t->v[i].name, scopes, when);
    }
    if (!t->n) fprintf(stderr, "lastseen token: no token in %s\n", path);
    return 0;
}

int ls_token_main(int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : NULL, *name = NULL, *scopes = NULL;
    char *rest[MAX_ARGS];
    int nrest = 0;
    if (!verb || !strcmp(verb, "--help") || !strcmp(verb, "-h")) {
        usage(verb ? stdout : stderr);
        return verb ? 0 : 2;
    }
    int create = !strcmp(verb, "create"), revoke = !strcmp(verb, "revoke");
    if (!create && !revoke && strcmp(verb, "list")) {
        fprintf(stderr, "lastseen token: unknown command \"%s\" (create, list or revoke)\n", verb);
        return 2;
    }
    rest[nrest++] = argv[0];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--scope") && i + 1 < argc) {
            scopes = argv[++i];
        } else if (!strncmp(a, "--scope=", 8)) {
            scopes = a + 8;
        } else if (!strcmp(a, "--scope")) {
            fprintf(stderr, "lastseen token: --scope needs a value\n");
            return 2;
        } else if ((create || revoke) && !name && a[0] != '-') {
            name = a;
        } else if (nrest < MAX_ARGS - 1) {
            rest[nrest++] = argv[i]; /* --data-dir, -c, --set: ls_cli__setup's */
        }
    }
    if ((create || revoke) && !name) {
        fprintf(stderr, "lastseen token %s: which token? (a NAME; see lastseen token --help)\n",
                verb);
        return 2;
    }
    if (scopes && !create) {
        fprintf(stderr, "lastseen token %s: --scope is for create only\n", verb);
        return 2;
    }
    unsigned bits = 0;
    if (create) {
        const char *why = ls_token_name_check(name, strlen(name));
        if (why) {
            fprintf(stderr, "lastseen token create: \"%s\": %s\n", name, why);
            return 2;
        }
        if (!scopes || ls_scopes_parse(scopes, &bits) < 0) {
            fprintf(stderr, "lastseen token create: --scope takes read, ingest and/or admin, "
                            "comma-separated (--scope read,ingest)\n");
            return 2;
        }
    }

    ls_cli c;
    int rc = ls_cli__setup(&c, nrest, rest, 0);
    if (rc >= 0) return rc;
    char path[4200];
    if (snprintf(path, sizeof(path), "%s/%s", c.cfg.data_dir, LS_TOKENS_FILE) >=
        (int)sizeof(path)) {
        fprintf(stderr, "lastseen token: store.data_dir is too long\n");
        return 2;
    }
    int lock = -1;
    if (create || revoke) {
        if (create && (rc = ls_lockfile_mkdirs(c.cfg.data_dir)) < 0) {
            fprintf(stderr, "lastseen token: cannot create %s: %s\n", c.cfg.data_dir,
                    ls_strerror(rc));
            return 1;
        }
        if ((lock = lock_dir(c.cfg.data_dir)) < 0) return 1;
    }
    ls_tokens t = {0};
    char why[256], text[LS_TOKEN_TEXT_LEN + 1];
    if ((rc = ls_tokens_load(&t, path, why, sizeof(why))) < 0) {
        fprintf(stderr, "lastseen token: %s: %s\n", path, why);
        rc = 1;
    } else if (!create && !revoke) {
        rc = list(&t, path);
    } else if (revoke && ls_tokens_remove(&t, name) < 0) {
        fprintf(stderr, "lastseen token revoke: no token named \"%s\" in %s\n", name, path);
        rc = 1;
    } else if (create && (rc = ls_tokens_add(&t, name, bits, ls_clock_now().wall, text)) < 0) {
        if (rc == -EEXIST)
            fprintf(stderr, "lastseen token create: a token named \"%s\" exists; revoke it first\n",
                    name);
        else
            fprintf(stderr, "lastseen token create: %s\n",
                    rc == LS_EFULL ? "1024 tokens exist already" : ls_strerror(rc));
        rc = 1;
    } else if ((rc = ls_tokens_save(&t, path)) < 0) {
        fprintf(stderr, "lastseen token: cannot write %s: %s\n", path, ls_strerror(rc));
        rc = 1;
    } else if (revoke) {
        printf("token \"%s\" revoked; a running daemon refuses it within a second\n", name);
    } else {
        char sc[32];
        ls_scopes_format(bits, sc, sizeof(sc));
        printf("token \"%s\" created with scope %s; it is shown only now, keep it secret "
               "(Authorization: Bearer TOKEN):\n%s\n",
               name, sc, text);
    }
    memset(text, 0, sizeof(text));
    ls_tokens_free(&t);
    if (lock >= 0) close(lock);
    return rc;
}
