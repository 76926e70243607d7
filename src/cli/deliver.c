#include "cli/deliver.h"
#include "cli/account.h"
#include "auth/passwd_file.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/xalloc.h"
#include "lmtp/deliver.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

static void usage(void)
{
	fputs("usage: postern deliver [-c FILE] [-m MAILBOX] USER < message\n", stderr);
}

/* The user's directory, or the nearest existing parent that would hold it,
 * must be writable by us: say so plainly instead of a SQLite error. */
static int check_writable(const char *data_dir, const char *user)
{
	char *paths[3] = {
		xasprintf("%s/users/%s", data_dir, user),
		xasprintf("%s/users", data_dir),
		xstrdup(data_dir),
	};
	int ret = 0;
	for (size_t i = 0; i < 3; i++) {
		struct stat st;
		if (stat(paths[i], &st) < 0)
			continue;
		/* Not a directory: the store's own error says what is wrong. */
		if (S_ISDIR(st.st_mode) && access(paths[i], W_OK | X_OK) < 0) {
			struct passwd *pw = getpwuid(geteuid());
			fprintf(stderr, "postern deliver: cannot write %s as user %s (uid %d): %s; run it as "
				"the account the server runs as (`user` in the configuration) or as root\n",
				paths[i], pw != NULL ? pw->pw_name : "?", (int)geteuid(), strerror(errno));
			ret = -1;
		}
		break;
	}
	for (size_t i = 0; i < 3; i++)
		free(paths[i]);
	return ret;
}

/* Reads all of fd into out, refusing more than limit bytes. 0, -1 on a read
 * error, 1 when over the limit. */
static int read_all(int fd, struct buf *out, uint64_t limit)
{
	for (;;) {
		buf_reserve(out, 65536);
		ssize_t n = read(fd, out->data + out->len, 65536);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return 0;
		out->len += (size_t)n;
		out->data[out->len] = '\0';
		if (out->len > limit)
			return 1;
	}
}

/* Drops an mbox "From " separator line (Exim's pipe transport writes one
 * unless message_prefix is empty; it is never a header), and writes every
 * bare LF as CRLF (RFC 5322 2.1). */
static void normalise(const struct buf *in, struct buf *out)
{
	const char *p = in->data, *end = in->data + in->len;
	if (in->len >= 5 && memcmp(p, "From ", 5) == 0) {
		const char *lf = memchr(p, '\n', in->len);
		p = lf != NULL ? lf + 1 : end;
	}
	buf_reserve(out, (size_t)(end - p) + (size_t)(end - p) / 32 + 16);
	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		if (lf == NULL) {
			buf_append(out, p, (size_t)(end - p));
			break;
		}
		if (lf > p && lf[-1] == '\r') {
			buf_append(out, p, (size_t)(lf - p) + 1);
		} else {
			buf_append(out, p, (size_t)(lf - p));
			buf_append(out, "\r\n", 2);
		}
		p = lf + 1;
	}
}

static bool only_whitespace(const struct buf *b)
{
	for (size_t i = 0; i < b->len; i++) {
		if (!isspace((unsigned char)b->data[i]))
			return false;
	}
	return true;
}

static const struct passwd_entry *find_user(const struct passwd_file *pf, const char *user)
{
	const struct passwd_entry *e = passwd_file_find(pf, user);
	if (e == NULL) {
		char *lower = xstrdup(user);
		for (char *p = lower; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		e = passwd_file_find(pf, lower);
		free(lower);
	}
	return e;
}

static int deliver(const struct config *cfg, const char *user, const char *mailbox)
{
	struct passwd_file pf = { 0 };
	struct buf errors = BUF_INIT, raw = BUF_INIT, message = BUF_INIT;
	int status = EX_TEMPFAIL;
	if (passwd_file_load(&pf, cfg->passwd_file, &errors) < 0) {
		fprintf(stderr, "%s", errors.data ? errors.data : "");
		fprintf(stderr, "postern deliver: the password file %s is not usable\n", cfg->passwd_file);
		status = EX_CONFIG;
		goto out;
	}
	const struct passwd_entry *entry = find_user(&pf, user);
	if (entry == NULL) {
		fprintf(stderr, "postern deliver: no such user: %s\n", user);
		status = EX_NOUSER;
		goto out;
	}
	int r = read_all(STDIN_FILENO, &raw, cfg->max_literal_size);
	if (r < 0) {
		fprintf(stderr, "postern deliver: reading the message: %s\n", strerror(errno));
		goto out;
	}
	if (r > 0) {
		fprintf(stderr, "postern deliver: the message is larger than max_literal_size (%llu bytes)\n",
			(unsigned long long)cfg->max_literal_size);
		status = EX_DATAERR;
		goto out;
	}
	normalise(&raw, &message);
	if (message.len == 0 || only_whitespace(&message)) {
		fprintf(stderr, "postern deliver: the message is empty\n");
		status = EX_DATAERR;
		goto out;
	}
	if (check_writable(cfg->data_dir, entry->user) < 0)
		goto out;
	struct lmtp_deliver_result res;
	if (lmtp_deliver(cfg->data_dir, entry->user, mailbox, message.data, message.len, &res) == 0) {
		if (res.fell_back)
			fprintf(stderr, "postern deliver: mailbox %s does not exist for %s; delivered to INBOX\n",
				mailbox, entry->user);
		status = EX_OK;
	} else {
		fprintf(stderr, "postern deliver: delivery to %s failed: %s\n", entry->user,
			res.error ? res.error : "unknown error");
		status = res.status == LMTP_DELIVER_REFUSED ? EX_DATAERR
		       : res.status == LMTP_DELIVER_QUOTA   ? EX_CANTCREAT
							    : EX_TEMPFAIL;
	}
	lmtp_deliver_result_free(&res);
out:
	buf_free(&raw);
	buf_free(&message);
	buf_free(&errors);
	passwd_file_free(&pf);
	return status;
}

int cli_deliver(int argc, char **argv, const char *default_config)
{
	const char *config_path = NULL, *mailbox = NULL;
	int opt;
	optind = 1;
	while ((opt = getopt(argc, argv, "c:m:")) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'm':
			mailbox = optarg;
			break;
		default:
			usage();
			return EX_USAGE;
		}
	}
	if (optind + 1 != argc || argv[optind][0] == '\0') {
		usage();
		return EX_USAGE;
	}
	const char *user = argv[optind];
	/* `-m ${extension}` from a pipe transport expands to "" when the
	 * address had none: that means INBOX, without a complaint. */
	if (mailbox != NULL && mailbox[0] == '\0')
		mailbox = NULL;
	struct config cfg;
	if (cli_config_as_server(config_path, default_config, "deliver", &cfg) < 0)
		return EX_CONFIG;
	int status = deliver(&cfg, user, mailbox);
	config_free(&cfg);
	return status;
}
