/* Live updates between processes (DESIGN.md "Storage"): every committed
 * store change rewrites the user's change file; each worker watches the
 * change files of its logged-in users with one inotify instance (the kernel
 * allows 128 instances per account, so never one per session) and wakes the
 * sessions in IDLE. Sessions not in IDLE catch up at their next command.
 * Where inotify is unavailable, IDLE sessions poll every few seconds. */
#ifndef POSTERN_IMAPD_NOTIFY_H
#define POSTERN_IMAPD_NOTIFY_H

#include <stdbool.h>

struct imapd_context;
struct session;

/* Starts the worker's inotify instance; 0, or -1 (logged) to run on polls. */
int notify_init(struct imapd_context *ctx);
void notify_deinit(struct imapd_context *ctx);
/* Watches the session's change file (after login); idempotent. */
void notify_add_session(struct session *s);
void notify_remove_session(struct session *s);
/* The inotify fd is readable: wake the IDLE sessions of changed users. */
void notify_dispatch(struct imapd_context *ctx);
bool notify_available(const struct imapd_context *ctx);

#endif
