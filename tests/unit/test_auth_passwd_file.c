#include "auth/passwd_file.h"
#include "core/xalloc.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/postern-test-passwd-XXXXXX";

static char *path_in_tmp(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f == NULL)
		return;
	CHECK(fputs(text, f) >= 0);
	CHECK(fclose(f) == 0);
}

/* The file's contents, malloc'd; "" when missing. */
static char *read_file(const char *path)
{
	struct buf b = BUF_INIT;
	FILE *f = fopen(path, "r");
	if (f != NULL) {
		char chunk[512];
		size_t n;
		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			buf_append(&b, chunk, n);
		fclose(f);
	}
	buf_append(&b, "", 0);
	return buf_steal(&b);
}

static void test_load(void)
{
	char *path = path_in_tmp("load");
	write_file(path,
		   "# postern users\n"
		   "\n"
		   "alice:{PLAIN}secret\n"
		   "   \n"
		   "  # indented comment\n"
		   "bob:{SHA512-CRYPT}$6$x$y:1000:1000::/home/bob::userdb_quota_rule=*:storage=1G\n"
		   "carol@example.org:{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$s$h:\r\n"
		   "dave:");
	struct passwd_file pf;
	struct buf errors = BUF_INIT;
	CHECK_INT(passwd_file_load(&pf, path, &errors), 0);
	CHECK_INT(errors.len, 0);
	CHECK_INT(pf.count, 4);

	const struct passwd_entry *e = passwd_file_find(&pf, "alice");
	CHECK(e != NULL);
	if (e != NULL) {
		CHECK_STR(e->password, "{PLAIN}secret");
		CHECK(e->rest == NULL);
		CHECK_INT(e->line, 3);
	}
	e = passwd_file_find(&pf, "bob");
	CHECK(e != NULL);
	if (e != NULL) {
		CHECK_STR(e->password, "{SHA512-CRYPT}$6$x$y");
		CHECK_STR(e->rest, "1000:1000::/home/bob::userdb_quota_rule=*:storage=1G");
		CHECK_INT(e->line, 6);
	}
	e = passwd_file_find(&pf, "carol@example.org");
	CHECK(e != NULL);
	if (e != NULL) {
		CHECK_STR(e->password, "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$s$h");
		CHECK_STR(e->rest, "");		/* the CR is not part of it */
	}
	e = passwd_file_find(&pf, "dave");
	CHECK(e != NULL && strcmp(e->password, "") == 0 && e->line == 8);
	CHECK(passwd_file_find(&pf, "Alice") == NULL);
	CHECK(passwd_file_find(&pf, "") == NULL);
	CHECK(passwd_file_find(&pf, "zed") == NULL);
	passwd_file_free(&pf);
	CHECK(pf.entries == NULL && pf.count == 0 && pf.path == NULL);
	buf_free(&errors);
	free(path);
}

static void test_load_errors(void)
{
	char *path = path_in_tmp("bad");
	write_file(path,
		   "alice:{PLAIN}a\n"
		   "no colon here\n"
		   ":{PLAIN}nobody\n"
		   "bob:{PLAIN}b\n"
		   "alice:{PLAIN}again\n"
		   "../etc:{PLAIN}x\n"
		   "bob:{PLAIN}thrice\n"
		   "alice:{PLAIN}thrice\n");
	struct passwd_file pf;
	struct buf errors = BUF_INIT;
	CHECK_INT(passwd_file_load(&pf, path, &errors), -1);
	char *expected = xasprintf("%1$s:2: missing ':' after the user name\n"
				   "%1$s:3: empty user name\n"
				   "%1$s:6: invalid user name\n"
				   "%1$s:5: duplicate user (first on line 1)\n"
				   "%1$s:8: duplicate user (first on line 1)\n"
				   "%1$s:7: duplicate user (first on line 4)\n", path);
	CHECK_STR(errors.data, expected);
	CHECK_INT(pf.count, 0);
	passwd_file_free(&pf);
	free(expected);
	buf_free(&errors);

	char *missing = path_in_tmp("missing");
	CHECK_INT(passwd_file_load(&pf, missing, &errors), -1);
	expected = xasprintf("%s: No such file or directory\n", missing);
	CHECK_STR(errors.data, expected);
	passwd_file_free(&pf);
	buf_free(&errors);
	free(expected);
	free(missing);
	free(path);
}

static void test_refresh(void)
{
	char *path = path_in_tmp("refresh");
	write_file(path, "alice:{PLAIN}a\n");
	struct passwd_file pf;
	struct buf errors = BUF_INIT;
	CHECK_INT(passwd_file_load(&pf, path, &errors), 0);
	CHECK_INT(passwd_file_refresh(&pf, &errors), 0);

	/* An atomic replace: a new inode. */
	char *error = NULL;
	CHECK_INT(passwd_file_set(path, "bob", "{PLAIN}b", false, true, &error), 0);
	CHECK(error == NULL);
	CHECK_INT(passwd_file_refresh(&pf, &errors), 1);
	CHECK(passwd_file_find(&pf, "bob") != NULL);
	CHECK_INT(passwd_file_refresh(&pf, &errors), 0);

	/* An edit in place that changes the size. */
	write_file(path, "alice:{PLAIN}a\nbob:{PLAIN}b\ncarol:{PLAIN}c\n");
	CHECK_INT(passwd_file_refresh(&pf, &errors), 1);
	CHECK(passwd_file_find(&pf, "carol") != NULL);

	/* A broken file keeps the old contents. */
	write_file(path, "alice:{PLAIN}a\nalice:{PLAIN}b\n");
	CHECK_INT(passwd_file_refresh(&pf, &errors), -1);
	CHECK(strstr(errors.data, ":2: duplicate user") != NULL);
	CHECK_INT(pf.count, 3);
	CHECK(passwd_file_find(&pf, "carol") != NULL);
	buf_clear(&errors);

	CHECK(unlink(path) == 0);
	CHECK_INT(passwd_file_refresh(&pf, &errors), -1);
	CHECK(strstr(errors.data, "No such file") != NULL);
	CHECK_INT(pf.count, 3);
	passwd_file_free(&pf);
	buf_free(&errors);
	free(path);
}

static void test_set_and_delete(void)
{
	char *path = path_in_tmp("edit");
	const char *original =
		"# users\n"
		"alice:{PLAIN}a:1000:1000::/home/alice::extra=1\n"
		"#bob:{PLAIN}commented\n"
		"weird line without colon\n"
		"bob:{PLAIN}b\r\n"
		"carol:{PLAIN}c";
	write_file(path, original);
	CHECK(chmod(path, 0604) == 0);
	char *error = NULL;

	/* Change alice: only her password field changes. */
	CHECK_INT(passwd_file_set(path, "alice", "{PLAIN}new", true, false, &error), 0);
	char *text = read_file(path);
	CHECK_STR(text,
		  "# users\n"
		  "alice:{PLAIN}new:1000:1000::/home/alice::extra=1\n"
		  "#bob:{PLAIN}commented\n"
		  "weird line without colon\n"
		  "bob:{PLAIN}b\r\n"
		  "carol:{PLAIN}c\n");
	free(text);
	struct stat st;
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0604);

	/* Add dave at the end; bob keeps his CRLF. */
	CHECK_INT(passwd_file_set(path, "dave", "{PLAIN}d", false, true, &error), 0);
	CHECK_INT(passwd_file_set(path, "bob", "{PLAIN}bb", false, false, &error), 0);
	text = read_file(path);
	CHECK(strstr(text, "\nbob:{PLAIN}bb\r\ncarol:{PLAIN}c\ndave:{PLAIN}d\n") != NULL);
	free(text);

	/* The flags. */
	CHECK_INT(passwd_file_set(path, "dave", "{PLAIN}x", false, true, &error), -1);
	CHECK_STR(error, "user dave already exists");
	free(error);
	error = NULL;
	CHECK_INT(passwd_file_set(path, "erin", "{PLAIN}x", true, false, &error), -1);
	CHECK_STR(error, "no such user erin");
	free(error);
	error = NULL;

	/* Delete: the commented-out bob stays. */
	CHECK_INT(passwd_file_delete(path, "bob", &error), 0);
	CHECK_INT(passwd_file_delete(path, "bob", &error), -1);
	CHECK_STR(error, "no such user bob");
	free(error);
	error = NULL;
	text = read_file(path);
	CHECK_STR(text,
		  "# users\n"
		  "alice:{PLAIN}new:1000:1000::/home/alice::extra=1\n"
		  "#bob:{PLAIN}commented\n"
		  "weird line without colon\n"
		  "carol:{PLAIN}c\n"
		  "dave:{PLAIN}d\n");
	free(text);

	/* Bad input leaves the file alone. */
	CHECK_INT(passwd_file_set(path, "bad:name", "{PLAIN}x", false, false, &error), -1);
	CHECK_STR(error, "invalid user name");
	free(error);
	error = NULL;
	CHECK_INT(passwd_file_set(path, "erin", "{PLAIN}x:y", false, false, &error), -1);
	CHECK(error != NULL);
	free(error);
	error = NULL;
	CHECK_INT(passwd_file_set(path, "erin", "{PLAIN}x\ny:z", false, false, &error), -1);
	free(error);
	error = NULL;

	/* No temporary files left behind; the lock file stays. */
	int others = 0;
	char *cmd = xasprintf("ls %s | grep -c '^edit\\.' | grep -qx 1", tmpdir);
	others = system(cmd);
	CHECK_INT(others, 0);
	free(cmd);
	free(path);
}

static void test_create(void)
{
	char *path = path_in_tmp("new");
	char *error = NULL;
	CHECK_INT(passwd_file_delete(path, "alice", &error), -1);
	CHECK_STR(error, "no such user alice");
	free(error);
	error = NULL;
	CHECK_INT(passwd_file_set(path, "alice", "{PLAIN}a", true, false, &error), -1);
	free(error);
	error = NULL;
	CHECK(access(path, F_OK) < 0 && errno == ENOENT);

	CHECK_INT(passwd_file_set(path, "alice", "{PLAIN}a", false, true, &error), 0);
	struct stat st;
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0640);
	char *text = read_file(path);
	CHECK_STR(text, "alice:{PLAIN}a\n");
	free(text);

	char *bad_dir = xasprintf("%s/no/such/dir/passwd", tmpdir);
	CHECK_INT(passwd_file_set(bad_dir, "alice", "{PLAIN}a", false, true, &error), -1);
	CHECK(error != NULL);
	free(error);
	free(bad_dir);
	free(path);
}

/* Many processes adding different users at once: the lock keeps them all. */
static void test_concurrent_edits(void)
{
	char *path = path_in_tmp("concurrent");
	enum { WRITERS = 8, EACH = 5 };
	for (int w = 0; w < WRITERS; w++) {
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			for (int i = 0; i < EACH; i++) {
				char user[32], *error = NULL;
				snprintf(user, sizeof(user), "u%d_%d", w, i);
				if (passwd_file_set(path, user, "{PLAIN}x", false, true, &error) < 0)
					_exit(1);
			}
			_exit(0);
		}
	}
	for (int w = 0; w < WRITERS; w++) {
		int status;
		CHECK(wait(&status) > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	struct passwd_file pf;
	struct buf errors = BUF_INIT;
	CHECK_INT(passwd_file_load(&pf, path, &errors), 0);
	CHECK_INT(pf.count, WRITERS * EACH);
	passwd_file_free(&pf);
	buf_free(&errors);
	free(path);
}

static void test_user_name_valid(void)
{
	CHECK(passwd_user_name_valid("alice"));
	CHECK(passwd_user_name_valid("alice@example.org"));
	CHECK(passwd_user_name_valid("a.b-c_d+e"));
	CHECK(passwd_user_name_valid("\xc3\xa9lodie"));
	CHECK(passwd_user_name_valid("..."));
	static const char *const bad[] = {
		"", ".", "..", "a:b", "a/b", "/", "a b", "a\tb", "a\nb", "a\x7f", "#alice",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(!passwd_user_name_valid(bad[i]));
	char name[300];
	memset(name, 'a', sizeof(name));
	name[256] = '\0';
	CHECK(passwd_user_name_valid(name));
	name[256] = 'a';
	name[257] = '\0';
	CHECK(!passwd_user_name_valid(name));
}

int main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_load);
	RUN(test_load_errors);
	RUN(test_refresh);
	RUN(test_set_and_delete);
	RUN(test_create);
	RUN(test_concurrent_edits);
	RUN(test_user_name_valid);
	char *cmd = xasprintf("rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	free(cmd);
	return harness_finish();
}
