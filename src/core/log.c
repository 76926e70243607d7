#include "core/log.h"
#include "core/log_syslog.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
	enum log_target target;
	enum log_level min_level;
	char process[16];
} log_settings = { LOG_TARGET_STDERR, LOG_INFO, "postern" };

static const char *const level_names[] = { "debug", "info", "warn", "error", "fatal" };

void log_setup(enum log_target target, enum log_level min_level, const char *process)
{
	if (target == LOG_TARGET_SYSLOG && log_settings.target != LOG_TARGET_SYSLOG)
		log_syslog_open();
	log_settings.target = target;
	log_settings.min_level = min_level;
	snprintf(log_settings.process, sizeof(log_settings.process), "%s", process);
}

int log_level_parse(const char *name, enum log_level *level_r)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]) - 1; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static bool needs_quoting(const char *value, size_t len)
{
	if (len == 0)
		return true;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
			return true;
	}
	return false;
}

void log_quote(struct buf *b, const char *value, size_t len)
{
	if (!needs_quoting(value, len)) {
		buf_append(b, value, len);
		return;
	}
	buf_append_char(b, '"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c == '"' || c == '\\') {
			buf_append_char(b, '\\');
			buf_append_char(b, (char)c);
		} else if (c < ' ' || c == 0x7f) {
			buf_printf(b, "\\x%02x", c);
		} else {
			buf_append_char(b, (char)c);
		}
	}
	buf_append_char(b, '"');
}

void log_begin(struct log_line *l, enum log_level level, const char *event)
{
	l->level = level;
	l->text = (struct buf)BUF_INIT;
	if (level < log_settings.min_level)
		return;
	if (log_settings.target == LOG_TARGET_STDERR) {
		struct timespec ts;
		struct tm tm;
		char stamp[32];
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		buf_printf(&l->text, "ts=%s.%03ldZ ", stamp, ts.tv_nsec / 1000000);
	}
	buf_printf(&l->text, "level=%s proc=%s pid=%d event=", level_names[level],
		   log_settings.process, (int)getpid());
	log_quote(&l->text, event, strlen(event));
}

static bool line_enabled(const struct log_line *l)
{
	return l->level >= log_settings.min_level;
}

void log_strn(struct log_line *l, const char *key, const char *value, size_t len)
{
	if (!line_enabled(l))
		return;
	buf_printf(&l->text, " %s=", key);
	if (value == NULL)
		buf_append_str(&l->text, "-");
	else
		log_quote(&l->text, value, len);
}

void log_str(struct log_line *l, const char *key, const char *value)
{
	log_strn(l, key, value, value ? strlen(value) : 0);
}

void log_int(struct log_line *l, const char *key, long long value)
{
	if (line_enabled(l))
		buf_printf(&l->text, " %s=%lld", key, value);
}

void log_uint(struct log_line *l, const char *key, unsigned long long value)
{
	if (line_enabled(l))
		buf_printf(&l->text, " %s=%llu", key, value);
}

void log_end(struct log_line *l)
{
	if (!line_enabled(l)) {
		buf_free(&l->text);
		return;
	}
	if (log_settings.target == LOG_TARGET_SYSLOG) {
		log_syslog_write((int)l->level, l->text.data);
	} else {
		buf_append_char(&l->text, '\n');
		/* One write per line so lines from several processes never interleave. */
		ssize_t ignored = write(STDERR_FILENO, l->text.data, l->text.len);
		(void)ignored;
	}
	buf_free(&l->text);
}

void log_msg(enum log_level level, const char *event, const char *fmt, ...)
{
	struct log_line l;
	log_begin(&l, level, event);
	if (line_enabled(&l)) {
		struct buf msg = BUF_INIT;
		va_list ap;
		va_start(ap, fmt);
		buf_vprintf(&msg, fmt, ap);
		va_end(ap);
		log_strn(&l, "msg", msg.data ? msg.data : "", msg.len);
		buf_free(&msg);
	}
	log_end(&l);
}
