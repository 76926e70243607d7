#include "cli/progress.h"

#include <stdio.h>
#include <unistd.h>

void progress_init(struct progress *p)
{
	p->tty = isatty(STDERR_FILENO) == 1;
	p->drawn = false;
	p->last.tv_sec = 0;
	p->last.tv_nsec = 0;
}

void progress_update(struct progress *p, const char *what, uint64_t done, uint64_t total)
{
	if (!p->tty)
		return;
	struct timespec now;
	if (clock_gettime(CLOCK_MONOTONIC, &now) < 0)
		return;
	int64_t ms = (int64_t)(now.tv_sec - p->last.tv_sec) * 1000 +
		     (now.tv_nsec - p->last.tv_nsec) / 1000000;
	if (p->drawn && ms < 1000 / PROGRESS_HZ)
		return;
	p->last = now;
	p->drawn = true;
	/* \r and "erase to end of line": one line, overwritten in place. */
	if (total != 0)
		fprintf(stderr, "\r%s: %llu/%llu\033[K", what, (unsigned long long)done,
			(unsigned long long)total);
	else
		fprintf(stderr, "\r%s: %llu\033[K", what, (unsigned long long)done);
	fflush(stderr);
}

void progress_clear(struct progress *p)
{
	if (!p->drawn)
		return;
	fprintf(stderr, "\r\033[K");
	fflush(stderr);
	p->drawn = false;
}
