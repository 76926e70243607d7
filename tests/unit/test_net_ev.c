/* The event loop: timers fire in deadline order, stop and restart work from
 * inside callbacks, deferred work runs after the batch, and fd events are
 * delivered. */
#include "harness.h"
#include "net/ev.h"

#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>

struct record {
	struct ev_loop *loop;
	int order[16];
	int count;
	struct ev_timer *to_stop;
	int stop_after;
};

struct tagged_timer {
	struct ev_timer timer;
	struct record *rec;
	int id;
};

static void note_cb(void *ctx)
{
	struct tagged_timer *t = ctx;
	t->rec->order[t->rec->count++] = t->id;
	if (t->rec->to_stop != NULL && t->id == t->rec->stop_after)
		ev_timer_stop(t->rec->loop, t->rec->to_stop);
	if (t->rec->count >= 3)
		ev_loop_stop(t->rec->loop);
}

static void test_timers_fire_in_deadline_order(void)
{
	struct record rec = { .loop = ev_loop_new() };
	struct tagged_timer t[4];
	int delays[4] = { 30, 10, 20, 5 };
	for (int i = 0; i < 4; i++) {
		t[i] = (struct tagged_timer){ .rec = &rec, .id = i };
		ev_timer_init(&t[i].timer, note_cb, &t[i]);
		ev_timer_start(rec.loop, &t[i].timer, (uint64_t)delays[i]);
	}
	/* Stopping the 20 ms timer from the 10 ms one leaves 5, 10, 30. */
	rec.to_stop = &t[2].timer;
	rec.stop_after = 1;
	CHECK_INT(ev_loop_run(rec.loop), 0);
	CHECK_INT(rec.count, 3);
	CHECK_INT(rec.order[0], 3);
	CHECK_INT(rec.order[1], 1);
	CHECK_INT(rec.order[2], 0);
	CHECK(!ev_timer_active(&t[2].timer));
	ev_loop_free(&rec.loop);
	CHECK(rec.loop == NULL);
}

static void test_timer_restart_moves_deadline(void)
{
	struct record rec = { .loop = ev_loop_new() };
	struct tagged_timer a = { .rec = &rec, .id = 1 }, b = { .rec = &rec, .id = 2 }, c = { .rec = &rec, .id = 3 };
	ev_timer_init(&a.timer, note_cb, &a);
	ev_timer_init(&b.timer, note_cb, &b);
	ev_timer_init(&c.timer, note_cb, &c);
	ev_timer_start(rec.loop, &a.timer, 5);
	ev_timer_start(rec.loop, &b.timer, 10);
	ev_timer_start(rec.loop, &c.timer, 15);
	ev_timer_start(rec.loop, &a.timer, 40);	/* re-armed: now last */
	ev_loop_run(rec.loop);
	CHECK_INT(rec.order[0], 2);
	CHECK_INT(rec.order[1], 3);
	CHECK_INT(rec.order[2], 1);
	ev_loop_free(&rec.loop);
}

struct io_state {
	struct ev_loop *loop;
	struct ev_io io;
	struct ev_defer defer;
	int reads;
	int deferred_runs;
	int reads_seen_by_defer;
};

static void defer_cb(void *ctx)
{
	struct io_state *s = ctx;
	s->deferred_runs++;
	s->reads_seen_by_defer = s->reads;
	ev_loop_stop(s->loop);
}

static void read_cb(void *ctx, uint32_t events)
{
	struct io_state *s = ctx;
	char buf[16];
	if (events & EPOLLIN) {
		ssize_t n = read(s->io.fd, buf, sizeof(buf));
		if (n > 0)
			s->reads++;
	}
	/* Queued twice, run once, after this callback. */
	ev_defer_queue(s->loop, &s->defer);
	ev_defer_queue(s->loop, &s->defer);
}

static void test_io_and_deferred_work(void)
{
	int fds[2];
	CHECK_INT(pipe(fds), 0);
	struct io_state s = { .loop = ev_loop_new() };
	ev_io_init(&s.io, fds[0], read_cb, &s);
	ev_defer_init(&s.defer, defer_cb, &s);
	CHECK_INT(ev_io_set(s.loop, &s.io, EPOLLIN), 0);
	CHECK_INT(write(fds[1], "x", 1), 1);
	ev_loop_run(s.loop);
	CHECK_INT(s.reads, 1);
	CHECK_INT(s.deferred_runs, 1);
	CHECK_INT(s.reads_seen_by_defer, 1);
	ev_io_stop(s.loop, &s.io);
	CHECK(!s.io.active);
	close(fds[0]);
	close(fds[1]);
	ev_loop_free(&s.loop);
}

static void test_defer_cancel(void)
{
	struct io_state s = { .loop = ev_loop_new() };
	ev_defer_init(&s.defer, defer_cb, &s);
	ev_defer_queue(s.loop, &s.defer);
	ev_defer_cancel(s.loop, &s.defer);
	CHECK(!s.defer.queued);
	ev_loop_free(&s.loop);	/* would run it if still queued */
	CHECK_INT(s.deferred_runs, 0);
}

static void test_many_timers_heap(void)
{
	struct ev_loop *loop = ev_loop_new();
	enum { N = 2000 };
	static struct ev_timer timers[N];
	for (int i = 0; i < N; i++) {
		ev_timer_init(&timers[i], NULL, NULL);
		ev_timer_start(loop, &timers[i], (uint64_t)((i * 7919) % N) + 1000);
	}
	for (int i = 0; i < N; i += 2)
		ev_timer_stop(loop, &timers[i]);
	int active = 0;
	for (int i = 0; i < N; i++)
		active += ev_timer_active(&timers[i]);
	CHECK_INT(active, N / 2);
	for (int i = 1; i < N; i += 2)
		ev_timer_stop(loop, &timers[i]);
	ev_loop_free(&loop);
}

int main(void)
{
	RUN(test_timers_fire_in_deadline_order);
	RUN(test_timer_restart_moves_deadline);
	RUN(test_io_and_deferred_work);
	RUN(test_defer_cancel);
	RUN(test_many_timers_heap);
	return harness_finish();
}
