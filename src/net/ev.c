#include "net/ev.h"
#include "core/log.h"
#include "core/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define EV_MAX_EVENTS 256

struct ev_loop {
	int epfd;
	bool stopping;
	uint64_t now_ms;
	struct ev_timer **heap;
	size_t heap_len, heap_cap;
	struct ev_defer *deferred;	/* LIFO list of queued deferred work */
};

uint64_t ev_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void run_deferred(struct ev_loop *loop);

struct ev_loop *ev_loop_new(void)
{
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		return NULL;
	struct ev_loop *loop = xcalloc(1, sizeof(*loop));
	loop->epfd = epfd;
	loop->now_ms = ev_clock_ms();
	return loop;
}

void ev_loop_free(struct ev_loop **loopp)
{
	struct ev_loop *loop = *loopp;
	if (loop == NULL)
		return;
	run_deferred(loop);	/* deferred frees still owed */
	if (loop->epfd >= 0)
		close(loop->epfd);
	free(loop->heap);
	free(loop);
	*loopp = NULL;
}

void ev_io_init(struct ev_io *io, int fd, ev_io_cb *cb, void *ctx)
{
	io->fd = fd;
	io->events = 0;
	io->active = false;
	io->cb = cb;
	io->ctx = ctx;
}

static int io_apply(struct ev_loop *loop, struct ev_io *io, uint32_t events, uint32_t extra)
{
	if (events == 0) {
		ev_io_stop(loop, io);
		return 0;
	}
	if (io->active && io->events == events)
		return 0;
	struct epoll_event ev = { .events = events | extra, .data.ptr = io };
	int op = io->active ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(loop->epfd, op, io->fd, &ev) < 0)
		return -1;
	io->active = true;
	io->events = events;
	return 0;
}

int ev_io_set(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
	return io_apply(loop, io, events, 0);
}

int ev_io_set_exclusive(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
	return io_apply(loop, io, events, EPOLLEXCLUSIVE);
}

void ev_loop_detach_after_fork(struct ev_loop *loop)
{
	if (loop->epfd >= 0)
		close(loop->epfd);
	loop->epfd = -1;
}

void ev_io_stop(struct ev_loop *loop, struct ev_io *io)
{
	if (!io->active)
		return;
	/* Fails only if the fd was closed already, which removed it anyway. */
	if (loop->epfd >= 0)
		(void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->active = false;
	io->events = 0;
}

void ev_timer_init(struct ev_timer *t, ev_timer_cb *cb, void *ctx)
{
	t->when_ms = 0;
	t->heap_index = SIZE_MAX;
	t->cb = cb;
	t->ctx = ctx;
}

bool ev_timer_active(const struct ev_timer *t)
{
	return t->heap_index != SIZE_MAX;
}

static void heap_set(struct ev_loop *loop, size_t i, struct ev_timer *t)
{
	loop->heap[i] = t;
	t->heap_index = i;
}

static void heap_up(struct ev_loop *loop, size_t i)
{
	struct ev_timer *t = loop->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (loop->heap[parent]->when_ms <= t->when_ms)
			break;
		heap_set(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_set(loop, i, t);
}

static void heap_down(struct ev_loop *loop, size_t i)
{
	struct ev_timer *t = loop->heap[i];
	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= loop->heap_len)
			break;
		if (child + 1 < loop->heap_len &&
		    loop->heap[child + 1]->when_ms < loop->heap[child]->when_ms)
			child++;
		if (t->when_ms <= loop->heap[child]->when_ms)
			break;
		heap_set(loop, i, loop->heap[child]);
		i = child;
	}
	heap_set(loop, i, t);
}

void ev_timer_stop(struct ev_loop *loop, struct ev_timer *t)
{
	if (!ev_timer_active(t))
		return;
	size_t i = t->heap_index;
	t->heap_index = SIZE_MAX;
	loop->heap_len--;
	if (i == loop->heap_len)
		return;
	heap_set(loop, i, loop->heap[loop->heap_len]);
	heap_down(loop, i);
	heap_up(loop, loop->heap[i]->heap_index);
}

void ev_timer_start(struct ev_loop *loop, struct ev_timer *t, uint64_t ms)
{
	ev_timer_stop(loop, t);
	if (loop->heap_len == loop->heap_cap) {
		loop->heap_cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
		loop->heap = xrealloc(loop->heap, loop->heap_cap * sizeof(*loop->heap));
	}
	t->when_ms = ev_clock_ms() + ms;
	heap_set(loop, loop->heap_len, t);
	loop->heap_len++;
	heap_up(loop, loop->heap_len - 1);
}

static int next_timeout(const struct ev_loop *loop)
{
	if (loop->heap_len == 0)
		return -1;
	uint64_t when = loop->heap[0]->when_ms;
	if (when <= loop->now_ms)
		return 0;
	uint64_t wait = when - loop->now_ms;
	return wait > 60000 ? 60000 : (int)wait;
}

static void run_timers(struct ev_loop *loop)
{
	while (loop->heap_len > 0 && loop->heap[0]->when_ms <= loop->now_ms && !loop->stopping) {
		struct ev_timer *t = loop->heap[0];
		ev_timer_stop(loop, t);
		t->cb(t->ctx);
	}
}

void ev_defer_init(struct ev_defer *d, ev_defer_cb *cb, void *ctx)
{
	d->next = NULL;
	d->queued = false;
	d->cb = cb;
	d->ctx = ctx;
}

void ev_defer_queue(struct ev_loop *loop, struct ev_defer *d)
{
	if (d->queued)
		return;
	d->queued = true;
	d->next = loop->deferred;
	loop->deferred = d;
}

void ev_defer_cancel(struct ev_loop *loop, struct ev_defer *d)
{
	if (!d->queued)
		return;
	for (struct ev_defer **p = &loop->deferred; *p != NULL; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			break;
		}
	}
	d->queued = false;
	d->next = NULL;
}

static void run_deferred(struct ev_loop *loop)
{
	/* Work queued by deferred callbacks runs in the same pass. */
	while (loop->deferred != NULL) {
		struct ev_defer *d = loop->deferred;
		loop->deferred = d->next;
		d->queued = false;
		d->next = NULL;
		d->cb(d->ctx);
	}
}

int ev_loop_run(struct ev_loop *loop)
{
	struct epoll_event events[EV_MAX_EVENTS];
	loop->stopping = false;
	while (!loop->stopping) {
		loop->now_ms = ev_clock_ms();
		int n = epoll_wait(loop->epfd, events, EV_MAX_EVENTS, next_timeout(loop));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_msg(LOG_ERROR, "epoll_wait", "%s", strerror(errno));
			return -1;
		}
		loop->now_ms = ev_clock_ms();
		for (int i = 0; i < n && !loop->stopping; i++) {
			struct ev_io *io = events[i].data.ptr;
			/* A callback earlier in this batch may have stopped this
			 * watcher; its memory is then only valid if the owner
			 * defers frees, which conn.c does. */
			if (io->active)
				io->cb(io->ctx, events[i].events);
		}
		run_deferred(loop);
		run_timers(loop);
		run_deferred(loop);
	}
	run_deferred(loop);
	return 0;
}

void ev_loop_stop(struct ev_loop *loop)
{
	loop->stopping = true;
}

uint64_t ev_now(const struct ev_loop *loop)
{
	return loop->now_ms;
}
