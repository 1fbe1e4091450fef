/*
 * log.c - logging to stderr.
 *
 * Each message is formatted into one buffer and written with a single
 * write(2), so lines from different threads never interleave.  Lines are
 * cut at 1 KiB; control characters in messages are replaced so a hostile
 * value cannot forge a log line.
 */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static int min_level = LS_LOG_INFO;

void ls_log_set_level(int level)
{
    min_level = level;
}

void ls_log(int level, const char *module, const char *fmt, ...)
{
    static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char line[1024];
    struct timespec ts;
    struct tm tm;
    va_list ap;

    if (level < min_level) return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, names[level & 3], module);
    if (n < 0) return;
    size_t head = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    va_start(ap, fmt);
    int m = vsnprintf(line + head, sizeof(line) - head - 1, fmt, ap);
    va_end(ap);
    if (m < 0) return;
    size_t len = head + ((size_t)m < sizeof(line) - head - 1 ? (size_t)m : sizeof(line) - head - 2);
    for (size_t i = head; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) line[i] = '?';
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
