/* Tests for core/shcount: counts per worker summed over workers, a table
 * filling up, deletion keeping every other key findable (against a model),
 * a reset worker's counts vanishing, and counts seen across fork. */
#include "core/shcount.h"

#include "harness.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_add_total_remove(void)
{
	struct shcount *s = shcount_new(3, 6);
	CHECK(s != NULL);
	uint64_t ip = shcount_key(s, 'i', "192.0.2.1", NULL);
	uint64_t user = shcount_key(s, 'u', "192.0.2.1", NULL);
	CHECK(ip != user);			/* the kind is part of the key */
	CHECK(shcount_key(s, 'p', "ab", "c") != shcount_key(s, 'p', "a", "bc"));
	CHECK_INT(shcount_total(s, ip), 0);
	CHECK(shcount_add(s, 0, ip));
	CHECK(shcount_add(s, 0, ip));
	CHECK(shcount_add(s, 2, ip));
	CHECK(shcount_add(s, 1, user));
	CHECK_INT(shcount_total(s, ip), 3);
	CHECK_INT(shcount_total(s, user), 1);
	shcount_remove(s, 0, ip);
	CHECK_INT(shcount_total(s, ip), 2);
	shcount_worker_reset(s, 0);		/* a worker killed and restarted */
	CHECK_INT(shcount_total(s, ip), 1);
	shcount_remove(s, 2, ip);
	shcount_remove(s, 2, ip);		/* not held: ignored */
	CHECK_INT(shcount_total(s, ip), 0);
	CHECK(!shcount_add(s, 3, ip));		/* no such worker */
	shcount_free(&s);
	CHECK(s == NULL);
	shcount_free(&s);
}

/* Random adds and removes in a small table against an array model: the
 * backward-shift deletion must keep every key reachable. */
static void test_against_model(void)
{
	struct shcount *s = shcount_new(1, 5);	/* 32 slots, 24 keys at most */
	enum { KEYS = 40 };
	uint64_t keys[KEYS];
	unsigned model[KEYS] = { 0 };
	char name[16];
	for (int i = 0; i < KEYS; i++) {
		snprintf(name, sizeof(name), "k%d", i);
		keys[i] = shcount_key(s, 'i', name, NULL);
	}
	srand(7);
	int distinct = 0, refused = 0;
	for (int step = 0; step < 20000; step++) {
		int k = rand() % KEYS;
		if (rand() % 2 == 0) {
			if (shcount_add(s, 0, keys[k])) {
				distinct += model[k] == 0;
				model[k]++;
			} else {
				refused++;
				CHECK(model[k] == 0 && distinct >= 24);
			}
		} else if (model[k] > 0) {
			shcount_remove(s, 0, keys[k]);
			model[k]--;
			distinct -= model[k] == 0;
		}
		if (step % 97 == 0) {
			for (int i = 0; i < KEYS; i++)
				CHECK_INT(shcount_total(s, keys[i]), model[i]);
		}
	}
	CHECK(refused > 0);
	for (int i = 0; i < KEYS; i++)
		CHECK_INT(shcount_total(s, keys[i]), model[i]);
	shcount_free(&s);
}

static void test_shared_across_fork(void)
{
	struct shcount *s = shcount_new(2, 8);
	uint64_t key = shcount_key(s, 'u', "alice", NULL);
	pid_t pid = fork();
	if (pid == 0) {
		for (int i = 0; i < 5; i++)
			shcount_add(s, 1, key);
		_exit(0);
	}
	int status = 0;
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(shcount_add(s, 0, key));
	CHECK_INT(shcount_total(s, key), 6);
	shcount_free(&s);
}

int main(void)
{
	RUN(test_add_total_remove);
	RUN(test_against_model);
	RUN(test_shared_across_fork);
	return harness_finish();
}
