#include "core/log_syslog.h"

#include <syslog.h>

void log_syslog_open(void)
{
	openlog("postern", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_syslog_write(int level, const char *text)
{
	/* In the order of enum log_level: debug, info, warn, error, fatal. */
	static const int priorities[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR, LOG_CRIT };
	int priority = level >= 0 && level < 5 ? priorities[level] : LOG_INFO;
	syslog(LOG_MAIL | priority, "%s", text);
}
