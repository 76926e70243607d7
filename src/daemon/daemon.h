/* The daemon: a master process that binds, drops privileges and supervises
 * N worker processes, each running one event loop (DESIGN.md "Process
 * model"). */
#ifndef POSTERN_DAEMON_DAEMON_H
#define POSTERN_DAEMON_DAEMON_H

#include "core/config.h"
#include "net/tls.h"

#include <stddef.h>

struct metrics_worker;

/* Everything a worker starts from. The fds are the bound listening sockets,
 * in the order of cfg->listeners. */
struct worker_start {
	unsigned index;
	struct config *cfg;		/* the boot config; the worker may replace its copy on reload */
	struct tls_server *tls;		/* NULL when no listener uses TLS */
	const int *listen_fds;
	size_t listen_count;
	struct metrics_worker *metrics;	/* the worker's shared slot, or NULL */
};

/* Runs a worker until SIGTERM has drained it; returns the exit status. */
int worker_run(const struct worker_start *start);

/* `postern serve`: returns the process exit status. */
int master_run(struct config *cfg);

/* Loads a config for reload; NULL (errors logged) when it is not valid. */
struct config *daemon_reload_config(const char *path);

#endif
