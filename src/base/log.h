/* log.h — one-line log records on stderr, tagged with the MPI rank.
 *
 * Owns: the log level and the rank tag. Every line passes through rt_redact()
 * so a registered secret never reaches a log. Format:
 *   2026-11-26T10:00:00Z ragtide[r3] warn: message */
#ifndef RT_BASE_LOG_H
#define RT_BASE_LOG_H

typedef enum { RT_LOG_DEBUG = 0, RT_LOG_INFO, RT_LOG_WARN, RT_LOG_ERROR, RT_LOG_QUIET } rt_log_level;

void rt_log_set_rank(int rank);          /* -1: no rank tag (tools, tests) */
void rt_log_set_level(rt_log_level lvl);  /* default INFO; RAGTIDE_LOG=debug|info|warn|error|quiet */
void rt_log(rt_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define rt_debug(...) rt_log(RT_LOG_DEBUG, __VA_ARGS__)
#define rt_info(...) rt_log(RT_LOG_INFO, __VA_ARGS__)
#define rt_warn(...) rt_log(RT_LOG_WARN, __VA_ARGS__)
#define rt_error(...) rt_log(RT_LOG_ERROR, __VA_ARGS__)

#endif
