/*
 * test_tokens.c - unit tests for the API's credentials: scopes and names,
 * making and checking tokens (bearer and Basic), the token file (round
 * trip, mode, errors), the Authorization header parser, and the checks of
 * auth.c against a token file (required or not, 401/403, the switches of
 * /healthz and /metrics, a reload after the file changes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "api/auth.h"
#include "api/tokens.h"
#include "base/err.h"

static void test_scopes(void **state)
{
    (void)state;
    unsigned s;
    char buf[64];
    assert_int_equal(ls_scopes_parse("read", &s), 0);
    assert_int_equal(s, LS_SCOPE_READ);
    assert_int_equal(ls_scopes_parse("Admin, ingest", &s), 0);
    assert_int_equal(s, LS_SCOPE_ADMIN | LS_SCOPE_INGEST);
    assert_int_equal(ls_scopes_parse("read,read", &s), 0);
    assert_int_equal(s, LS_SCOPE_READ);
    assert_int_equal(ls_scopes_parse("", &s), -EINVAL);
    assert_int_equal(ls_scopes_parse(",", &s), -EINVAL);
    assert_int_equal(ls_scopes_parse("write", &s), -EINVAL);
    assert_int_equal(ls_scopes_parse("read,reader", &s), -EINVAL);
    ls_scopes_format(LS_SCOPES_ALL, buf, sizeof(buf));
    assert_string_equal(buf, "read,ingest,admin");
    ls_scopes_format(LS_SCOPE_ADMIN, buf, sizeof(buf));
    assert_string_equal(buf, "admin");
    ls_scopes_format(0, buf, sizeof(buf));
    assert_string_equal(buf, "");
}

static void test_names(void **state)
{
    (void)state;
    assert_null(ls_token_name_check("ops", 3));
    assert_null(ls_token_name_check("gw-7.site_2", 11));
    assert_non_null(ls_token_name_check("", 0));
    assert_non_null(ls_token_name_check("-x", 2));
    assert_non_null(ls_token_name_check("a b", 3));
    assert_non_null(ls_token_name_check("a:b", 3)); /* Basic splits at ':' */
    char long_name[66];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    assert_null(ls_token_name_check(long_name, 64));
    assert_non_null(ls_token_name_check(long_name, 65));
}

static void test_add_check(void **state)
{
    (void)state;
    ls_tokens t = {0};
    char a[LS_TOKEN_TEXT_LEN + 1], b[LS_TOKEN_TEXT_LEN + 1], c[LS_TOKEN_TEXT_LEN + 1];
    assert_int_equal(ls_tokens_add(&t, "ops", LS_SCOPES_ALL, 1000, a), 0);
    assert_int_equal(ls_tokens_add(&t, "gw", LS_SCOPE_INGEST, 2000, b), 0);
    assert_int_equal(ls_tokens_add(&t, "ops", LS_SCOPE_READ, 3000, c), -EEXIST);
    assert_int_equal(ls_tokens_add(&t, "x", 0, 3000, c), LS_EINVAL);
    assert_int_equal(ls_tokens_add(&t, "bad name", LS_SCOPE_READ, 3000, c), LS_EINVAL);
    assert_int_equal(strlen(a), LS_TOKEN_TEXT_LEN);
    assert_memory_equal(a, "lst_", 4);
    assert_string_not_equal(a, b);
    for (size_t i = 4; i < LS_TOKEN_TEXT_LEN; i++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", a[i]));

    const ls_token *k = ls_tokens_check(&t, a, strlen(a));
    assert_non_null(k);
    assert_string_equal(k->name, "ops");
    assert_int_equal(k->scopes, LS_SCOPES_ALL);
    k = ls_tokens_check(&t, b, strlen(b));
    assert_non_null(k);
    assert_string_equal(k->name, "gw");
    assert_int_equal(k->created, 2000);

    /* Nothing but the exact text. */
    assert_null(ls_tokens_check(&t, a, strlen(a) - 1));
    char w[LS_TOKEN_TEXT_LEN + 1];
    memcpy(w, a, sizeof(w));
    w[10] ^= 1;
    assert_null(ls_tokens_check(&t, w, strlen(w)));
    assert_null(ls_tokens_check(&t, "", 0));

    /* Basic: the name must be the token's own. */
    assert_non_null(ls_tokens_check_named(&t, "ops", 3, a, strlen(a)));
    assert_null(ls_tokens_check_named(&t, "gw", 2, a, strlen(a)));
    assert_null(ls_tokens_check_named(&t, "nobody", 6, a, strlen(a)));

    assert_int_equal(ls_tokens_remove(&t, "ops"), 0);
    assert_int_equal(ls_tokens_remove(&t, "ops"), LS_ENOTFOUND);
    assert_null(ls_tokens_check(&t, a, strlen(a)));
    assert_non_null(ls_tokens_check(&t, b, strlen(b)));
    ls_tokens_free(&t);
}

static void test_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/ls-test-tokens-XXXXXX", path[64], why[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/tokens", dir);

    ls_tokens t = {0}, u = {0};
    assert_int_equal(ls_tokens_load(&u, path, why, sizeof(why)), 0); /* missing: none */
    assert_int_equal(u.n, 0);
    char a[LS_TOKEN_TEXT_LEN + 1], b[LS_TOKEN_TEXT_LEN + 1];
    assert_int_equal(ls_tokens_add(&t, "ops", LS_SCOPE_READ | LS_SCOPE_ADMIN, 1234, a), 0);
    assert_int_equal(ls_tokens_add(&t, "gw", LS_SCOPE_INGEST, 5678, b), 0);
    assert_int_equal(ls_tokens_save(&t, path), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    assert_int_equal(ls_tokens_load(&u, path, why, sizeof(why)), 0);
    assert_int_equal(u.n, 2);
    const ls_token *k = ls_tokens_check(&u, a, strlen(a));
    assert_non_null(k);
    assert_string_equal(k->name, "ops");
    assert_int_equal(k->scopes, LS_SCOPE_READ | LS_SCOPE_ADMIN);
    assert_int_equal(k->created, 1234);
    assert_non_null(ls_tokens_check_named(&u, "gw", 2, b, strlen(b)));

    /* The clear text is nowhere in the file. */
    FILE *f = fopen(path, "r");
    char text[4096];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_null(strstr(text, a + 4));
    assert_null(strstr(text, b + 4));

    ls_tokens_free(&t);
    ls_tokens_free(&u);
    unlink(path);
    rmdir(dir);
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const char salt[] = "00112233445566778899aabbccddeeff";
    static const char hash[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    char good[512], text[2048], why[256];
    snprintf(good, sizeof(good), "ops read 1 0011223344556677 %s %s\n", salt, hash);
    ls_tokens t = {0};

    snprintf(text, sizeof(text), "lastseen-tokens 1\n# comment\n\n%s", good);
    assert_int_equal(ls_tokens_parse(&t, text, strlen(text), why, sizeof(why)), 0);
    assert_int_equal(t.n, 1);
    snprintf(text, sizeof(text), "lastseen-tokens 1\r\n%.*s\r\n", (int)strlen(good) - 1, good);
    assert_int_equal(ls_tokens_parse(&t, text, strlen(text), why, sizeof(why)), 0);
    assert_int_equal(t.n, 1);

    static const struct {
        const char *text;
        const char *why;
    } bad[] = {
        {"", "line 1"},
        {"lastseen-tokens 2\n", "line 1"},
        {"ops read 1 0011223344556677\n", "line 1"},
        {"lastseen-tokens 1\nops read 1\n", "line 2: expected 6 fields"},
        {"lastseen-tokens 1\nops write 1 0011223344556677 a b\n", "line 2: scopes"},
        {"lastseen-tokens 1\n-ops read 1 0011223344556677 a b\n", "line 2: invalid token name"},
        {"lastseen-tokens 1\nops read x 0011223344556677 a b\n", "line 2: created"},
        {"lastseen-tokens 1\nops read 1 0011223344556677 zz b\n", "line 2: tag, salt and hash"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        if (ls_tokens_parse(&t, bad[i].text, strlen(bad[i].text), why, sizeof(why)) != -EINVAL)
            fail_msg("accepted %s", bad[i].text);
        if (!strstr(why, bad[i].why)) fail_msg("%s: %s, want %s", bad[i].text, why, bad[i].why);
        assert_int_equal(t.n, 0);
    }
    snprintf(text, sizeof(text), "lastseen-tokens 1\n%s%s", good, good);
    assert_int_equal(ls_tokens_parse(&t, text, strlen(text), why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "line 3: a second token"));
    ls_tokens_free(&t);
}

static void basic(char *out, size_t len, const char *userpass)
{
    assert_true(len > 6 + 4 * (strlen(userpass) + 2) / 3);
    memcpy(out, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)userpass,
                    (int)strlen(userpass));
}

static void test_header(void **state)
{
    (void)state;
    ls_auth_cred c;
    char h[600];
    assert_int_equal(ls_auth_parse(NULL, &c), 0);
    assert_int_equal(c.kind, LS_CRED_NONE);
    assert_int_equal(ls_auth_parse("Bearer lst_abc  ", &c), 0);
    assert_int_equal(c.kind, LS_CRED_BEARER);
    assert_int_equal(c.token_len, 7);
    assert_memory_equal(c.token, "lst_abc", 7);
    assert_int_equal(ls_auth_parse("bearer\tx", &c), 0);
    assert_int_equal(c.kind, LS_CRED_BEARER);
    assert_int_equal(ls_auth_parse("Bearer ", &c), -1);
    assert_int_equal(ls_auth_parse("Bearerx y", &c), -1);
    assert_int_equal(c.kind, LS_CRED_OTHER);
    assert_int_equal(ls_auth_parse("Digest x", &c), -1);
    assert_int_equal(c.kind, LS_CRED_OTHER);

    for (const char *up = "ops:secret"; up; up = strcmp(up, "ops:secret") ? NULL : "o:s:t") {
        basic(h, sizeof(h), up);
        assert_int_equal(ls_auth_parse(h, &c), 0);
        assert_int_equal(c.kind, LS_CRED_BASIC);
        const char *colon = strchr(up, ':');
        assert_int_equal(c.name_len, (size_t)(colon - up));
        assert_memory_equal(c.name, up, c.name_len);
        assert_int_equal(c.token_len, strlen(colon + 1));
        assert_memory_equal(c.token, colon + 1, c.token_len);
    }
    for (size_t n = 1; n <= 4; n++) { /* every padding */
        char up[8] = "a:";
        memset(up + 2, 'x', n);
        up[2 + n] = '\0';
        basic(h, sizeof(h), up);
        assert_int_equal(ls_auth_parse(h, &c), 0);
        assert_int_equal(c.token_len, n);
    }
    basic(h, sizeof(h), "no-colon");
    assert_int_equal(ls_auth_parse(h, &c), -1);
    assert_int_equal(ls_auth_parse("Basic abc", &c), -1);  /* not a multiple of 4 */
    assert_int_equal(ls_auth_parse("Basic ab!=", &c), -1); /* not base64 */
    assert_int_equal(ls_auth_parse("Basic ", &c), -1);
    char big[600] = "Basic ";
    memset(big + 6, 'A', 520);
    big[526] = '\0';
    assert_int_equal(ls_auth_parse(big, &c), -1);
}

/* ---- auth.c against a token file ---------------------------------------- */

typedef struct fixture {
    char dir[40], path[64];
    char ops[LS_TOKEN_TEXT_LEN + 1], gw[LS_TOKEN_TEXT_LEN + 1];
    ls_config cfg;
} fixture;

static void fixture_init(fixture *f, int with_tokens)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/ls-test-auth-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/tokens", f->dir);
    ls_config_defaults(&f->cfg);
    snprintf(f->cfg.data_dir, sizeof(f->cfg.data_dir), "%s", f->dir);
    if (!with_tokens) return;
    ls_tokens t = {0};
    assert_int_equal(ls_tokens_add(&t, "ops", LS_SCOPE_READ | LS_SCOPE_ADMIN, 1, f->ops), 0);
    assert_int_equal(ls_tokens_add(&t, "gw", LS_SCOPE_INGEST, 1, f->gw), 0);
    assert_int_equal(ls_tokens_save(&t, f->path), 0);
    ls_tokens_free(&t);
}

static void fixture_free(fixture *f)
{
    unlink(f->path);
    rmdir(f->dir);
}

static unsigned check(ls_auth *a, const char *header, unsigned access, int64_t now,
                      ls_auth_result *res)
{
    ls_auth_check(a, header, access, now, res);
    return res->status;
}

static void test_auth_checks(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, 1);
    ls_auth *a;
    assert_int_equal(ls_auth_open(&a, &f.cfg, 1), 0);
    assert_true(ls_auth_required(a));
    ls_auth_result r;
    char h[600];

    assert_int_equal(check(a, NULL, LS_SCOPE_READ, 0, &r), 401);
    assert_int_equal(r.bearer, 0);
    assert_int_equal(check(a, "Bearer lst_nope", LS_SCOPE_READ, 0, &r), 401);
    assert_int_equal(r.bearer, 1);
    snprintf(h, sizeof(h), "Bearer %s", f.ops);
    assert_int_equal(check(a, h, LS_SCOPE_READ, 0, &r), 0);
    assert_string_equal(r.who, "ops");
    assert_int_equal(r.scopes, LS_SCOPE_READ | LS_SCOPE_ADMIN);
    assert_int_equal(check(a, h, LS_SCOPE_INGEST, 0, &r), 403);
    assert_int_equal(r.need, LS_SCOPE_INGEST);
    assert_int_equal(check(a, h, LS_ACCESS_ANY, 0, &r), 0);
    assert_int_equal(check(a, h, LS_SCOPE_ADMIN | LS_ACCESS_PING, 0, &r), 0);
    snprintf(h, sizeof(h), "Bearer %s", f.gw);
    assert_int_equal(check(a, h, LS_SCOPE_ADMIN | LS_ACCESS_PING, 0, &r),
                     0); /* the handler narrows */
    assert_int_equal(check(a, h, LS_SCOPE_ADMIN, 0, &r), 403);
    assert_int_equal(check(a, h, LS_ACCESS_PUBLIC, 0, &r), 0);
    assert_int_equal(check(a, "Bearer x", LS_ACCESS_PUBLIC, 0, &r), 0); /* not looked at */
    /* The switches: /healthz open, /metrics closed by default. */
    assert_int_equal(check(a, NULL, LS_ACCESS_ANY | LS_ACCESS_HEALTHZ, 0, &r), 0);
    assert_int_equal(check(a, NULL, LS_SCOPE_READ | LS_ACCESS_METRICS, 0, &r), 401);
    assert_int_equal(check(a, h, LS_SCOPE_READ | LS_ACCESS_METRICS, 0, &r), 403);
    /* Basic: user = the token's name. */
    char up[128];
    snprintf(up, sizeof(up), "gw:%s", f.gw);
    basic(h, sizeof(h), up);
    assert_int_equal(check(a, h, LS_SCOPE_INGEST, 0, &r), 0);
    assert_string_equal(r.who, "gw");
    snprintf(up, sizeof(up), "ops:%s", f.gw);
    basic(h, sizeof(h), up);
    assert_int_equal(check(a, h, LS_SCOPE_INGEST, 0, &r), 401);
    assert_int_equal(check(a, "Digest x", LS_SCOPE_READ, 0, &r), 401);

    /* Revoked in the file: refused once a second has passed, not before. */
    snprintf(h, sizeof(h), "Bearer %s", f.gw);
    assert_int_equal(check(a, h, LS_SCOPE_INGEST, 1000, &r), 0); /* the file looked at */
    ls_tokens t = {0};
    char why[256];
    assert_int_equal(ls_tokens_load(&t, f.path, why, sizeof(why)), 0);
    assert_int_equal(ls_tokens_remove(&t, "gw"), 0);
    assert_int_equal(ls_tokens_save(&t, f.path), 0);
    ls_tokens_free(&t);
    assert_int_equal(check(a, h, LS_SCOPE_INGEST, 1500, &r), 0); /* looked at 500 ms ago */
    assert_int_equal(check(a, h, LS_SCOPE_INGEST, 2000, &r), 401);
    /* The last one revoked: on loopback, no credential is needed any more. */
    unlink(f.path);
    assert_int_equal(check(a, NULL, LS_SCOPE_READ, 3000, &r), 0);
    assert_false(ls_auth_required(a));
    ls_auth_close(a);
    fixture_free(&f);
}

static void test_auth_start(void **state)
{
    (void)state;
    fixture f;
    char err[1024];
    ls_auth *a;
    ls_auth_result r;

    /* No token on loopback: open; not on loopback: refused, unless http.auth = off. */
    fixture_init(&f, 0);
    assert_int_equal(ls_auth_precheck(&f.cfg, 1, err, sizeof(err)), 0);
    assert_int_equal(ls_auth_open(&a, &f.cfg, 1), 0);
    assert_false(ls_auth_required(a));
    assert_int_equal(check(a, NULL, LS_SCOPE_ADMIN, 0, &r), 0);
    assert_int_equal(r.scopes, LS_SCOPES_ALL);
    ls_auth_close(a);
    assert_int_equal(ls_auth_precheck(&f.cfg, 0, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "not a loopback address"));
    assert_non_null(strstr(err, "lastseen token create"));
    f.cfg.http_auth = LS_HTTP_AUTH_OFF;
    assert_int_equal(ls_auth_precheck(&f.cfg, 0, err, sizeof(err)), 0);
    assert_int_equal(ls_auth_open(&a, &f.cfg, 0), 0);
    assert_false(ls_auth_required(a));
    ls_auth_close(a);
    fixture_free(&f);

    /* With tokens, a public address starts; revoking them all shuts it, not opens it. */
    fixture_init(&f, 1);
    assert_int_equal(ls_auth_open(&a, &f.cfg, 0), 0);
    unlink(f.path);
    assert_int_equal(check(a, NULL, LS_SCOPE_READ, 5000, &r), 401);
    assert_true(ls_auth_required(a));
    ls_auth_close(a);
    /* http.auth = off: tokens or not, nothing is asked. */
    f.cfg.http_auth = LS_HTTP_AUTH_OFF;
    assert_int_equal(ls_auth_open(&a, &f.cfg, 0), 0);
    assert_int_equal(check(a, NULL, LS_SCOPE_ADMIN, 0, &r), 0);
    ls_auth_close(a);
    fixture_free(&f);

    /* A file that does not parse: refused at start. */
    fixture_init(&f, 0);
    FILE *fp = fopen(f.path, "w");
    fputs("garbage\n", fp);
    fclose(fp);
    assert_int_equal(ls_auth_precheck(&f.cfg, 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "line 1"));
    assert_int_equal(ls_auth_open(&a, &f.cfg, 1), -EINVAL);
    fixture_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scopes),       cmocka_unit_test(test_names),
        cmocka_unit_test(test_add_check),    cmocka_unit_test(test_file),
        cmocka_unit_test(test_parse_errors), cmocka_unit_test(test_header),
        cmocka_unit_test(test_auth_checks),  cmocka_unit_test(test_auth_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
