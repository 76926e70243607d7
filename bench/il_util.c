/* imapload utilities: failure, time, allocation, buffers, randomness,
 * latency statistics and the server's resident memory from /proc. */
#include "il.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct il_opts il_opt;

uint64_t il_now_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		abort();
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void il_fail(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs("imapload: FAILED: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void il_log(const char *fmt, ...)
{
	va_list ap;
	if (il_opt.quiet)
		return;
	fputs("imapload: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void *il_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		il_fail("out of memory (%zu bytes)", n);
	return p;
}

void *il_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		il_fail("out of memory (%zu bytes)", n);
	return p;
}

char *il_xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(il_xmalloc(n), s, n);
}

const char *il_user_name(int i)
{
	static char name[256];
	const char *u = il_opt.user;
	const char *pct = strstr(u, "%d");
	if (pct == NULL)
		return u;
	int idx = il_opt.users > 0 ? i % il_opt.users : i;
	/* One %d at most, checked in main(); build without a format string
	 * taken from the command line. */
	int n = snprintf(name, sizeof(name), "%.*s%d%s", (int)(pct - u), u, idx + 1, pct + 2);
	if (n < 0 || (size_t)n >= sizeof(name))
		il_fail("user name too long: %s", u);
	return name;
}

void il_rng_seed(struct il_rng *r, uint64_t seed)
{
	r->s = il_mix(seed, 0x9e3779b97f4a7c15u) | 1;
}

uint64_t il_rng_next(struct il_rng *r)
{
	uint64_t x = r->s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545f4914f6cdd1du;
}

uint32_t il_rng_below(struct il_rng *r, uint32_t n)
{
	return (uint32_t)((il_rng_next(r) >> 32) * n >> 32);
}

uint64_t il_mix(uint64_t a, uint64_t b)
{
	uint64_t z = a * 0x9e3779b97f4a7c15u + b + 0x632be59bd9b4e019u;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

char *il_buf_space(struct il_buf *b, size_t n)
{
	if (b->start > 0 && b->start == b->len) {
		b->start = b->len = 0;
	}
	if (b->len + n > b->cap) {
		if (b->start > 0) {
			memmove(b->data, b->data + b->start, b->len - b->start);
			b->len -= b->start;
			b->start = 0;
		}
		if (b->len + n > b->cap) {
			size_t cap = b->cap ? b->cap : 4096;
			while (cap < b->len + n)
				cap *= 2;
			b->data = il_xrealloc(b->data, cap);
			b->cap = cap;
		}
	}
	return b->data + b->len;
}

void il_buf_append(struct il_buf *b, const void *p, size_t n)
{
	memcpy(il_buf_space(b, n), p, n);
	b->len += n;
}

void il_buf_printf(struct il_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		il_fail("vsnprintf failed");
	char *w = il_buf_space(b, (size_t)n + 1);
	va_start(ap, fmt);
	if (vsnprintf(w, (size_t)n + 1, fmt, ap) != n)
		il_fail("vsnprintf failed");
	va_end(ap);
	b->len += (size_t)n;
}

void il_buf_consume(struct il_buf *b, size_t n)
{
	b->start += n;
	if (b->start >= b->len)
		b->start = b->len = 0;
}

void il_buf_free(struct il_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->start = b->len = b->cap = 0;
}

uint64_t il_stat_until_ns;

void il_stat_add(struct il_stat *s, uint64_t ns)
{
	if (il_stat_until_ns != 0 && il_now_ns() > il_stat_until_ns)
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->us = il_xrealloc(s->us, s->cap * sizeof(*s->us));
	}
	uint64_t us = ns / 1000;
	s->us[s->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

double il_stat_quantile_ms(struct il_stat *s, double q)
{
	if (s->n == 0)
		return 0;
	qsort(s->us, s->n, sizeof(*s->us), cmp_u32);
	/* Nearest rank: the smallest sample with at least q of all at or
	 * below it. */
	size_t rank = (size_t)(q * (double)s->n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > s->n)
		rank = s->n;
	return s->us[rank - 1] / 1000.0;
}

void il_stats_print(struct il_stat *stats, int nstats, double seconds)
{
	printf("%-12s %9s %10s %10s %10s %10s\n", "command", "count", "ops/s", "median_ms", "p99_ms",
	       "p99.9_ms");
	for (int i = 0; i < nstats; i++) {
		struct il_stat *s = &stats[i];
		if (s->n == 0)
			continue;
		printf("%-12s %9zu %10.1f %10.3f %10.3f %10.3f\n", s->name, s->n,
		       seconds > 0 ? (double)s->n / seconds : 0, il_stat_quantile_ms(s, 0.5),
		       il_stat_quantile_ms(s, 0.99), il_stat_quantile_ms(s, 0.999));
	}
}

/* Reads "Key:   123 kB" from a /proc file; -1 when absent. */
static long proc_kib(const char *path, const char *key)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	char line[256];
	size_t klen = strlen(key);
	long v = -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	}
	if (fclose(f) != 0)
		return -1;
	return v;
}

static int read_ppid(int pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	if (fclose(f) != 0)
		return -1;
	buf[n] = '\0';
	/* The name is in parentheses and may hold spaces: skip to the last ')'. */
	char *rp = strrchr(buf, ')');
	if (rp == NULL)
		return -1;
	char state;
	int ppid;
	if (sscanf(rp + 1, " %c %d", &state, &ppid) != 2)
		return -1;
	return ppid;
}

static void add_pid(int pid, long *rss, long *pss, int *n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	long r = proc_kib(path, "VmRSS");
	if (r < 0)
		return; /* gone, or a kernel thread */
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	long p = proc_kib(path, "Pss");
	*rss += r;
	*pss += p > 0 ? p : 0;
	(*n)++;
}

int il_server_memory(long *rss_kib_r, long *pss_kib_r)
{
	long rss = 0, pss = 0;
	int n = 0;
	if (il_opt.pids != NULL) {
		char *copy = il_xstrdup(il_opt.pids), *save = NULL;
		for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save))
			add_pid(atoi(t), &rss, &pss, &n);
		free(copy);
	}
	if (il_opt.pid_tree > 0) {
		/* Breadth first over /proc: a parent's children are found by
		 * scanning every process once per tree level. */
		int *tree = il_xmalloc(sizeof(int) * 1);
		size_t ntree = 1, cap = 1;
		tree[0] = il_opt.pid_tree;
		size_t level_start = 0;
		while (level_start < ntree) {
			size_t level_end = ntree;
			DIR *d = opendir("/proc");
			if (d == NULL)
				il_fail("opendir /proc: %s", strerror(errno));
			struct dirent *e;
			while ((e = readdir(d)) != NULL) {
				if (e->d_name[0] < '0' || e->d_name[0] > '9')
					continue;
				int pid = atoi(e->d_name);
				int ppid = read_ppid(pid);
				for (size_t k = level_start; k < level_end; k++) {
					if (ppid == tree[k]) {
						if (ntree == cap) {
							cap *= 2;
							tree = il_xrealloc(tree, cap * sizeof(int));
						}
						tree[ntree++] = pid;
						break;
					}
				}
			}
			if (closedir(d) != 0)
				il_fail("closedir /proc: %s", strerror(errno));
			level_start = level_end;
		}
		for (size_t k = 0; k < ntree; k++)
			add_pid(tree[k], &rss, &pss, &n);
		free(tree);
	}
	*rss_kib_r = rss;
	*pss_kib_r = pss;
	return n;
}
