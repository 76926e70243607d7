#include "core/shcount.h"
#include "core/xalloc.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define COUNT_BITS 16
#define COUNT_MASK ((1u << COUNT_BITS) - 1)
#define KEY_MASK ((UINT64_C(1) << 48) - 1)

/* One worker's table: only that worker writes it. */
struct shcount_table {
	uint64_t used;		/* slots holding a key */
	uint64_t slots[];	/* key << 16 | count, 0 when empty */
};

struct shcount {
	uint64_t seed;
	unsigned worker_count;
	size_t slot_count;	/* per table, a power of two */
	size_t table_size;	/* bytes per table */
	size_t map_size;
	char *map;		/* MAP_SHARED: survives fork */
};

static struct shcount_table *table(const struct shcount *s, unsigned worker)
{
	return (struct shcount_table *)(s->map + (size_t)worker * s->table_size);
}

static uint64_t load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void store(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

struct shcount *shcount_new(unsigned worker_count, unsigned slots_log2)
{
	struct shcount *s = xcalloc(1, sizeof(*s));
	s->worker_count = worker_count;
	s->slot_count = (size_t)1 << slots_log2;
	s->table_size = sizeof(struct shcount_table) + s->slot_count * sizeof(uint64_t);
	s->map_size = s->table_size * worker_count;
	/* Anonymous shared pages are only backed once touched: an idle table
	 * costs address space, not memory. */
	void *map = mmap(NULL, s->map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED) {
		int saved = errno;
		free(s);
		errno = saved;
		return NULL;
	}
	s->map = map;
	if (getrandom(&s->seed, sizeof(s->seed), GRND_NONBLOCK) != (ssize_t)sizeof(s->seed)) {
		/* No entropy yet (early boot): time and pid still vary per start. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		s->seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
	}
	return s;
}

void shcount_free(struct shcount **sharedp)
{
	struct shcount *s = *sharedp;
	if (s == NULL)
		return;
	(void)munmap(s->map, s->map_size);
	free(s);
	*sharedp = NULL;
}

void shcount_worker_reset(struct shcount *s, unsigned worker)
{
	if (s == NULL || worker >= s->worker_count)
		return;
	struct shcount_table *t = table(s, worker);
	for (size_t i = 0; i < s->slot_count; i++)
		store(&t->slots[i], 0);
	store(&t->used, 0);
}

static uint64_t mix(uint64_t h, const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++)
		h = (h ^ *p) * UINT64_C(0x100000001b3);
	return (h ^ 0xff) * UINT64_C(0x100000001b3);	/* ends the string: "ab","c" != "a","bc" */
}

uint64_t shcount_key(const struct shcount *s, char kind, const char *a, const char *b)
{
	uint64_t h = (s->seed ^ UINT64_C(0xcbf29ce484222325)) * UINT64_C(0x100000001b3);
	h = (h ^ (unsigned char)kind) * UINT64_C(0x100000001b3);
	h = mix(h, a);
	if (b != NULL)
		h = mix(h, b);
	/* splitmix64's finaliser spreads every input bit over the result. */
	h ^= h >> 30;
	h *= UINT64_C(0xbf58476d1ce4e5b9);
	h ^= h >> 27;
	h *= UINT64_C(0x94d049bb133111eb);
	h ^= h >> 31;
	h &= KEY_MASK;
	return h != 0 ? h : 1;
}

/* The slot holding key in t, or the empty slot where it would go (*found
 * false), or SIZE_MAX when a full probe found neither. */
static size_t find(const struct shcount *s, const struct shcount_table *t, uint64_t key, bool *found)
{
	size_t mask = s->slot_count - 1;
	size_t i = (size_t)key & mask;
	for (size_t n = 0; n < s->slot_count; n++, i = (i + 1) & mask) {
		uint64_t w = load(&t->slots[i]);
		if (w == 0) {
			*found = false;
			return i;
		}
		if (w >> COUNT_BITS == key) {
			*found = true;
			return i;
		}
	}
	*found = false;
	return SIZE_MAX;
}

unsigned shcount_total(const struct shcount *s, uint64_t key)
{
	unsigned total = 0;
	for (unsigned w = 0; w < s->worker_count; w++) {
		const struct shcount_table *t = table(s, w);
		bool found;
		size_t i = find(s, t, key, &found);
		if (found)
			total += (unsigned)(load(&t->slots[i]) & COUNT_MASK);
	}
	return total;
}

bool shcount_add(struct shcount *s, unsigned worker, uint64_t key)
{
	if (worker >= s->worker_count)
		return false;
	struct shcount_table *t = table(s, worker);
	bool found;
	size_t i = find(s, t, key, &found);
	if (i == SIZE_MAX)
		return false;
	if (found) {
		uint64_t w = load(&t->slots[i]);
		if ((w & COUNT_MASK) == COUNT_MASK)
			return false;
		store(&t->slots[i], w + 1);
		return true;
	}
	if (load(&t->used) >= s->slot_count / 4 * 3)
		return false;
	store(&t->slots[i], key << COUNT_BITS | 1);
	store(&t->used, load(&t->used) + 1);
	return true;
}

void shcount_remove(struct shcount *s, unsigned worker, uint64_t key)
{
	if (worker >= s->worker_count)
		return;
	struct shcount_table *t = table(s, worker);
	bool found;
	size_t i = find(s, t, key, &found);
	if (!found)
		return;
	uint64_t w = load(&t->slots[i]);
	if ((w & COUNT_MASK) > 1) {
		store(&t->slots[i], w - 1);
		return;
	}
	/* Deletion by backward shift (no tombstones, so probes stay short):
	 * each later entry of the run that may move into the hole does, and
	 * its copy is written before its old slot changes, so readers never
	 * lose it. */
	size_t mask = s->slot_count - 1;
	size_t j = i;
	for (;;) {
		j = (j + 1) & mask;
		uint64_t wj = load(&t->slots[j]);
		if (wj == 0)
			break;
		size_t home = (size_t)(wj >> COUNT_BITS) & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			store(&t->slots[i], wj);
			i = j;
		}
	}
	store(&t->slots[i], 0);
	store(&t->used, load(&t->used) - 1);
}
