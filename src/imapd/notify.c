#include "imapd/notify.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "imapd/session.h"
#include "store/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

/* One watched change file and the sessions that care about it. */
struct notify_watch {
	struct notify_watch *next;
	int wd;
	struct session **sessions;
	size_t count, cap;
};

int notify_init(struct imapd_context *ctx)
{
	ctx->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ctx->inotify_fd < 0) {
		log_msg(LOG_WARN, "inotify_unavailable", "%s: IDLE falls back to polling", strerror(errno));
		return -1;
	}
	return 0;
}

void notify_deinit(struct imapd_context *ctx)
{
	while (ctx->watches != NULL) {
		struct notify_watch *w = ctx->watches;
		ctx->watches = w->next;
		free(w->sessions);
		free(w);
	}
	if (ctx->inotify_fd >= 0)
		close(ctx->inotify_fd);
	ctx->inotify_fd = -1;
}

bool notify_available(const struct imapd_context *ctx)
{
	return ctx->inotify_fd >= 0;
}

static struct notify_watch *find_watch(struct imapd_context *ctx, int wd)
{
	for (struct notify_watch *w = ctx->watches; w != NULL; w = w->next) {
		if (w->wd == wd)
			return w;
	}
	return NULL;
}

void notify_add_session(struct session *s)
{
	struct imapd_context *ctx = s->ctx;
	if (ctx->inotify_fd < 0 || s->store == NULL || s->watch_wd >= 0)
		return;
	/* The kernel gives the same wd for the same file: one watch per user. */
	int wd = inotify_add_watch(ctx->inotify_fd, store_change_path(s->store), IN_MODIFY);
	if (wd < 0) {
		log_msg(LOG_WARN, "inotify_watch_failed", "%s: %s (raise fs.inotify.max_user_watches)",
			store_change_path(s->store), strerror(errno));
		return;
	}
	struct notify_watch *w = find_watch(ctx, wd);
	if (w == NULL) {
		w = xcalloc(1, sizeof(*w));
		w->wd = wd;
		w->next = ctx->watches;
		ctx->watches = w;
	}
	if (w->count == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 4;
		w->sessions = xrealloc(w->sessions, w->cap * sizeof(*w->sessions));
	}
	w->sessions[w->count++] = s;
	s->watch_wd = wd;
}

void notify_remove_session(struct session *s)
{
	struct imapd_context *ctx = s->ctx;
	if (s->watch_wd < 0)
		return;
	struct notify_watch **link = &ctx->watches;
	while (*link != NULL && (*link)->wd != s->watch_wd)
		link = &(*link)->next;
	struct notify_watch *w = *link;
	s->watch_wd = -1;
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->count; i++) {
		if (w->sessions[i] == s) {
			w->sessions[i] = w->sessions[--w->count];
			break;
		}
	}
	if (w->count > 0)
		return;
	/* The last session of this user here: drop the kernel watch too. */
	(void)inotify_rm_watch(ctx->inotify_fd, w->wd);
	*link = w->next;
	free(w->sessions);
	free(w);
}

static void wake_watch(struct notify_watch *w)
{
	/* Sessions may leave the list while we walk it (a write error ends
	 * one), so walk a copy. */
	size_t count = w->count;
	struct session **copy = xmalloc((count ? count : 1) * sizeof(*copy));
	memcpy(copy, w->sessions, count * sizeof(*copy));
	for (size_t i = 0; i < count; i++) {
		if (copy[i]->idling)
			session_idle_wake(copy[i]);
	}
	free(copy);
}

void notify_dispatch(struct imapd_context *ctx)
{
	char buffer[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(ctx->inotify_fd, buffer, sizeof(buffer));
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				log_msg(LOG_ERROR, "inotify_read", "%s", strerror(errno));
			return;
		}
		for (char *p = buffer; p < buffer + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			struct notify_watch *w = find_watch(ctx, ev->wd);
			if (w != NULL)
				wake_watch(w);
		}
	}
}
