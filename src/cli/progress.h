/* A one-line progress counter on stderr for long imports and exports.
 * Shown only when stderr is a terminal, redrawn at most PROGRESS_HZ times a
 * second so that printing never costs more than the work it reports. */
#ifndef POSTERN_CLI_PROGRESS_H
#define POSTERN_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define PROGRESS_HZ 4

struct progress {
	bool tty;		/* stderr is a terminal: draw, else stay silent */
	bool drawn;		/* a line is on screen and needs clearing */
	struct timespec last;	/* when the line was last drawn */
};

void progress_init(struct progress *p);
/* Redraws "what: done/total" (total 0: unknown) if enough time passed. */
void progress_update(struct progress *p, const char *what, uint64_t done, uint64_t total);
/* Clears the line, so the next message starts on a clean one. */
void progress_clear(struct progress *p);

#endif
