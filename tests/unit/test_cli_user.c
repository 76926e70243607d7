#include "auth/passwd_file.h"
#include "auth/password.h"
#include "cli/user.h"
#include "core/xalloc.h"
#include "harness.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/postern-test-cli-XXXXXX";
static char *passwd_path;

struct outcome {
	int code;
	char *out;
	char *err;
};

static char *slurp(int fd)
{
	struct buf b = BUF_INIT;
	char chunk[512];
	ssize_t n;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return xstrdup("");
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_append(&b, chunk, (size_t)n);
	buf_append(&b, "", 0);
	return buf_steal(&b);
}

static int temp_fd(const char *name)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	free(path);
	return fd;
}

/* Runs `postern user ARGS` with input on stdin (not a terminal). */
static struct outcome run(const char *input, int argc, char **argv)
{
	struct outcome o = { -1, NULL, NULL };
	int in = temp_fd("stdin"), out = temp_fd("stdout"), err = temp_fd("stderr");
	if (in < 0 || out < 0 || err < 0 ||
	    write(in, input, strlen(input)) != (ssize_t)strlen(input) || lseek(in, 0, SEEK_SET) < 0) {
		CHECK(!"cannot set up redirection");
		return o;
	}
	fflush(stdout);
	fflush(stderr);
	int saved[3] = { dup(0), dup(1), dup(2) };
	CHECK(dup2(in, 0) == 0 && dup2(out, 1) == 1 && dup2(err, 2) == 2);
	o.code = cli_user(argc, argv, passwd_path);
	fflush(stdout);
	fflush(stderr);
	for (int i = 0; i < 3; i++) {
		CHECK(dup2(saved[i], i) == i);
		close(saved[i]);
	}
	o.out = slurp(out);
	o.err = slurp(err);
	close(in);
	close(out);
	close(err);
	return o;
}

static void outcome_free(struct outcome *o)
{
	free(o->out);
	free(o->err);
}

static enum password_result verify_user(const char *user, const char *pw)
{
	struct passwd_file pf;
	struct buf errors = BUF_INIT;
	enum password_result r = PASSWORD_ERROR;
	if (passwd_file_load(&pf, passwd_path, &errors) == 0) {
		const struct passwd_entry *e = passwd_file_find(&pf, user);
		const char *error;
		if (e != NULL)
			r = password_verify(e->password, pw, strlen(pw), &error);
	}
	passwd_file_free(&pf);
	buf_free(&errors);
	return r;
}

static void test_add_passwd_del_list(void)
{
	char *add_alice[] = { "add", "alice" };
	struct outcome o = run("s3cret\n", 2, add_alice);
	CHECK_INT(o.code, 0);
	CHECK_STR(o.out, "");
	outcome_free(&o);
	CHECK_INT(verify_user("alice", "s3cret"), PASSWORD_MATCH);

	o = run("again\n", 2, add_alice);
	CHECK_INT(o.code, 1);
	CHECK(strstr(o.err, "user alice already exists") != NULL);
	outcome_free(&o);

	char *add_bob[] = { "add", "bob" };
	o = run("bobpw\r\n", 2, add_bob);	/* CRLF from a Windows pipe */
	CHECK_INT(o.code, 0);
	outcome_free(&o);
	CHECK_INT(verify_user("bob", "bobpw"), PASSWORD_MATCH);

	char *passwd_alice[] = { "passwd", "alice" };
	o = run("n3w pass", 2, passwd_alice);	/* no newline at EOF */
	CHECK_INT(o.code, 0);
	outcome_free(&o);
	CHECK_INT(verify_user("alice", "n3w pass"), PASSWORD_MATCH);
	CHECK_INT(verify_user("alice", "s3cret"), PASSWORD_MISMATCH);

	char *list[] = { "list" };
	o = run("", 1, list);
	CHECK_INT(o.code, 0);
	CHECK_STR(o.out, "alice\nbob\n");
	outcome_free(&o);

	char *del_bob[] = { "del", "bob" };
	o = run("", 2, del_bob);
	CHECK_INT(o.code, 0);
	outcome_free(&o);
	o = run("", 2, del_bob);
	CHECK_INT(o.code, 1);
	CHECK(strstr(o.err, "no such user bob") != NULL);
	outcome_free(&o);

	char *passwd_bob[] = { "passwd", "bob" };
	o = run("x\n", 2, passwd_bob);
	CHECK_INT(o.code, 1);
	CHECK(strstr(o.err, "no such user bob") != NULL);
	outcome_free(&o);

	o = run("", 1, list);
	CHECK_STR(o.out, "alice\n");
	outcome_free(&o);
}

static void test_bad_input(void)
{
	char *add_carol[] = { "add", "carol" };
	struct outcome o = run("\n", 2, add_carol);
	CHECK_INT(o.code, 1);
	CHECK(strstr(o.err, "empty password") != NULL);
	outcome_free(&o);

	char *long_pw = xmalloc(2000);
	memset(long_pw, 'x', 1999);
	long_pw[1999] = '\0';
	o = run(long_pw, 2, add_carol);
	CHECK_INT(o.code, 1);
	CHECK(strstr(o.err, "password too long") != NULL);
	outcome_free(&o);
	free(long_pw);
	CHECK_INT(verify_user("carol", "x"), PASSWORD_ERROR);	/* not added */

	char *bad_name[] = { "add", "../etc" };
	o = run("pw\n", 2, bad_name);
	CHECK_INT(o.code, 1);
	CHECK(strstr(o.err, "invalid user name '../etc'") != NULL);
	outcome_free(&o);
	char *ctl_name[] = { "del", "a\x1b[2Jb" };
	o = run("", 2, ctl_name);
	CHECK_INT(o.code, 1);
	CHECK(strstr(o.err, "'a?[2Jb'") != NULL);
	outcome_free(&o);
}

static void test_usage(void)
{
	char *none[] = { NULL };
	char *add_only[] = { "add" };
	char *too_many[] = { "add", "a", "pw" };
	char *list_extra[] = { "list", "x" };
	char *unknown[] = { "frob", "a" };
	struct { int argc; char **argv; } cases[] = {
		{ 0, none }, { 1, add_only }, { 3, too_many }, { 2, list_extra }, { 2, unknown },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct outcome o = run("", cases[i].argc, cases[i].argv);
		CHECK_INT(o.code, 2);
		CHECK(strstr(o.err, "usage: postern user") != NULL);
		outcome_free(&o);
	}
}

static void test_list_broken_file(void)
{
	char *saved = passwd_path;
	passwd_path = xasprintf("%s/missing", tmpdir);
	char *list[] = { "list" };
	struct outcome o = run("", 1, list);
	CHECK_INT(o.code, 1);
	CHECK(strstr(o.err, "No such file or directory") != NULL);
	outcome_free(&o);
	free(passwd_path);
	passwd_path = saved;
}

int main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	passwd_path = xasprintf("%s/passwd", tmpdir);
	RUN(test_add_passwd_del_list);
	RUN(test_bad_input);
	RUN(test_usage);
	RUN(test_list_broken_file);
	free(passwd_path);
	char *cmd = xasprintf("rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	free(cmd);
	return harness_finish();
}
