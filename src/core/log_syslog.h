/* The syslog side of core/log.c. Kept apart because <syslog.h> defines
 * LOG_DEBUG, LOG_INFO ... as macros, which would clash with log.h's levels. */
#ifndef POSTERN_CORE_LOG_SYSLOG_H
#define POSTERN_CORE_LOG_SYSLOG_H

void log_syslog_open(void);
/* level: an enum log_level value. */
void log_syslog_write(int level, const char *text);

#endif
