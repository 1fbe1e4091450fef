/*
 * main.c - command line: lastseen [-c FILE] [--set section.key=value]...
 *          [--check-config] [--version] [--help]
 *          lastseen export|import ... (export.c, import.c)
 *          lastseen token create|list|revoke ... (token.c)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "app/root.h"
#include "app/export.h"
#include "app/token.h"
#include "api/http.h"
#include "api/routes.h"
#include "base/log.h"

extern char **environ;

static void usage(FILE *f)
{
    fprintf(f, "usage: lastseen [-c FILE] [--set section.key=value]... [--check-config]\n"
               "                [--version] [--help]\n"
               "       lastseen export [--data-dir DIR] [-c FILE] [--set KEY=VALUE]...\n"
               "       lastseen import FILE|- [--data-dir DIR] [-c FILE] [--set KEY=VALUE]...\n"
               "       lastseen token create NAME --scope S | list | revoke NAME [--data-dir DIR]\n"
               "\n"
               "Tracks the last activity of every device and raises INACTIVITY_EVENT the\n"
               "moment a device's inactivity timeout elapses.  HTTP API: docs/api.md.\n"
               "\n"
               "  -c, --config FILE   read an INI configuration file\n"
               "  --set KEY=VALUE     set one key (beats LASTSEEN_* variables and the file)\n"
               "  --check-config      validate the configuration and exit\n"
               "  --version           print the version and exit\n"
               "  --help              print this help and exit\n"
               "\n"
               "  export              write the store's devices to stdout as JSON lines (works\n"
               "                      while a daemon runs); see lastseen export --help\n"
               "  import FILE         load devices from such JSON lines (- = stdin) into the\n"
               "                      store, all or nothing, while no daemon runs on it\n"
               "  token               API credentials: create (printed once), list, revoke;\n"
               "                      see lastseen token --help and docs/security.md\n"
               "\n"
               "Every key can also be set with LASTSEEN_SECTION_KEY in the environment.\n"
               "Precedence: --set > environment > file > default.\n\n");
}

int main(int argc, char **argv)
{
    const char *file = NULL;
    int check = 0;
    char err[1024];
    ls_config cfg;

    if (argc > 1 && !strcmp(argv[1], "export")) return ls_export_main(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "import")) return ls_import_main(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "token")) return ls_token_main(argc - 1, argv + 1);

    /* First pass: options that do not need a configuration. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--version")) {
            printf("lastseen %s\n", LS_VERSION);
            return 0;
        } else if (!strcmp(a, "--config-markdown")) {
            ls_config_print_markdown(stdout); /* the table of docs/configuration.md */
            return 0;
        } else if (!strcmp(a, "--routes-markdown")) {
            ls_routes_print_markdown(stdout); /* the route table of docs/api.md */
            return 0;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            ls_config_print_help(stdout);
            return 0;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--config") || !strcmp(a, "--set")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lastseen: %s needs a value\n", a);
                return 2;
            }
            if (a[1] != '-' || !strcmp(a, "--config")) file = argv[i + 1];
            i++;
        } else if (!strncmp(a, "--set=", 6) || !strncmp(a, "--config=", 9)) {
            if (a[2] == 'c') file = a + 9;
        } else if (!strcmp(a, "--check-config")) {
            check = 1;
        } else {
            fprintf(stderr, "lastseen: unknown argument \"%s\" (see --help)\n", a);
            return 2;
        }
    }

    /* Layers in order of precedence, lowest first. */
    ls_config_defaults(&cfg);
    if (file && ls_config_load_file(&cfg, file, err, sizeof(err)) < 0) {
        fprintf(stderr, "lastseen: %s\n", err);
        return 2;
    }
    if (ls_config_apply_env(&cfg, environ, err, sizeof(err)) < 0) {
        fprintf(stderr, "lastseen: %s\n", err);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (!strcmp(argv[i], "--set"))
            v = argv[++i];
        else if (!strncmp(argv[i], "--set=", 6))
            v = argv[i] + 6;
        else if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config"))
            i++;
        if (v && ls_config_set(&cfg, v, err, sizeof(err)) < 0) {
            fprintf(stderr, "lastseen: %s\n", err);
            return 2;
        }
    }
    if (ls_config_validate(&cfg, err, sizeof(err)) < 0 ||
        ls_http_check(&cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "lastseen: %s\n", err);
        return 2;
    }
    if (check) {
        printf("configuration ok\n");
        return 0;
    }

    ls_log_set_level(cfg.log_level);
    ls_daemon d;
    int rc = ls_daemon_start(&d, &cfg);
    if (rc == 0) rc = ls_daemon_run(&d);
    ls_daemon_stop(&d);
    if (rc == 0 && ls_core_unsaved(&d)) {
        ls_error("daemon", "stopped with changes not saved (see above)");
        return 1;
    }
    if (rc < 0) {
        ls_error("daemon", "stopped on error");
        return 1;
    }
    ls_info("daemon", "stopped");
    return 0;
}
