/*
 * log.h - one line per message on stderr: time, level, module, text.
 */
#ifndef LS_LOG_H
#define LS_LOG_H

enum { LS_LOG_DEBUG = 0, LS_LOG_INFO, LS_LOG_WARN, LS_LOG_ERROR };

void ls_log_set_level(int level);
void ls_log(int level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define ls_debug(mod, ...) ls_log(LS_LOG_DEBUG, mod, __VA_ARGS__)
#define ls_info(mod, ...) ls_log(LS_LOG_INFO, mod, __VA_ARGS__)
#define ls_warn(mod, ...) ls_log(LS_LOG_WARN, mod, __VA_ARGS__)
#define ls_error(mod, ...) ls_log(LS_LOG_ERROR, mod, __VA_ARGS__)

#endif
