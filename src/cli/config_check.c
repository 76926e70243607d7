/* `postern config check`: the configuration and everything it points to
 * (see config_check.h). Like `nginx -t`, but it also tries the listening
 * addresses, and it keeps going after a problem so one run shows them all. */
#include "cli/config_check.h"
#include "auth/passwd_file.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/xalloc.h"
#include "net/listener.h"
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_VALID 0
#define EXIT_INVALID 1
#define EXIT_USAGE 2

struct checker {
	const struct config *cfg;
	const char *path;		/* the configuration file, for FILE:LINE */
	const struct passwd *run_as;	/* the account the server drops to; NULL when it does not drop */
	int problems;
};

static void report(struct checker *c, bool is_problem, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* "FILE:LINE: message" (or "FILE: message" for a key left at its
 * default); a problem is counted, a note is not. */
static void report(struct checker *c, bool is_problem, int line, const char *fmt, ...)
{
	va_list ap;

	if (line > 0)
		fprintf(stderr, "%s:%d: %s", c->path, line, is_problem ? "" : "note: ");
	else
		fprintf(stderr, "%s: %s", c->path, is_problem ? "" : "note: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (is_problem)
		c->problems++;
}

/* Calls each(line) for every line of text. */
static void for_each_line(struct checker *c, const char *text,
			  void (*each)(struct checker *, const char *, size_t, const void *), const void *arg)
{
	while (text != NULL && *text != '\0') {
		size_t len = strcspn(text, "\n");
		if (len > 0)
			each(c, text, len, arg);
		text += len;
		if (*text == '\n')
			text++;
	}
}

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && memcmp(s, prefix, n) == 0;
}

/* tls_server_new names the key in front of each message ("tls_key FILE:
 * ...", "[certificate NAME] cert FILE: ..."): that gives the line. */
static int tls_message_line(const struct config *cfg, const char *msg, size_t len)
{
	if (has_prefix(msg, len, "tls_cert "))
		return config_key_line(cfg, "tls_cert");
	if (has_prefix(msg, len, "tls_key "))
		return config_key_line(cfg, "tls_key");
	if (has_prefix(msg, len, "TLS"))
		return config_key_line(cfg, "tls_ciphers");
	for (size_t i = 0; i < cfg->certificate_count; i++) {
		const struct config_certificate *cert = &cfg->certificates[i];
		char prefix[300];
		snprintf(prefix, sizeof(prefix), "[certificate %s] cert ", cert->name);
		if (has_prefix(msg, len, prefix))
			return cert->cert_line > 0 ? cert->cert_line : cert->line;
		snprintf(prefix, sizeof(prefix), "[certificate %s] key ", cert->name);
		if (has_prefix(msg, len, prefix))
			return cert->key_line > 0 ? cert->key_line : cert->line;
	}
	return 0;
}

static void tls_problem(struct checker *c, const char *msg, size_t len, const void *arg)
{
	(void)arg;
	report(c, true, tls_message_line(c->cfg, msg, len), "%.*s", (int)len, msg);
}

static void passwd_problem(struct checker *c, const char *msg, size_t len, const void *arg)
{
	(void)arg;
	report(c, true, config_key_line(c->cfg, "passwd_file"), "passwd_file: %.*s", (int)len, msg);
}

static void listener_problem(struct checker *c, const char *msg, size_t len, const void *arg)
{
	report(c, true, *(const int *)arg, "%.*s", (int)len, msg);
}

/* access(path, mode) as the account pw, in a child that switches to it.
 * Returns 0, the errno of the failed access, or -1 when the child could
 * not become that account. */
static int access_as(const struct passwd *pw, const char *path, int mode)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return errno;
	if (pid == 0) {
		if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
		    setuid(pw->pw_uid) < 0)
			_exit(255);
		_exit(access(path, mode) == 0 ? 0 : (errno > 0 && errno < 255 ? errno : EACCES));
	}
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return errno;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) == 255)
		return -1;
	return WEXITSTATUS(status);
}

/* A file the server rereads after dropping privileges. */
static void check_readable_as_user(struct checker *c, int line, const char *label, const char *path,
				   const char *why)
{
	if (c->run_as == NULL || access(path, R_OK) != 0)
		return;		/* not dropping, or already reported as unreadable */
	int err = access_as(c->run_as, path, R_OK);
	if (err == -1)
		report(c, true, line, "%s %s: cannot check it as user %s", label, path, c->run_as->pw_name);
	else if (err != 0)
		report(c, true, line, "%s %s: not readable by user %s (%s): %s", label, path,
		       c->run_as->pw_name, strerror(err), why);
}

static void check_tls(struct checker *c)
{
	const struct config *cfg = c->cfg;
	struct buf errors = BUF_INIT;
	struct tls_server *server = tls_server_new(cfg, &errors);

	if (server == NULL)
		for_each_line(c, errors.data, tls_problem, NULL);
	tls_server_unref(&server);
	buf_free(&errors);

	static const char reload[] = "a reload (SIGHUP or a renewed certificate) runs as that user";
	check_readable_as_user(c, config_key_line(cfg, "tls_cert"), "tls_cert", cfg->tls_cert, reload);
	check_readable_as_user(c, config_key_line(cfg, "tls_key"), "tls_key", cfg->tls_key, reload);
	for (size_t i = 0; i < cfg->certificate_count; i++) {
		const struct config_certificate *cert = &cfg->certificates[i];
		char label[300];
		snprintf(label, sizeof(label), "[certificate %s] cert", cert->name);
		check_readable_as_user(c, cert->cert_line, label, cert->cert_file, reload);
		snprintf(label, sizeof(label), "[certificate %s] key", cert->name);
		check_readable_as_user(c, cert->key_line, label, cert->key_file, reload);
	}
}

static char *parent_dir(const char *path)
{
	char *copy = xstrdup(path);
	size_t len = strlen(copy);

	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	char *slash = strrchr(copy, '/');
	if (slash == NULL) {
		free(copy);
		return xstrdup(".");
	}
	if (slash == copy)
		slash[1] = '\0';
	else
		*slash = '\0';
	return copy;
}

static void check_data_dir(struct checker *c)
{
	const char *dir = c->cfg->data_dir;
	int line = config_key_line(c->cfg, "data_dir");
	struct stat st;

	if (stat(dir, &st) < 0) {
		if (errno != ENOENT) {
			report(c, true, line, "data_dir %s: %s", dir, strerror(errno));
			return;
		}
		/* The server creates it at start (as root when it starts as root). */
		char *parent = parent_dir(dir);
		struct stat pst;
		if (stat(parent, &pst) < 0 || !S_ISDIR(pst.st_mode))
			report(c, true, line, "data_dir %s does not exist, nor its parent %s", dir, parent);
		else if (access(parent, W_OK | X_OK) < 0)
			report(c, true, line, "data_dir %s does not exist and cannot be created in %s: %s",
			       dir, parent, strerror(errno));
		free(parent);
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		report(c, true, line, "data_dir %s is not a directory", dir);
		return;
	}
	if (c->run_as == NULL) {
		if (access(dir, W_OK | X_OK) < 0)
			report(c, true, line, "data_dir %s: not writable: %s", dir, strerror(errno));
		return;
	}
	/* As root the server gives data_dir to `user` at start, so the owner's
	 * bits are the ones that will count, and every directory above it must
	 * let that user through. */
	if ((st.st_mode & (S_IWUSR | S_IXUSR)) != (S_IWUSR | S_IXUSR))
		report(c, true, line, "data_dir %s: mode %04o does not let its owner (user %s, once the server "
		       "starts) write to it: chmod u+rwx", dir, (unsigned)(st.st_mode & 07777), c->run_as->pw_name);
	char *parent = parent_dir(dir);
	int err = access_as(c->run_as, parent, X_OK);
	if (err == -1)
		report(c, true, line, "data_dir %s: cannot check it as user %s", dir, c->run_as->pw_name);
	else if (err != 0)
		report(c, true, line, "data_dir %s: user %s cannot reach it through %s (%s)", dir,
		       c->run_as->pw_name, parent, strerror(err));
	free(parent);
}

static void check_passwd_file(struct checker *c)
{
	struct passwd_file pf;
	struct buf errors = BUF_INIT;

	memset(&pf, 0, sizeof(pf));
	if (passwd_file_load(&pf, c->cfg->passwd_file, &errors) < 0)
		for_each_line(c, errors.data, passwd_problem, NULL);
	passwd_file_free(&pf);
	buf_free(&errors);
	check_readable_as_user(c, config_key_line(c->cfg, "passwd_file"), "passwd_file", c->cfg->passwd_file,
			       "the server rereads it as that user when it changes");
}

/* Only root drops privileges, so only then must `user` exist. */
static void check_user(struct checker *c, struct passwd *pw_r, char **strings_r)
{
	int line = config_key_line(c->cfg, "user");

	c->run_as = NULL;
	if (geteuid() != 0)
		return;
	long size = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t len = size > 0 ? (size_t)size : 16384;
	struct passwd *found = NULL;
	*strings_r = xmalloc(len);
	int err = getpwnam_r(c->cfg->user, pw_r, *strings_r, len, &found);
	if (found == NULL) {
		if (err != 0)
			report(c, true, line, "user '%s': cannot look it up: %s", c->cfg->user, strerror(err));
		else
			report(c, true, line, "user '%s' does not exist: create it (adduser --system --group %s) "
			       "or set `user`", c->cfg->user, c->cfg->user);
		return;
	}
	if (found->pw_uid == 0)
		report(c, false, line, "the server will run as root: set `user` to an unprivileged account");
	else
		c->run_as = found;
}

static int address_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return 0;
}

static void check_listeners(struct checker *c)
{
	const struct config *cfg = c->cfg;

	for (size_t i = 0; i < cfg->listener_count; i++) {
		const struct config_listener *l = &cfg->listeners[i];
		int line = l->address_line > 0 ? l->address_line : l->line;
		if (l->addr.ss_family == AF_UNIX) {
			/* Binding would replace a running server's socket: only
			 * check that its directory is there. */
			char *parent = parent_dir(((const struct sockaddr_un *)&l->addr)->sun_path);
			struct stat st;
			if (stat(parent, &st) < 0 || !S_ISDIR(st.st_mode))
				report(c, true, line, "listener %s: directory %s does not exist", l->name, parent);
			free(parent);
			continue;
		}
		char holder[128];
		listener_port_holder(l->addr.ss_family, address_port(&l->addr), holder, sizeof(holder));
		static const char ours[] = "(postern)";
		size_t hlen = strlen(holder);
		if (hlen >= sizeof(ours) && strcmp(holder + hlen - (sizeof(ours) - 1), ours) == 0) {
			report(c, false, line, "listener %s: %s is in use by %s, presumably this server running: "
			       "not tried", l->name, l->address, holder);
			continue;
		}
		struct buf errors = BUF_INIT;
		int fd = listener_bind(l, &errors);
		if (fd >= 0)
			close(fd);
		else
			for_each_line(c, errors.data, listener_problem, &line);
		buf_free(&errors);
	}
}

static void usage(void)
{
	fputs("usage: postern config check [-c FILE]\n", stderr);
}

int cli_config(int argc, char **argv, const char *default_path)
{
	const char *path = default_path;

	if (argc < 2 || strcmp(argv[1], "check") != 0) {
		usage();
		return EXIT_USAGE;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else {
			usage();
			return EXIT_USAGE;
		}
	}

	struct config cfg;
	struct buf errors = BUF_INIT;
	if (config_load(&cfg, path, &errors) < 0) {
		/* Values on bad lines kept their defaults: checking the files
		 * they point to would only add noise. */
		fputs(errors.data != NULL ? errors.data : "", stderr);
		fprintf(stderr, "%s: not valid\n", path);
		buf_free(&errors);
		config_free(&cfg);
		return EXIT_INVALID;
	}
	buf_free(&errors);
	config_add_default_listeners(&cfg, config_ipv6_available());

	struct checker c = { .cfg = &cfg, .path = path };
	struct passwd pw;
	char *pw_strings = NULL;
	check_user(&c, &pw, &pw_strings);
	check_tls(&c);
	check_data_dir(&c);
	check_passwd_file(&c);
	check_listeners(&c);
	free(pw_strings);
	config_free(&cfg);

	if (c.problems > 0) {
		fprintf(stderr, "%s: %d problem%s\n", path, c.problems, c.problems == 1 ? "" : "s");
		return EXIT_INVALID;
	}
	printf("%s: ok\n", path);
	return EXIT_VALID;
}
