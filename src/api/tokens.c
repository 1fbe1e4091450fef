/*
 * tokens.c - the token file and token checks (the format and the reasons
 * are in tokens.h).
 *
 * Cost of a check: a bearer token is hashed twice (the tag, then salt and
 * text: three SHA-256 blocks, about 0.4 us), plus a binary search over the
 * tags; a Basic credential is looked up by name (a linear scan: names are
 * few and not secret) and hashed once.  Nothing here locks: the caller (auth.c) owns
 * the set and swaps it whole when the file changes.
 */
#include "api/tokens.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base/buf.h"
#include "base/err.h"

#define VERSION_LINE "lastseen-tokens 1"
#define FILE_MAX ((size_t)1 << 20) /* LS_TOKENS_MAX lines of about 200 bytes, with room */

static const char *const scope_names[] = {"read", "ingest", "admin"};
#define NSCOPES (sizeof(scope_names) / sizeof(scope_names[0]))

void ls_tokens_free(ls_tokens *t)
{
    free(t->v);
    *t = (ls_tokens){0};
}

/* ---- scopes and names --------------------------------------------------- */

int ls_scopes_parse(const char *s, unsigned *out)
{
    unsigned bits = 0;
    while (*s) {
        size_t skip = strspn(s, ", \t");
        s += skip;
        size_t n = strcspn(s, ", \t");
        if (n == 0) break;
        unsigned i = 0;
        while (i < NSCOPES && !(strlen(scope_names[i]) == n && !strncasecmp(s, scope_names[i], n)))
            i++;
        if (i == NSCOPES) return -EINVAL;
        bits |= 1u << i;
        s += n;
    }
    if (!bits) return -EINVAL;
    *out = bits;
    return 0;
}

void ls_scopes_format(unsigned scopes, char *buf, size_t len)
{
    ls_str_join_bits(buf, len, scopes, scope_names, NSCOPES, ",");
}

const char *ls_token_name_check(const char *name, size_t n)
{
    if (n == 0 || n > LS_TOKEN_NAME_MAX) return "a token name is 1 to 64 characters";
    if (!isalnum((unsigned char)name[0])) return "a token name starts with a letter or a digit";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return "a token name holds only letters, digits, '.', '_' and '-'";
    }
    return NULL;
}

/* ---- hashing ------------------------------------------------------------ */

/*
 * SHA-256 of a then b.  Every request with a credential hashes once or
 * twice, so the algorithm is fetched once (SHA256() and EVP_sha256() look
 * it up on every call in OpenSSL 3: about 0.5 us) and each thread keeps
 * its digest context (freed when the thread ends); measured, a bearer
 * check went from 2 us to well under 1.
 */
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha_md;
static pthread_key_t sha_key;

static void ctx_free(void *c)
{
    EVP_MD_CTX_free(c);
}

static void sha_init(void)
{
    sha_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (pthread_key_create(&sha_key, ctx_free) != 0) sha_md = NULL;
}

static void sha256(const void *a, size_t an, const void *b, size_t bn, uint8_t out[32])
{
    pthread_once(&sha_once, sha_init);
    EVP_MD_CTX *c = sha_md ? pthread_getspecific(sha_key) : NULL;
    if (sha_md && !c && (c = EVP_MD_CTX_new()) && pthread_setspecific(sha_key, c) != 0) {
        EVP_MD_CTX_free(c);
        c = NULL;
    }
    unsigned len = 32;
    if (!c || !EVP_DigestInit_ex(c, sha_md, NULL) || !EVP_DigestUpdate(c, a, an) ||
        !EVP_DigestUpdate(c, b, bn) || !EVP_DigestFinal_ex(c, out, &len))
        memset(out, 0, 32); /* matches no stored hash: a salt is never all of a hash */
}

static void tag_of(const char *tok, size_t n, uint8_t tag[8])
{
    uint8_t h[32];
    sha256(tok, n, "", 0, h);
    memcpy(tag, h, 8);
}

static int verify(const ls_token *k, const char *tok, size_t n)
{
    uint8_t h[32];
    sha256(k->salt, sizeof(k->salt), tok, n, h);
    return CRYPTO_memcmp(h, k->hash, sizeof(h)) == 0;
}

/* ---- the set ------------------------------------------------------------ */

static int tag_cmp(const void *a, const void *b)
{
    return memcmp(((const ls_token *)a)->tag, ((const ls_token *)b)->tag, 8);
}

const ls_token *ls_tokens_find(const ls_tokens *t, const char *name, size_t n)
{
    for (size_t i = 0; i < t->n; i++)
        if (strlen(t->v[i].name) == n && memcmp(t->v[i].name, name, n) == 0) return &t->v[i];
    return NULL;
}

const ls_token *ls_tokens_check(const ls_tokens *t, const char *tok, size_t n)
{
    ls_token key;
    tag_of(tok, n, key.tag);
    size_t lo = 0, hi = t->n;
    while (lo < hi) { /* the first entry with tag >= key's */
        size_t mid = lo + (hi - lo) / 2;
        if (tag_cmp(&t->v[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < t->n && tag_cmp(&t->v[lo], &key) == 0; lo++)
        if (verify(&t->v[lo], tok, n)) return &t->v[lo];
    return NULL;
}

const ls_token *ls_tokens_check_named(const ls_tokens *t, const char *name, size_t name_len,
                                      const char *tok, size_t n)
{
    const ls_token *k = ls_tokens_find(t, name, name_len);
    return k && verify(k, tok, n) ? k : NULL;
}

static int push(ls_tokens *t, const ls_token *k)
{
    if (t->n == LS_TOKENS_MAX) return LS_EFULL;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        ls_token *v = realloc(t->v, cap * sizeof(*v));
        if (!v) return LS_ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n++] = *k;
    qsort(t->v, t->n, sizeof(*t->v), tag_cmp);
    return 0;
}

/* base64url without padding of n bytes into out (room for 4 * ceil(n / 3) + 1). */
static void b64url(const uint8_t *in, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
}

int ls_tokens_add(ls_tokens *t, const char *name, unsigned scopes, int64_t now, char *text)
{
    if (ls_token_name_check(name, strlen(name)) || !(scopes & LS_SCOPES_ALL) ||
        (scopes & ~LS_SCOPES_ALL))
        return LS_EINVAL;
    if (ls_tokens_find(t, name, strlen(name))) return -EEXIST;
    uint8_t rnd[32 + 16];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) return errno ? -errno : -EIO;
    ls_token k = {.scopes = scopes, .created = now};
    memcpy(k.name, name, strlen(name) + 1);
    char enc[48]; /* EVP_EncodeBlock writes 44 characters and a NUL; 43 stay */
    b64url(rnd, 32, enc);
    memcpy(text, LS_TOKEN_PREFIX, 4);
    memcpy(text + 4, enc, LS_TOKEN_TEXT_LEN - 4 + 1); /* its NUL included */
    memcpy(k.salt, rnd + 32, sizeof(k.salt));
    OPENSSL_cleanse(rnd, sizeof(rnd));
    tag_of(text, LS_TOKEN_TEXT_LEN, k.tag);
    sha256(k.salt, sizeof(k.salt), text, LS_TOKEN_TEXT_LEN, k.hash);
    return push(t, &k);
}

int ls_tokens_remove(ls_tokens *t, const char *name)
{
    const ls_token *k = ls_tokens_find(t, name, strlen(name));
    if (!k) return LS_ENOTFOUND;
    size_t i = (size_t)(k - t->v);
    memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(*t->v));
    t->n--;
    return 0;
}

/* ---- the file ----------------------------------------------------------- */

static int unhex(const char *s, size_t n, uint8_t *out, size_t len)
{
    if (n != 2 * len) return -1;
    for (size_t i = 0; i < len; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) return -1;
            v = v << 4 | d;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

static void hex(const uint8_t *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", in[i]);
}

/* One entry line (NUL-terminated, no newline) into *k; NULL or why not. */
static const char *parse_line(char *line, ls_token *k)
{
    char *f[7];
    int nf = 0;
    for (char *save = NULL, *p = strtok_r(line, " ", &save); p && nf < 7;
         p = strtok_r(NULL, " ", &save))
        f[nf++] = p;
    if (nf != 6) return "expected 6 fields: name scopes created tag salt hash";
    if (ls_token_name_check(f[0], strlen(f[0]))) return "invalid token name";
    if (ls_scopes_parse(f[1], &k->scopes) < 0 || strchr(f[1], ' '))
        return "scopes must be read, ingest and/or admin, separated by commas";
    char *end;
    errno = 0;
    long long created = strtoll(f[2], &end, 10);
    if (errno || *end || created < 0) return "created must be ms since the epoch";
    if (unhex(f[3], strlen(f[3]), k->tag, sizeof(k->tag)) < 0 ||
        unhex(f[4], strlen(f[4]), k->salt, sizeof(k->salt)) < 0 ||
        unhex(f[5], strlen(f[5]), k->hash, sizeof(k->hash)) < 0)
        return "tag, salt and hash must be 16, 32 and 64 lower-case hex digits";
    memcpy(k->name, f[0], strlen(f[0]) + 1);
    k->created = created;
    return NULL;
}

int ls_tokens_parse(ls_tokens *t, const char *text, size_t n, char *why, size_t whylen)
{
    ls_tokens_free(t);
    char line[1024];
    size_t at = 0;
    int lineno = 0, rc = 0;
    while (at < n && rc == 0) {
        const char *nl = memchr(text + at, '\n', n - at);
        size_t raw = (nl ? (size_t)(nl - text) : n) - at, len = raw;
        lineno++;
        const char *err = NULL;
        if (len >= sizeof(line)) {
            err = "line too long";
        } else {
            memcpy(line, text + at, len);
            line[len] = '\0';
            if (len && line[len - 1] == '\r') line[--len] = '\0';
            ls_token k = {0};
            if (lineno == 1)
                err = strcmp(line, VERSION_LINE) ? "not a lastseen token file (format 1)" : NULL;
            else if (len == 0 || line[0] == '#')
                err = NULL;
            else if (!(err = parse_line(line, &k)) && ls_tokens_find(t, k.name, strlen(k.name)))
                err = "a second token with this name";
            else if (!err && (rc = push(t, &k)) < 0)
                err = rc == LS_EFULL ? "more than 1024 tokens" : "out of memory";
        }
        if (err) {
            snprintf(why, whylen, "line %d: %s", lineno, err);
            rc = -EINVAL;
        }
        at += raw + (nl ? 1 : 0);
    }
    if (rc == 0 && lineno == 0) {
        snprintf(why, whylen, "line 1: empty file, expected \"%s\"", VERSION_LINE);
        rc = -EINVAL;
    }
    if (rc < 0) ls_tokens_free(t);
    return rc;
}

int ls_tokens_load(ls_tokens *t, const char *path, char *why, size_t whylen)
{
    ls_tokens_free(t);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        snprintf(why, whylen, "%s", strerror(errno));
        return -errno;
    }
    char *buf = malloc(FILE_MAX);
    size_t n = 0;
    ssize_t r = 0;
    int rc = buf ? 0 : LS_ENOMEM;
    while (rc == 0 && n < FILE_MAX && (r = read(fd, buf + n, FILE_MAX - n)) > 0)
        n += (size_t)r;
    if (rc == 0 && r < 0) rc = -errno;
    close(fd);
    if (rc == 0 && n == FILE_MAX) {
        snprintf(why, whylen, "larger than %zu bytes", FILE_MAX);
        rc = -EINVAL;
    } else if (rc == 0) {
        rc = ls_tokens_parse(t, buf, n, why, whylen);
    } else {
        snprintf(why, whylen, "%s", ls_strerror(rc));
    }
    free(buf);
    return rc;
}

int ls_tokens_save(const ls_tokens *t, const char *path)
{
    char tmp[4200], dir[4200];
    if (snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    unlink(tmp); /* left by a writer that died with our pid; writers are serialized */
    FILE *f = fopen(tmp, "wx");
    if (!f) return -errno;
    int rc = fchmod(fileno(f), 0600) < 0 ? -errno : 0;
    fprintf(f,
            "%s\n# name scopes created tag salt hash: managed by `lastseen token` "
            "(docs/security.md)\n",
            VERSION_LINE);
    for (size_t i = 0; i < t->n; i++) {
        const ls_token *k = &t->v[i];
        char scopes[32], tag[17], salt[33], hash[65];
        ls_scopes_format(k->scopes, scopes, sizeof(scopes));
        hex(k->tag, sizeof(k->tag), tag);
        hex(k->salt, sizeof(k->salt), salt);
        hex(k->hash, sizeof(k->hash), hash);
        fprintf(f, "%s %s %" PRId64 " %s %s %s\n", k->name, scopes, k->created, tag, salt, hash);
    }
    if (fflush(f) != 0 || fsync(fileno(f)) < 0) rc = rc ? rc : -errno;
    if (fclose(f) != 0) rc = rc ? rc : -errno;
    if (rc == 0 && rename(tmp, path) < 0) rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    /* The rename itself is durable once the directory is synced. */
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}
