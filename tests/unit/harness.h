/* A tiny unit test harness. Each test file defines test functions and a
 * main() that runs them with RUN(); the last line printed is
 * "RESULT <passed> <failed>", which tests/run.py adds up.
 *
 *	static void test_something(void) { CHECK(1 + 1 == 2); }
 *	int main(void) { RUN(test_something); return harness_finish(); }
 */
#ifndef POSTERN_TEST_HARNESS_H
#define POSTERN_TEST_HARNESS_H

#include <stdio.h>
#include <string.h>

static int harness_checks_failed;
static int harness_tests_passed;
static int harness_tests_failed;

#define CHECK(cond) do { \
	if (!(cond)) { \
		harness_checks_failed++; \
		fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
	} \
} while (0)

#define CHECK_STR(actual, expected) do { \
	const char *a_ = (actual), *e_ = (expected); \
	if (a_ == NULL || e_ == NULL ? a_ != e_ : strcmp(a_, e_) != 0) { \
		harness_checks_failed++; \
		fprintf(stderr, "%s:%d: CHECK_STR failed: %s\n  got:      \"%s\"\n  expected: \"%s\"\n", \
			__FILE__, __LINE__, #actual, a_ ? a_ : "(null)", e_ ? e_ : "(null)"); \
	} \
} while (0)

#define CHECK_INT(actual, expected) do { \
	long long a_ = (long long)(actual), e_ = (long long)(expected); \
	if (a_ != e_) { \
		harness_checks_failed++; \
		fprintf(stderr, "%s:%d: CHECK_INT failed: %s\n  got: %lld expected: %lld\n", \
			__FILE__, __LINE__, #actual, a_, e_); \
	} \
} while (0)

#define RUN(fn) do { \
	int before_ = harness_checks_failed; \
	fn(); \
	if (harness_checks_failed == before_) { \
		harness_tests_passed++; \
		printf("ok   %s\n", #fn); \
	} else { \
		harness_tests_failed++; \
		printf("FAIL %s\n", #fn); \
	} \
	fflush(stdout); \
} while (0)

static inline int harness_finish(void)
{
	printf("RESULT %d %d\n", harness_tests_passed, harness_tests_failed);
	return harness_tests_failed == 0 ? 0 : 1;
}

#endif
