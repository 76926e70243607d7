/* The event loop: epoll for file descriptors, a binary min-heap for timers
 * (O(log n) start and stop, cheap with 100k idle connections each holding a
 * timeout). One loop per worker process; nothing here is thread-safe.
 *
 * Callbacks may start and stop any watcher, including their own, and may
 * free the object that embeds it once they have stopped it. */
#ifndef POSTERN_NET_EV_H
#define POSTERN_NET_EV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;

typedef void ev_io_cb(void *ctx, uint32_t events);
typedef void ev_timer_cb(void *ctx);

struct ev_io {
	int fd;
	uint32_t events;	/* EPOLLIN | EPOLLOUT ... currently registered */
	bool active;
	ev_io_cb *cb;
	void *ctx;
};

struct ev_timer {
	uint64_t when_ms;	/* monotonic deadline */
	size_t heap_index;	/* position in the heap, SIZE_MAX when stopped */
	ev_timer_cb *cb;
	void *ctx;
};

struct ev_loop *ev_loop_new(void);
void ev_loop_free(struct ev_loop **loop);

void ev_io_init(struct ev_io *io, int fd, ev_io_cb *cb, void *ctx);
/* Registers or changes the events watched; events 0 unregisters. 0 or -1. */
int ev_io_set(struct ev_loop *loop, struct ev_io *io, uint32_t events);
/* Exclusive wakeup for a listening socket shared by several workers. */
int ev_io_set_exclusive(struct ev_loop *loop, struct ev_io *io, uint32_t events);
void ev_io_stop(struct ev_loop *loop, struct ev_io *io);

void ev_timer_init(struct ev_timer *t, ev_timer_cb *cb, void *ctx);
/* (Re)arms the timer to fire once, after ms milliseconds. */
void ev_timer_start(struct ev_loop *loop, struct ev_timer *t, uint64_t ms);
void ev_timer_stop(struct ev_loop *loop, struct ev_timer *t);
bool ev_timer_active(const struct ev_timer *t);

/* Deferred work, run after the current batch of I/O events and timers:
 * flushing output once per batch instead of once per write, and freeing
 * objects whose watchers may still have events pending in the batch. */
typedef void ev_defer_cb(void *ctx);
struct ev_defer {
	struct ev_defer *next;
	bool queued;
	ev_defer_cb *cb;
	void *ctx;
};
void ev_defer_init(struct ev_defer *d, ev_defer_cb *cb, void *ctx);
/* Queues d once; queuing an already queued d does nothing. */
void ev_defer_queue(struct ev_loop *loop, struct ev_defer *d);
/* Removes d if queued (before its owner frees it). */
void ev_defer_cancel(struct ev_loop *loop, struct ev_defer *d);

/* In a forked child: the epoll instance is shared with the parent, so
 * every later change through this loop would change the parent's. Cuts
 * the child's loop loose (its watchers then stop without touching epoll);
 * the child may still free what hangs off it. */
void ev_loop_detach_after_fork(struct ev_loop *loop);

/* Runs until ev_loop_stop(). Returns 0, or -1 if epoll_wait failed. */
int ev_loop_run(struct ev_loop *loop);
void ev_loop_stop(struct ev_loop *loop);
/* The loop's cached monotonic time in milliseconds, updated each iteration. */
uint64_t ev_now(const struct ev_loop *loop);
/* Reads the clock now (for latency measurements). */
uint64_t ev_clock_ms(void);

#endif
