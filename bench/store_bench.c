/* Store benchmark: append rates (one message per commit, and batched) and
 * the time to load a view of a large mailbox. Not a test: numbers only.
 *
 *	build/bench/store_bench [DIR] [MESSAGES]
 *
 * DIR (default /tmp) gets a fresh data directory, removed at the end;
 * MESSAGES (default 100000) is the size of the large mailbox. Run it on the
 * filesystem the server will use: the single-append rate is the fsync rate. */
#include "store/store.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define SINGLE_APPENDS 500
#define BATCH 500
#define BODY_SIZE 2048

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void die(struct store *st, const char *what)
{
	const char *text = "";
	if (st != NULL)
		store_last_error(st, &text);
	fprintf(stderr, "store_bench: %s: %s\n", what, text);
	exit(1);
}

/* A distinct body per message, so every append writes a new file. */
static void make_body(char *body, unsigned long n)
{
	int len = snprintf(body, BODY_SIZE, "From: bench@example.org\r\nSubject: message %lu\r\n\r\n", n);
	for (int i = len; i < BODY_SIZE; i++)
		body[i] = (char)('a' + (n + (unsigned long)i) % 26);
}

int main(int argc, char **argv)
{
	const char *base = argc > 1 ? argv[1] : "/tmp";
	unsigned long total = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
	char dir[4096];
	struct store *st;
	enum store_error err;
	char *text = NULL;
	static char bodies[BATCH][BODY_SIZE];
	struct store_append_msg msgs[BATCH];
	uint32_t uids[BATCH], uv;
	unsigned long n = 0;

	snprintf(dir, sizeof(dir), "%s/store-bench-XXXXXX", base);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	if (store_open(dir, "bench", &st, &err, &text) < 0) {
		fprintf(stderr, "store_open: %s\n", text);
		return 1;
	}
	struct store_status s;
	if (store_mailbox_create(st, "Single", STORE_SPECIAL_NONE) < 0 ||
	    store_mailbox_status(st, "Single", UINT32_MAX, &s) < 0)
		die(st, "create");

	double t0 = now_s();
	for (int i = 0; i < SINGLE_APPENDS; i++) {
		make_body(bodies[0], n++);
		struct store_append_msg m = { .data = bodies[0], .size = BODY_SIZE };
		if (store_append(st, s.mailbox_id, &m, 1, &uv, uids) < 0)
			die(st, "append");
	}
	double t1 = now_s();
	printf("single appends:  %d in %.2f s = %.0f msg/s (one commit each)\n", SINGLE_APPENDS,
	       t1 - t0, SINGLE_APPENDS / (t1 - t0));

	if (store_mailbox_status(st, "INBOX", UINT32_MAX, &s) < 0)
		die(st, "status");
	t0 = now_s();
	for (unsigned long done = 0; done < total;) {
		size_t k = total - done < BATCH ? total - done : BATCH;
		for (size_t i = 0; i < k; i++) {
			make_body(bodies[i], n++);
			msgs[i] = (struct store_append_msg){ .data = bodies[i], .size = BODY_SIZE,
							     .flags = i % 3 ? STORE_FLAG_SEEN : 0 };
		}
		if (store_append(st, s.mailbox_id, msgs, k, &uv, uids) < 0)
			die(st, "batched append");
		done += k;
	}
	t1 = now_s();
	printf("batched appends: %lu in %.2f s = %.0f msg/s (%d per commit)\n", total, t1 - t0,
	       (double)total / (t1 - t0), BATCH);

	struct rusage ru0, ru1;
	getrusage(RUSAGE_SELF, &ru0);
	double best = 1e9;
	for (int round = 0; round < 5; round++) {
		struct store_view v;
		t0 = now_s();
		if (store_view_load(st, s.mailbox_id, &v) < 0)
			die(st, "view");
		t1 = now_s();
		if (v.count != total)
			die(st, "view count");
		if (t1 - t0 < best)
			best = t1 - t0;
		store_view_free(&v);
	}
	getrusage(RUSAGE_SELF, &ru1);
	printf("view load:       %lu messages in %.1f ms (best of 5), %zu bytes per message\n", total,
	       best * 1000, sizeof(struct store_msg));

	t0 = now_s();
	if (store_mailbox_status(st, "INBOX", 0, &s) < 0)
		die(st, "status");
	t1 = now_s();
	printf("status:          %.2f ms (recent over all %u messages)\n", (t1 - t0) * 1000, s.messages);

	struct store_uid_range all = { 1, UINT32_MAX };
	struct store_flags_result fr;
	t0 = now_s();
	if (store_flags_update(st, s.mailbox_id, &all, 1, STORE_FLAGS_ADD, STORE_FLAG_FLAGGED, NULL, 0, 0,
			       &fr) < 0)
		die(st, "flags");
	t1 = now_s();
	printf("store 1:* +flag: %zu changed in %.0f ms\n", fr.changed_count, (t1 - t0) * 1000);
	store_flags_result_free(&fr);

	struct store_changes ch;
	t0 = now_s();
	if (store_changes_since(st, s.mailbox_id, s.highestmodseq, &ch) < 0)
		die(st, "changes");
	t1 = now_s();
	printf("changes since:   %zu changed in %.0f ms\n", ch.changed_count, (t1 - t0) * 1000);
	store_changes_free(&ch);

	store_close(&st);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
