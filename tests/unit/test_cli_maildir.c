/* Tests for the Maildir++ format helpers (src/cli/maildir.h). */
#include "harness.h"
#include "cli/maildir.h"
#include "store/store.h"

#include <stdlib.h>
#include <unistd.h>

static void test_name_parse(void)
{
	static const struct {
		const char *name;
		size_t base_len;
		uint32_t flags, keywords;
	} cases[] = {
		{ "1700.M1P2.host,S=28,W=32:2,Sa", 24, STORE_FLAG_SEEN, 1 },
		{ "1700.M1P2.host:2,DFPRST", 14, STORE_FLAGS_ALL, 0 },
		{ "1700.M1P2.host:2,", 14, 0, 0 },
		{ "1700.M1P2.host", 14, 0, 0 },
		{ "1700.M1P2.host!2,Tz", 14, STORE_FLAG_DELETED, 1u << 25 },
		{ "x:2,Rbc", 1, STORE_FLAG_ANSWERED, 6 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t base_len;
		uint32_t flags, keywords;
		maildir_name_parse(cases[i].name, &base_len, &flags, &keywords);
		CHECK_INT(base_len, cases[i].base_len);
		CHECK_INT(flags, cases[i].flags);
		CHECK_INT(keywords, cases[i].keywords);
	}
	struct buf b = BUF_INIT;
	maildir_info_write(&b, STORE_FLAGS_ALL, 1u | (1u << 25));
	CHECK_STR(b.data, ":2,DFRSTaz");
	buf_clear(&b);
	maildir_info_write(&b, 0, 0);
	CHECK_STR(b.data, ":2,");
	buf_free(&b);
}

static void test_folder_names(void)
{
	static const struct {
		const char *dir, *mailbox;
	} ok[] = {
		{ ".Sent", "Sent" },
		{ ".Work.Projects", "Work/Projects" },
		{ ".Caf&AOk-", "Caf\xc3\xa9" },
		{ ".A&-B", "A&B" },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct buf b = BUF_INIT;
		CHECK_INT(maildir_folder_to_mailbox(ok[i].dir, &b), 0);
		CHECK_STR(b.data, ok[i].mailbox);
		buf_clear(&b);
		CHECK_INT(maildir_mailbox_to_folder(ok[i].mailbox, &b), 0);
		CHECK_STR(b.data, ok[i].dir);
		buf_free(&b);
	}
	static const char *const bad[] = { "Sent", ".", ".a..b", ".a.", ".Caf&AOk", ".a\xc3\xa9" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf b = BUF_INIT;
		CHECK_INT(maildir_folder_to_mailbox(bad[i], &b), -1);
		CHECK(b.len == 0);
		buf_free(&b);
	}
	struct buf b = BUF_INIT;
	CHECK_INT(maildir_mailbox_to_folder("v1.2", &b), -1);
	buf_free(&b);
}

static char *write_temp(const char *text)
{
	char *path = strdup("/tmp/postern-maildir-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		perror("temp file");
		exit(2);
	}
	close(fd);
	return path;
}

static void test_uidlist(void)
{
	struct maildir_uidlist list;
	char *error = NULL;
	char *path = write_temp("3 V1795242283 N7 Gd837ab1c2b39016b8a09000083ecc375\n"
				"1 :1700.M1P1.host,S=28,W=32\n"
				"4 W40 :1700.M4P1.host,S=30\n"
				"garbage\n"
				"6 :1700.M6P1.host:2,S\n");
	CHECK_INT(maildir_uidlist_read(path, &list, &error), 1);
	CHECK_INT(list.uidvalidity, 1795242283);
	CHECK_INT(list.nextuid, 7);
	CHECK_INT(list.count, 3);
	const char *n = "1700.M4P1.host,S=30:2,RS";
	CHECK_INT(maildir_uidlist_find(&list, n, 19), 4);
	CHECK_INT(maildir_uidlist_find(&list, "1700.M6P1.host", 14), 6);
	CHECK_INT(maildir_uidlist_find(&list, "1700.M6P1.hos", 13), 0);
	CHECK_INT(maildir_uidlist_find(&list, "1700.M1P1.host,S=28,W=32", 24), 1);
	maildir_uidlist_free(&list);
	unlink(path);
	free(path);

	/* Courier's courierimapuiddb and Dovecot's version 1. */
	path = write_temp("1 1234 10\n3 1700.M3P1.host\n");
	CHECK_INT(maildir_uidlist_read(path, &list, &error), 1);
	CHECK_INT(list.uidvalidity, 1234);
	CHECK_INT(list.nextuid, 10);
	CHECK_INT(maildir_uidlist_find(&list, "1700.M3P1.host", 14), 3);
	maildir_uidlist_free(&list);
	unlink(path);
	free(path);

	path = write_temp("9 what\n");
	CHECK_INT(maildir_uidlist_read(path, &list, &error), -1);
	CHECK(error != NULL);
	free(error);
	unlink(path);
	CHECK_INT(maildir_uidlist_read(path, &list, &error), 0);
	free(path);
}

static void test_keywords(void)
{
	char *names[MAILDIR_MAX_KEYWORDS];
	char *path = write_temp("0 $Work\n1 Old\n30 Beyond\nbad line\n25 Last\n");
	CHECK_INT(maildir_keywords_read(path, names), 1);
	CHECK_STR(names[0], "$Work");
	CHECK_STR(names[1], "Old");
	CHECK(names[2] == NULL);
	CHECK_STR(names[25], "Last");
	maildir_keywords_free(names);
	unlink(path);
	CHECK_INT(maildir_keywords_read(path, names), 0);
	free(path);
}

int main(void)
{
	RUN(test_name_parse);
	RUN(test_folder_names);
	RUN(test_uidlist);
	RUN(test_keywords);
	return harness_finish();
}
