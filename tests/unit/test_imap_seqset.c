/* Sequence set tests. */
#include "harness.h"

#include "imap/seqset.h"

#include <stdio.h>
#include <string.h>

/* Renders a set as "lo:hi,lo:hi" with '*' for SEQ_STAR. */
static void render(const struct seqset *set, char *out, size_t size)
{
	size_t n = 0;
	out[0] = '\0';
	if (set->is_saved)
		n += (size_t)snprintf(out + n, size - n, "$");
	for (size_t i = 0; i < set->count && n < size; i++) {
		char lo[16], hi[16];
		snprintf(lo, sizeof(lo), set->ranges[i].lo == SEQ_STAR ? "*" : "%u", set->ranges[i].lo);
		snprintf(hi, sizeof(hi), set->ranges[i].hi == SEQ_STAR ? "*" : "%u", set->ranges[i].hi);
		n += (size_t)snprintf(out + n, size - n, "%s%s:%s", i ? "," : "", lo, hi);
	}
}

struct scase {
	const char *in;
	const char *parsed;	/* NULL: must be rejected */
	uint32_t max;
	const char *resolved;
};

static const struct scase cases[] = {
	{ "1", "1:1", 10, "1:1" },
	{ "1,3:5,7:*", "1:1,3:5,7:*", 10, "1:1,3:5,7:10" },
	{ "*", "*:*", 10, "10:10" },
	{ "*:3", "3:*", 10, "3:10" },
	{ "5:2", "2:5", 10, "2:5" },
	{ "12:*", "12:*", 10, "10:12" },	/* RFC 9051 6.4.8: includes the last */
	{ "1:*", "1:*", 0, "" },		/* empty mailbox */
	{ "3,1:*", "3:3,1:*", 0, "3:3" },
	{ "1:3,2:6", "1:3,2:6", 100, "1:6" },	/* overlapping */
	{ "1:3,4:6", "1:3,4:6", 100, "1:6" },	/* adjacent */
	{ "9,8,7,1", "9:9,8:8,7:7,1:1", 100, "1:1,7:9" },
	{ "5,5,5", "5:5,5:5,5:5", 100, "5:5" },
	{ "4294967294:4294967295", "4294967294:*", 100, "100:4294967294" },
	{ "1:4294967295,7", "1:*,7:7", 100, "1:100" },
	/* With max 2^32-1 a resolved range ending there renders as '*'. */
	{ "4294967295,1", "*:*,1:1", 4294967295u, "1:1,*:*" },
	{ "2,4294967295", "2:2,*:*", 4294967295u, "2:2,*:*" },
	{ "1:2,3:4294967295", "1:2,3:*", 4294967295u, "1:*" },
	{ "4294967294,4294967295", "4294967294:4294967294,*:*", 4294967295u, "4294967294:*" },
	{ "$", "$", 10, "$" },
	{ "", NULL, 0, NULL },
	{ "0", NULL, 0, NULL },
	{ "0:5", NULL, 0, NULL },
	{ "1:0", NULL, 0, NULL },
	{ "01", NULL, 0, NULL },
	{ "1,", NULL, 0, NULL },
	{ ",1", NULL, 0, NULL },
	{ "1,,2", NULL, 0, NULL },
	{ "1:", NULL, 0, NULL },
	{ ":1", NULL, 0, NULL },
	{ "1::2", NULL, 0, NULL },
	{ "1:2:3", NULL, 0, NULL },
	{ "4294967296", NULL, 0, NULL },
	{ "99999999999999999999", NULL, 0, NULL },
	{ "1 ", NULL, 0, NULL },
	{ "-1", NULL, 0, NULL },
	{ "a", NULL, 0, NULL },
	{ "**", NULL, 0, NULL },
	{ "$,1", NULL, 0, NULL },
	{ "1,$", NULL, 0, NULL },
};

static void test_table(void)
{
	char got[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct scase *c = &cases[i];
		struct seqset set;
		int r = seqset_parse(c->in, &set);
		if (c->parsed == NULL) {
			if (r != -1 || set.count != 0 || set.ranges != NULL) {
				fprintf(stderr, "accepted bad set \"%s\"\n", c->in);
				CHECK(!"bad set accepted");
			}
			continue;
		}
		CHECK_INT(r, 0);
		render(&set, got, sizeof(got));
		if (strcmp(got, c->parsed) != 0) {
			fprintf(stderr, "parse \"%s\": got \"%s\" expected \"%s\"\n", c->in, got, c->parsed);
			CHECK(!"parse");
		}
		seqset_resolve(&set, c->max);
		render(&set, got, sizeof(got));
		if (strcmp(got, c->resolved) != 0) {
			fprintf(stderr, "resolve \"%s\" max %u: got \"%s\" expected \"%s\"\n",
				c->in, c->max, got, c->resolved);
			CHECK(!"resolve");
		}
		seqset_free(&set);
		CHECK(set.ranges == NULL && set.count == 0);
	}
}

static void test_contains(void)
{
	struct seqset set;
	CHECK_INT(seqset_parse("2,4:6,10:*", &set), 0);
	/* Before resolving: a linear scan, '*' is UINT32_MAX. */
	CHECK(!seqset_contains(&set, 1));
	CHECK(seqset_contains(&set, 2));
	CHECK(seqset_contains(&set, 5));
	CHECK(!seqset_contains(&set, 7));
	CHECK(seqset_contains(&set, 1000));
	seqset_resolve(&set, 12);
	static const int expect[] = { 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0 };
	for (uint32_t n = 0; n < sizeof(expect) / sizeof(expect[0]); n++)
		CHECK_INT(seqset_contains(&set, n), expect[n]);
	CHECK(!seqset_contains(&set, UINT32_MAX));
	seqset_free(&set);

	CHECK_INT(seqset_parse("$", &set), 0);
	CHECK(set.is_saved);
	CHECK(!seqset_contains(&set, 1));
	seqset_free(&set);

	/* Many ranges, resolved: binary search agrees with the definition. */
	char text[4096];
	size_t n = 0;
	for (uint32_t i = 1; i < 300; i += 3)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%u", n ? "," : "", 1000 - i * 3);
	CHECK_INT(seqset_parse(text, &set), 0);
	seqset_resolve(&set, 5000);
	CHECK_INT(set.count, 100);
	for (uint32_t k = 0; k < 1100; k++) {
		bool want = k <= 997 && k >= 103 && (997 - k) % 9 == 0;
		if (seqset_contains(&set, k) != want) {
			CHECK(!"contains after resolve");
			break;
		}
	}
	seqset_free(&set);
}

int main(void)
{
	RUN(test_table);
	RUN(test_contains);
	return harness_finish();
}
