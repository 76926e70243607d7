#include "cli/user.h"
#include "auth/passwd_file.h"
#include "auth/password.h"
#include "core/buf.h"
#include "core/limits.h"
#include "core/xalloc.h"

#include <openssl/crypto.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

/* The signals that would leave the terminal without echo if they killed
 * us mid-prompt: they interrupt the read instead, and we restore it. */
static const int prompt_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define N_PROMPT_SIGNALS (sizeof(prompt_signals) / sizeof(prompt_signals[0]))
static volatile sig_atomic_t prompt_interrupted;

static void prompt_signal_handler(int sig)
{
	prompt_interrupted = sig;
}

static void usage(void)
{
	fputs("usage: postern user add NAME\n"
	      "       postern user passwd NAME\n"
	      "       postern user del NAME\n"
	      "       postern user list\n", stderr);
}

/* A user name fit to print: control bytes as '?'. */
static char *printable(const char *s)
{
	char *p = xstrdup(s);
	for (char *c = p; *c != '\0'; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	}
	return p;
}

enum read_status { READ_OK, READ_ERROR, READ_TOO_LONG, READ_INTERRUPTED };

/* Reads one line from fd into buf (size LIMIT_PASSWORD_LEN + 1) a byte at a
 * time, so nothing past the line is consumed and no stdio buffer keeps a
 * copy. The newline (and a CR before it) is not stored. */
static enum read_status read_line(int fd, char *buf, size_t *len_r)
{
	size_t len = 0;
	bool too_long = false;

	for (;;) {
		char c;
		ssize_t n = read(fd, &c, 1);
		if (n < 0) {
			if (errno == EINTR && !prompt_interrupted)
				continue;
			return errno == EINTR ? READ_INTERRUPTED : READ_ERROR;
		}
		if (n == 0 || c == '\n')
			break;
		if (len < LIMIT_PASSWORD_LEN)
			buf[len++] = c;
		else
			too_long = true;
	}
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	*len_r = len;
	return too_long ? READ_TOO_LONG : READ_OK;
}

/* Prompts on the terminal with echo off. */
static enum read_status prompt_tty(int tty, const char *prompt, char *buf, size_t *len_r)
{
	struct termios old, quiet;
	struct sigaction sa, saved[N_PROMPT_SIGNALS];

	if (tcgetattr(tty, &old) < 0)
		return READ_ERROR;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = prompt_signal_handler;
	sigemptyset(&sa.sa_mask);
	prompt_interrupted = 0;
	for (size_t i = 0; i < N_PROMPT_SIGNALS; i++) {
		if (sigaction(prompt_signals[i], &sa, &saved[i]) < 0) {
			while (i-- > 0)
				(void)sigaction(prompt_signals[i], &saved[i], NULL);
			return READ_ERROR;
		}
	}

	enum read_status status = READ_ERROR;
	size_t plen = strlen(prompt);
	if (write(tty, prompt, plen) == (ssize_t)plen && tcsetattr(tty, TCSAFLUSH, &quiet) == 0) {
		status = read_line(tty, buf, len_r);
		if (tcsetattr(tty, TCSAFLUSH, &old) < 0)
			status = READ_ERROR;
		if (status == READ_INTERRUPTED) {
			/* Cosmetic, the cursor to a fresh line: a failure
			 * changes nothing. */
			ssize_t n = write(tty, "\n", 1);
			(void)n;
		}
	}
	for (size_t i = 0; i < N_PROMPT_SIGNALS; i++)
		(void)sigaction(prompt_signals[i], &saved[i], NULL);
	return status;
}

static const char *read_status_text(enum read_status status)
{
	switch (status) {
	case READ_OK:
		return "ok";
	case READ_ERROR:
		return strerror(errno);
	case READ_TOO_LONG:
		return "password too long";
	case READ_INTERRUPTED:
		return "interrupted";
	}
	return "error";
}

/* Reads the new password into a malloc'd buffer of LIMIT_PASSWORD_LEN + 1
 * bytes, which the caller wipes and frees. Returns NULL after printing why. */
static char *read_new_password(size_t *len_r)
{
	char *pw = xmalloc(LIMIT_PASSWORD_LEN + 1);
	enum read_status status;
	const char *error = NULL;

	if (isatty(STDIN_FILENO)) {
		char *again = xmalloc(LIMIT_PASSWORD_LEN + 1);
		size_t again_len = 0;
		int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (tty < 0) {
			error = strerror(errno);
		} else {
			status = prompt_tty(tty, "New password: ", pw, len_r);
			if (status == READ_OK)
				status = prompt_tty(tty, "Retype new password: ", again, &again_len);
			if (status != READ_OK)
				error = read_status_text(status);
			else if (*len_r != again_len || CRYPTO_memcmp(pw, again, again_len) != 0)
				error = "passwords do not match";
			close(tty);
		}
		OPENSSL_cleanse(again, LIMIT_PASSWORD_LEN + 1);
		free(again);
	} else {
		status = read_line(STDIN_FILENO, pw, len_r);
		if (status != READ_OK)
			error = read_status_text(status);
	}
	if (error == NULL && *len_r == 0)
		error = "empty password";
	if (error == NULL && memchr(pw, '\0', *len_r) != NULL)
		error = "password contains a NUL byte";
	if (error != NULL) {
		fprintf(stderr, "postern: cannot read the password: %s\n", error);
		OPENSSL_cleanse(pw, LIMIT_PASSWORD_LEN + 1);
		free(pw);
		return NULL;
	}
	return pw;
}

/* 1 when user is in the file, 0 when not, -1 when the file cannot tell
 * (missing or broken): then the edit itself decides. Only for failing
 * before the password prompt rather than after it. */
static int user_exists(const char *path, const char *user)
{
	struct passwd_file pf;
	struct buf errors = BUF_INIT;
	int ret = -1;

	if (passwd_file_load(&pf, path, &errors) == 0)
		ret = passwd_file_find(&pf, user) != NULL ? 1 : 0;
	passwd_file_free(&pf);
	buf_free(&errors);
	return ret;
}

static int cmd_list(const char *path)
{
	struct passwd_file pf;
	struct buf errors = BUF_INIT;
	int ret = EXIT_OK;

	if (passwd_file_load(&pf, path, &errors) < 0) {
		fputs(errors.data, stderr);
		ret = EXIT_FAIL;
	} else {
		for (size_t i = 0; i < pf.count; i++)
			printf("%s\n", pf.entries[i].user);
		if (fflush(stdout) != 0) {
			perror("postern: stdout");
			ret = EXIT_FAIL;
		}
	}
	passwd_file_free(&pf);
	buf_free(&errors);
	return ret;
}

static int cmd_set(const char *path, const char *user, bool adding)
{
	int exists = user_exists(path, user);
	if (adding && exists == 1) {
		fprintf(stderr, "postern: user %s already exists\n", user);
		return EXIT_FAIL;
	}
	if (!adding && exists == 0) {
		fprintf(stderr, "postern: no such user %s\n", user);
		return EXIT_FAIL;
	}

	size_t len;
	char *pw = read_new_password(&len);
	if (pw == NULL)
		return EXIT_FAIL;
	const char *error;
	char *hash = password_hash(pw, len, &error);
	OPENSSL_cleanse(pw, LIMIT_PASSWORD_LEN + 1);
	free(pw);
	if (hash == NULL) {
		fprintf(stderr, "postern: cannot hash the password: %s\n", error);
		return EXIT_FAIL;
	}

	char *edit_error = NULL;
	int ret = passwd_file_set(path, user, hash, !adding, adding, &edit_error);
	free(hash);
	if (ret < 0) {
		fprintf(stderr, "postern: %s\n", edit_error);
		free(edit_error);
		return EXIT_FAIL;
	}
	fprintf(stderr, "postern: %s %s\n", adding ? "added user" : "changed the password of", user);
	return EXIT_OK;
}

static int cmd_del(const char *path, const char *user)
{
	char *error = NULL;
	if (passwd_file_delete(path, user, &error) < 0) {
		fprintf(stderr, "postern: %s\n", error);
		free(error);
		return EXIT_FAIL;
	}
	fprintf(stderr, "postern: deleted user %s\n", user);
	return EXIT_OK;
}

int cli_user(int argc, char **argv, const char *passwd_path)
{
	if (argc < 1) {
		usage();
		return EXIT_USAGE;
	}
	const char *cmd = argv[0];
	if (strcmp(cmd, "list") == 0) {
		if (argc != 1) {
			usage();
			return EXIT_USAGE;
		}
		return cmd_list(passwd_path);
	}
	bool add = strcmp(cmd, "add") == 0, passwd = strcmp(cmd, "passwd") == 0;
	bool del = strcmp(cmd, "del") == 0;
	if (!add && !passwd && !del) {
		char *shown = printable(cmd);
		fprintf(stderr, "postern: unknown command 'user %s'\n", shown);
		free(shown);
		usage();
		return EXIT_USAGE;
	}
	if (argc != 2) {
		usage();
		return EXIT_USAGE;
	}
	const char *user = argv[1];
	if (!passwd_user_name_valid(user)) {
		char *shown = printable(user);
		fprintf(stderr, "postern: invalid user name '%s': use 1 to %d bytes without "
			"spaces, control characters, ':' or '/', not starting with '#', "
			"and not '.' or '..'\n", shown, LIMIT_USER_LEN);
		free(shown);
		return EXIT_FAIL;
	}
	if (del)
		return cmd_del(passwd_path, user);
	return cmd_set(passwd_path, user, add);
}
