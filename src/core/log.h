/* Structured logging: one line per event, `key=value` pairs, to stderr or
 * syslog. Values are quoted when they hold spaces, quotes, '=' or control
 * characters, and control characters are escaped, so attacker-supplied text
 * (user names, client IDs) can never forge a log line.
 *
 *	struct log_line l;
 *	log_begin(&l, LOG_INFO, "login");
 *	log_str(&l, "user", user);
 *	log_int(&l, "ms", elapsed);
 *	log_end(&l);
 *
 * The settings are process-wide: set once at startup (and on reload) by the
 * process's main loop, read everywhere. This is the one deliberate exception
 * to "no global mutable state": every module logs. */
#ifndef POSTERN_CORE_LOG_H
#define POSTERN_CORE_LOG_H

#include "core/buf.h"

#include <stdint.h>

enum log_level {
	LOG_DEBUG,
	LOG_INFO,
	LOG_WARN,
	LOG_ERROR,
	LOG_FATAL,
};

enum log_target {
	LOG_TARGET_STDERR,
	LOG_TARGET_SYSLOG,
};

struct log_line {
	enum log_level level;
	struct buf text;
};

void log_setup(enum log_target target, enum log_level min_level, const char *process);
/* Parses "debug", "info", "warn", "error"; returns -1 on anything else. */
int log_level_parse(const char *name, enum log_level *level_r);

void log_begin(struct log_line *l, enum log_level level, const char *event);
void log_str(struct log_line *l, const char *key, const char *value);
void log_strn(struct log_line *l, const char *key, const char *value, size_t len);
void log_int(struct log_line *l, const char *key, long long value);
void log_uint(struct log_line *l, const char *key, unsigned long long value);
void log_end(struct log_line *l);

/* One-shot form for events that carry only a free-text message. */
void log_msg(enum log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Appends value to b, quoted and escaped as log_str does. */
void log_quote(struct buf *b, const char *value, size_t len);

#endif
