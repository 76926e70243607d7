/* `postern doctor`: an outside view of an IMAP server (see doctor.h).
 *
 * Every connection is a non-blocking socket driven with poll() against a
 * deadline, OpenSSL included, so each step (connect, handshake, one
 * command) gives up after the timeout. Only what RFC 3501 guarantees is
 * parsed: the greeting (7.1), untagged CAPABILITY (7.2.1) and the tagged
 * OK/NO/BAD (7.1), which keeps it honest against Dovecot and others. */
#include "cli/doctor.h"
#include "core/base64.h"
#include "core/buf.h"
#include "core/limits.h"
#include "core/xalloc.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define EXIT_OK 0
#define EXIT_PROBLEMS 1
#define EXIT_USAGE 2

#define DEFAULT_TIMEOUT_MS 10000
/* Longest response line we keep reading; a CAPABILITY line is far shorter. */
#define MAX_RESPONSE_LINE (64 * 1024)
/* Largest literal skipped inside a response before we give up. */
#define MAX_RESPONSE_LITERAL (1024 * 1024)
#define MAX_PORTS 16
#define MAX_VERIFY_ERRORS 8
/* Days to expiry under which the certificate check warns. */
#define EXPIRY_WARN_DAYS 14

enum verdict { V_OK, V_INFO, V_WARN, V_FAIL };
static const char *const verdict_names[] = { "OK", "INFO", "WARN", "FAIL" };

enum port_mode {
	MODE_AUTO,	/* implicit TLS on 993 or when a handshake works, else STARTTLS */
	MODE_TLS,	/* implicit TLS (RFC 8314) */
	MODE_STARTTLS,	/* plaintext, upgraded with STARTTLS (RFC 3501 6.2.1) */
};

struct port_spec {
	int port;
	enum port_mode mode;
};

struct check {
	int port;		/* 0: not tied to a port */
	char *name;		/* stable identifier for scripts: "connect", "tls-1.0"... */
	enum verdict status;
	char *detail;
	char *hint;		/* what to do about it, or NULL */
};

/* The TLS versions probed one by one, oldest first. */
static const struct {
	int version;
	const char *label;	/* in check names: "tls-1.0" */
	const char *text;	/* in details: "TLS 1.0" */
} tls_versions[] = {
	{ TLS1_VERSION, "1.0", "TLS 1.0" },
	{ TLS1_1_VERSION, "1.1", "TLS 1.1" },
	{ TLS1_2_VERSION, "1.2", "TLS 1.2" },
	{ TLS1_3_VERSION, "1.3", "TLS 1.3" },
};
#define N_TLS_VERSIONS (sizeof(tls_versions) / sizeof(tls_versions[0]))

struct doctor {
	const char *host;
	bool host_is_ip;	/* no SNI, and the name check is X509_check_ip_asc */
	const char *cafile;	/* NULL: the system store */
	const char *user;	/* --user, or NULL */
	char *password;		/* read from stdin when user is set */
	bool json;
	int timeout_ms;
	struct addrinfo *addrs;

	SSL_CTX *main_ctx;	/* a default client, verifying the chain */
	SSL_CTX *version_ctx[N_TLS_VERSIONS];	/* one version each, everything allowed; NULL if unsupported */
	char version_ctx_error[N_TLS_VERSIONS][128];

	struct check *checks;
	size_t check_count;
	int tag_counter;
};

/* Certificate verification problems seen by verify_cb, first one first. */
struct verify_log {
	int count;
	int codes[MAX_VERIFY_ERRORS];
	int depths[MAX_VERIFY_ERRORS];
	char subjects[MAX_VERIFY_ERRORS][160];
};

/* One connection to the server. */
struct probe {
	struct doctor *d;
	int fd;
	SSL *ssl;
	struct buf in;			/* received and not yet consumed */
	struct verify_log vlog;
	unsigned long ssl_reason;	/* ERR_GET_REASON of the last OpenSSL failure */
	char error[256];		/* why the last step failed */
};

/* ---- Checks and output ---- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Text from the server, made safe to print and to put in JSON. */
static char *printable(const char *s, size_t len)
{
	char *p = xmalloc(len + 1);

	for (size_t i = 0; i < len; i++)
		p[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	p[len] = '\0';
	return p;
}

static void print_check(const struct check *c)
{
	char port[16] = "";

	if (c->port != 0)
		snprintf(port, sizeof(port), "%d", c->port);
	printf("%-4s  %-5s  %-18s  %s\n", verdict_names[c->status], port, c->name, c->detail);
	if (c->hint != NULL)
		printf("%-4s  %-5s  %-18s  -> %s\n", "", "", "", c->hint);
	fflush(stdout);
}

static struct check *add_check(struct doctor *d, int port, const char *name, enum verdict status,
			       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Records a check; in text mode it is printed at once, so a step that
 * waits for its timeout shows where it waits. A hint is added with
 * set_hint() before the next check (it is printed then). */
static struct check *add_check(struct doctor *d, int port, const char *name, enum verdict status,
			       const char *fmt, ...)
{
	struct buf detail = BUF_INIT;
	va_list ap;

	if (!d->json && d->check_count > 0)
		print_check(&d->checks[d->check_count - 1]);
	va_start(ap, fmt);
	buf_vprintf(&detail, fmt, ap);
	va_end(ap);
	d->checks = xrealloc(d->checks, (d->check_count + 1) * sizeof(*d->checks));
	struct check *c = &d->checks[d->check_count++];
	c->port = port;
	c->name = xstrdup(name);
	c->status = status;
	c->detail = detail.data != NULL ? buf_steal(&detail) : xstrdup("");
	c->hint = NULL;
	return c;
}

static void set_hint(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_hint(struct check *c, const char *fmt, ...)
{
	struct buf hint = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&hint, fmt, ap);
	va_end(ap);
	free(c->hint);
	c->hint = buf_steal(&hint);
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static int finish_report(struct doctor *d)
{
	int counts[4] = { 0, 0, 0, 0 };

	for (size_t i = 0; i < d->check_count; i++)
		counts[d->checks[i].status]++;
	bool problems = counts[V_WARN] + counts[V_FAIL] > 0;
	if (d->json) {
		printf("{\"host\":");
		json_string(d->host);
		printf(",\"status\":\"%s\",\"counts\":{\"ok\":%d,\"info\":%d,\"warn\":%d,\"fail\":%d},\"checks\":[",
		       problems ? "problems" : "ok", counts[V_OK], counts[V_INFO], counts[V_WARN], counts[V_FAIL]);
		for (size_t i = 0; i < d->check_count; i++) {
			const struct check *c = &d->checks[i];
			printf("%s{\"port\":", i > 0 ? "," : "");
			if (c->port != 0)
				printf("%d", c->port);
			else
				printf("null");
			printf(",\"name\":");
			json_string(c->name);
			printf(",\"status\":\"%s\",\"detail\":", verdict_names[c->status]);
			json_string(c->detail);
			printf(",\"hint\":");
			if (c->hint != NULL)
				json_string(c->hint);
			else
				printf("null");
			putchar('}');
		}
		printf("]}\n");
	} else {
		if (d->check_count > 0)
			print_check(&d->checks[d->check_count - 1]);
		if (problems)
			printf("%s: problems found: %d FAIL, %d WARN\n", d->host, counts[V_FAIL], counts[V_WARN]);
		else
			printf("%s: no problems found\n", d->host);
	}
	fflush(stdout);
	return problems ? EXIT_PROBLEMS : EXIT_OK;
}

/* ---- Connections with deadlines ---- */

/* The reason of the oldest queued OpenSSL error, or fallback; clears the queue. */
static const char *openssl_reason(const char *fallback)
{
	const char *reason = ERR_reason_error_string(ERR_get_error());
	ERR_clear_error();
	return reason != NULL ? reason : fallback;
}

static void probe_init(struct probe *p, struct doctor *d)
{
	memset(p, 0, sizeof(*p));
	p->d = d;
	p->fd = -1;
}

static void probe_close(struct probe *p)
{
	if (p->ssl != NULL) {
		if (SSL_is_init_finished(p->ssl))
			(void)SSL_shutdown(p->ssl);	/* best effort: we are leaving anyway */
		SSL_free(p->ssl);
		p->ssl = NULL;
	}
	if (p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
	}
	buf_free(&p->in);
	ERR_clear_error();
}

static void timeout_error(struct probe *p)
{
	snprintf(p->error, sizeof(p->error), "no answer within %g s", p->d->timeout_ms / 1000.0);
}

/* Waits until fd is ready for events or the deadline passes. 0 or -1. */
static int probe_wait(struct probe *p, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0) {
			timeout_error(p);
			return -1;
		}
		struct pollfd pfd = { .fd = p->fd, .events = events };
		int n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(p->error, sizeof(p->error), "poll: %s", strerror(errno));
			return -1;
		}
		if (n > 0)
			return 0;
	}
}

/* After an SSL call returned ret: waits for what OpenSSL needs and
 * returns 0 to retry, or -1 with the reason in p->error. */
static int ssl_wait(struct probe *p, int ret, long long deadline)
{
	int saved_errno = errno;
	int err = SSL_get_error(p->ssl, ret);

	switch (err) {
	case SSL_ERROR_WANT_READ:
		return probe_wait(p, POLLIN, deadline);
	case SSL_ERROR_WANT_WRITE:
		return probe_wait(p, POLLOUT, deadline);
	case SSL_ERROR_ZERO_RETURN:
		snprintf(p->error, sizeof(p->error), "connection closed by the server");
		return -1;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0) {
			snprintf(p->error, sizeof(p->error), "%s",
				 saved_errno != 0 ? strerror(saved_errno) : "connection closed by the server");
			return -1;
		}
		break;
	default:
		break;
	}
	unsigned long e = ERR_get_error();
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
	p->ssl_reason = e != 0 ? (unsigned long)ERR_GET_REASON(e) : 0;
	snprintf(p->error, sizeof(p->error), "%s", reason != NULL ? reason : "TLS error");
	ERR_clear_error();
	return -1;
}

/* Connects to the first address that answers. Returns 0, or -1 with the
 * reason in p->error and *refused_r set when the port was closed. */
static int probe_connect(struct probe *p, int port, long long *elapsed_r, bool *refused_r)
{
	struct doctor *d = p->d;
	long long start = now_ms(), deadline = start + d->timeout_ms;
	int first_errno = 0;

	*refused_r = false;
	for (const struct addrinfo *ai = d->addrs; ai != NULL; ai = ai->ai_next) {
		struct sockaddr_storage ss;
		if (ai->ai_addrlen > sizeof(ss))
			continue;
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		else if (ss.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		else
			continue;
		int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			if (first_errno == 0)
				first_errno = errno;
			continue;
		}
		p->fd = fd;
		int err = 0;
		if (connect(fd, (struct sockaddr *)&ss, ai->ai_addrlen) < 0) {
			if (errno != EINPROGRESS) {
				err = errno;
			} else if (probe_wait(p, POLLOUT, deadline) < 0) {
				err = ETIMEDOUT;
			} else {
				socklen_t len = sizeof(err);
				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
					err = errno;
			}
		}
		if (err == 0) {
			*elapsed_r = now_ms() - start;
			return 0;
		}
		close(fd);
		p->fd = -1;
		if (first_errno == 0 || first_errno == ETIMEDOUT)
			first_errno = err;
		if (err == ETIMEDOUT)
			break;	/* the deadline is shared by every address */
	}
	*refused_r = first_errno == ECONNREFUSED;
	if (first_errno == ETIMEDOUT)
		timeout_error(p);
	else
		snprintf(p->error, sizeof(p->error), "%s", strerror(first_errno != 0 ? first_errno : EHOSTUNREACH));
	return -1;
}

/* Reads what is available into p->in, waiting until the deadline. */
static int probe_read_some(struct probe *p, long long deadline)
{
	char chunk[4096];

	for (;;) {
		if (p->ssl != NULL) {
			size_t n = 0;
			ERR_clear_error();
			errno = 0;
			int r = SSL_read_ex(p->ssl, chunk, sizeof(chunk), &n);
			if (r == 1) {
				buf_append(&p->in, chunk, n);
				return 0;
			}
			if (ssl_wait(p, r, deadline) < 0)
				return -1;
			continue;
		}
		ssize_t n = recv(p->fd, chunk, sizeof(chunk), 0);
		if (n > 0) {
			buf_append(&p->in, chunk, (size_t)n);
			return 0;
		}
		if (n == 0) {
			snprintf(p->error, sizeof(p->error), "connection closed by the server");
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			snprintf(p->error, sizeof(p->error), "%s", strerror(errno));
			return -1;
		}
		if (probe_wait(p, POLLIN, deadline) < 0)
			return -1;
	}
}

static int probe_write(struct probe *p, const char *data, size_t len)
{
	long long deadline = now_ms() + p->d->timeout_ms;

	while (len > 0) {
		if (p->ssl != NULL) {
			size_t n = 0;
			ERR_clear_error();
			errno = 0;
			int r = SSL_write_ex(p->ssl, data, len, &n);
			if (r == 1) {
				data += n;
				len -= n;
			} else if (ssl_wait(p, r, deadline) < 0) {
				return -1;
			}
			continue;
		}
		ssize_t n = send(p->fd, data, len, MSG_NOSIGNAL);
		if (n >= 0) {
			data += n;
			len -= (size_t)n;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (probe_wait(p, POLLOUT, deadline) < 0)
				return -1;
		} else if (errno != EINTR) {
			snprintf(p->error, sizeof(p->error), "%s", strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* A "{N}" or "{N+}" at the end of a response line announces a literal of
 * N bytes (RFC 3501 4.3, RFC 7888). Returns N, or -1 when there is none. */
static long long literal_at_end(const char *line, size_t len)
{
	if (len < 3 || line[len - 1] != '}')
		return -1;
	size_t i = len - 1;
	if (line[i - 1] == '+')
		i--;
	size_t digits_end = i;
	while (i > 0 && isdigit((unsigned char)line[i - 1]))
		i--;
	if (i == digits_end || i == 0 || line[i - 1] != '{' || digits_end - i > 12)
		return -1;
	return strtoll(line + i, NULL, 10);
}

/* Reads one response line (CRLF removed) into a malloc'd, printable
 * *line_r. A literal inside the line is skipped and the line read on, so
 * no literal byte is ever taken for a tag. */
static int probe_read_line(struct probe *p, char **line_r)
{
	long long deadline = now_ms() + p->d->timeout_ms;
	struct buf line = BUF_INIT;

	for (;;) {
		char *nl = p->in.len > 0 ? memchr(p->in.data, '\n', p->in.len) : NULL;
		if (nl == NULL) {
			if (p->in.len + line.len > MAX_RESPONSE_LINE) {
				snprintf(p->error, sizeof(p->error), "response line longer than %d bytes",
					 MAX_RESPONSE_LINE);
				buf_free(&line);
				return -1;
			}
			if (probe_read_some(p, deadline) < 0) {
				buf_free(&line);
				return -1;
			}
			continue;
		}
		size_t n = (size_t)(nl - p->in.data);
		buf_append(&line, p->in.data, n > 0 && nl[-1] == '\r' ? n - 1 : n);
		buf_consume(&p->in, n + 1);
		long long literal = literal_at_end(line.data != NULL ? line.data : "", line.len);
		if (literal < 0)
			break;
		if (literal > MAX_RESPONSE_LITERAL) {
			snprintf(p->error, sizeof(p->error), "literal of %lld bytes in a response", literal);
			buf_free(&line);
			return -1;
		}
		while (p->in.len < (size_t)literal) {
			if (probe_read_some(p, deadline) < 0) {
				buf_free(&line);
				return -1;
			}
		}
		buf_consume(&p->in, (size_t)literal);
	}
	*line_r = printable(line.data != NULL ? line.data : "", line.len);
	buf_free(&line);
	return 0;
}

static bool starts_with_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* Reads responses up to the one tagged tag. Untagged CAPABILITY lines are
 * kept in caps_r (the words after "CAPABILITY", when caps_r is given).
 * Returns 0 with *status_r ("OK ...", "NO ...", "BAD ...", malloc'd), 1
 * on a continuation request ("+") when continuation is true, or -1. */
static int probe_response(struct probe *p, const char *tag, char **caps_r, char **status_r,
			  bool continuation)
{
	size_t tag_len = strlen(tag);

	for (;;) {
		char *line;
		if (probe_read_line(p, &line) < 0)
			return -1;
		if (strncmp(line, tag, tag_len) == 0 && line[tag_len] == ' ') {
			*status_r = xstrdup(line + tag_len + 1);
			free(line);
			return 0;
		}
		if (line[0] == '+' && continuation) {
			free(line);
			return 1;
		}
		if (caps_r != NULL && starts_with_ci(line, "* CAPABILITY ")) {
			free(*caps_r);
			*caps_r = xstrdup(line + strlen("* CAPABILITY "));
		}
		if (starts_with_ci(line, "* BYE")) {
			snprintf(p->error, sizeof(p->error), "server said: %.200s", line);
			free(line);
			return -1;
		}
		free(line);
	}
}

static void next_tag(struct probe *p, char *tag, size_t size)
{
	snprintf(tag, size, "pd%d", ++p->d->tag_counter);
}

/* Sends "TAG command" and waits for its tagged response. */
static int probe_command(struct probe *p, const char *command, char **caps_r, char **status_r)
{
	char tag[32];
	struct buf line = BUF_INIT;

	next_tag(p, tag, sizeof(tag));
	buf_printf(&line, "%s %s\r\n", tag, command);
	int r = probe_write(p, line.data, line.len);
	buf_free(&line);
	if (r < 0)
		return -1;
	return probe_response(p, tag, caps_r, status_r, false);
}

static bool status_is_ok(const char *status)
{
	return starts_with_ci(status, "OK") && (status[2] == ' ' || status[2] == '\0');
}

/* Whether the space-separated capability list holds name (any case). */
static bool has_cap(const char *caps, const char *name)
{
	size_t len = strlen(name);

	for (const char *s = caps; s != NULL && *s != '\0';) {
		while (*s == ' ')
			s++;
		size_t n = strcspn(s, " ");
		if (n == len && strncasecmp(s, name, len) == 0)
			return true;
		s += n;
	}
	return false;
}

/* The AUTH=... mechanisms in caps, space-separated, or "" (malloc'd). */
static char *auth_mechanisms(const char *caps)
{
	struct buf out = BUF_INIT;

	for (const char *s = caps; s != NULL && *s != '\0';) {
		while (*s == ' ')
			s++;
		size_t n = strcspn(s, " ");
		if (n > 5 && strncasecmp(s, "AUTH=", 5) == 0) {
			if (out.len > 0)
				buf_append_char(&out, ' ');
			buf_append(&out, s + 5, n - 5);
		}
		s += n;
	}
	return out.data != NULL ? buf_steal(&out) : xstrdup("");
}

/* ---- TLS ---- */

static int verify_cb(int ok, X509_STORE_CTX *store)
{
	if (ok)
		return 1;
	SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct verify_log *log = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
	int code = X509_STORE_CTX_get_error(store);
	if (log == NULL || log->count >= MAX_VERIFY_ERRORS)
		return 1;
	for (int i = 0; i < log->count; i++) {
		if (log->codes[i] == code)
			return 1;
	}
	int i = log->count++;
	log->codes[i] = code;
	log->depths[i] = X509_STORE_CTX_get_error_depth(store);
	X509 *cert = X509_STORE_CTX_get_current_cert(store);
	log->subjects[i][0] = '\0';
	if (cert != NULL)
		X509_NAME_oneline(X509_get_subject_name(cert), log->subjects[i], sizeof(log->subjects[i]));
	/* Carry on: doctor reports every problem, the handshake decides nothing. */
	return 1;
}

/* Runs the client handshake on p->fd. 0, or -1 with the reason. */
static int probe_handshake(struct probe *p, SSL_CTX *ctx)
{
	long long deadline = now_ms() + p->d->timeout_ms;

	p->ssl = SSL_new(ctx);
	if (p->ssl == NULL || SSL_set_fd(p->ssl, p->fd) != 1 ||
	    (!p->d->host_is_ip && SSL_set_tlsext_host_name(p->ssl, p->d->host) != 1) ||
	    SSL_set_app_data(p->ssl, &p->vlog) != 1) {
		snprintf(p->error, sizeof(p->error), "cannot set up TLS: %s", openssl_reason("out of memory"));
		return -1;
	}
	SSL_set_connect_state(p->ssl);
	for (;;) {
		ERR_clear_error();
		errno = 0;
		int r = SSL_connect(p->ssl);
		if (r == 1)
			return 0;
		if (ssl_wait(p, r, deadline) < 0)
			return -1;
	}
}

static const char *version_text(int version)
{
	for (size_t i = 0; i < N_TLS_VERSIONS; i++) {
		if (tls_versions[i].version == version)
			return tls_versions[i].text;
	}
	return "an unknown TLS version";
}

static SSL_CTX *new_client_ctx(char *error, size_t size)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		snprintf(error, size, "%s", openssl_reason("SSL_CTX_new failed"));
		return NULL;
	}
	/* A server that closes without close_notify is still worth reading. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	return ctx;
}

/* One context per version, pinned min = max, at security level 0 with
 * every cipher, so that a server accepting TLS 1.0 is detected even though
 * OpenSSL's own defaults would refuse to speak it. */
static SSL_CTX *new_version_ctx(int version, char *error, size_t size)
{
	SSL_CTX *ctx = new_client_ctx(error, size);
	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (SSL_CTX_set_min_proto_version(ctx, version) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, version) != 1 ||
	    (version < TLS1_3_VERSION && SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0") != 1)) {
		snprintf(error, size, "%s", openssl_reason("version not supported here"));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static int setup_tls(struct doctor *d)
{
	char error[128];

	d->main_ctx = new_client_ctx(error, sizeof(error));
	if (d->main_ctx == NULL) {
		fprintf(stderr, "postern doctor: TLS: %s\n", error);
		return -1;
	}
	SSL_CTX_set_verify(d->main_ctx, SSL_VERIFY_NONE, verify_cb);
	int ok = d->cafile != NULL ? SSL_CTX_load_verify_file(d->main_ctx, d->cafile)
				   : SSL_CTX_set_default_verify_paths(d->main_ctx);
	if (ok != 1) {
		const char *reason = ERR_reason_error_string(ERR_get_error());
		if (d->cafile != NULL)
			fprintf(stderr, "postern doctor: --cafile %s: %s\n", d->cafile,
				reason != NULL ? reason : "cannot be read");
		else
			fprintf(stderr, "postern doctor: cannot load the system's trusted certificates: %s\n",
				reason != NULL ? reason : "unknown error");
		ERR_clear_error();
		return -1;
	}
	for (size_t i = 0; i < N_TLS_VERSIONS; i++)
		d->version_ctx[i] = new_version_ctx(tls_versions[i].version, d->version_ctx_error[i],
						    sizeof(d->version_ctx_error[i]));
	return 0;
}

/* ---- Certificate checks ---- */

static const char *verify_phrase(int code)
{
	switch (code) {
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
		return "self-signed certificate";
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
		return "self-signed root certificate in the chain is not trusted";
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return "unknown issuer";
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return "expired";
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return "not yet valid";
	default:
		return X509_verify_cert_error_string(code);
	}
}

/* The hint for the most telling problem, in order of what to fix first. */
static void chain_hint(struct check *c, const struct verify_log *log, const struct doctor *d)
{
	static const int order[] = {
		X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
		X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
		X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
		X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
		X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE,
		X509_V_ERR_CERT_HAS_EXPIRED,
		X509_V_ERR_CERT_NOT_YET_VALID,
	};
	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		for (int i = 0; i < log->count; i++) {
			if (log->codes[i] != order[k])
				continue;
			switch (order[k]) {
			case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
				set_hint(c, "self-signed certificate: clients will refuse or warn; get one from a CA "
					 "(e.g. Let's Encrypt)%s", d->cafile == NULL ?
					 ", or check it with --cafile if your clients trust it" : "");
				return;
			case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
				set_hint(c, "the chain ends in a root not trusted here: use a public CA%s",
					 d->cafile == NULL ? ", or --cafile with your own CA" : "");
				return;
			case X509_V_ERR_CERT_HAS_EXPIRED:
				set_hint(c, "certificate expired: renew it");
				return;
			case X509_V_ERR_CERT_NOT_YET_VALID:
				set_hint(c, "certificate not yet valid: check the server's clock and the certificate dates");
				return;
			default:
				set_hint(c, "unknown issuer: serve the full chain (fullchain.pem, not cert.pem)%s",
					 d->cafile == NULL ? ", or for a private CA check with --cafile" :
					 ", or --cafile does not hold the issuing CA");
				return;
			}
		}
	}
	set_hint(c, "clients cannot verify this certificate: %s", verify_phrase(log->codes[0]));
}

/* The names a certificate is for: its DNS and IP subject alternative
 * names, or its CN when it has none. */
static char *cert_names(X509 *cert)
{
	struct buf out = BUF_INIT;
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);

	for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gen = sk_GENERAL_NAME_value(names, i);
		char text[INET6_ADDRSTRLEN] = "";
		if (gen->type == GEN_DNS) {
			const ASN1_IA5STRING *s = gen->d.dNSName;
			char *name = printable((const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
			buf_printf(&out, "%s%s", out.len > 0 ? ", " : "", name);
			free(name);
		} else if (gen->type == GEN_IPADD) {
			const ASN1_OCTET_STRING *ip = gen->d.iPAddress;
			int len = ASN1_STRING_length(ip);
			if ((len == 4 && inet_ntop(AF_INET, ASN1_STRING_get0_data(ip), text, sizeof(text)) != NULL) ||
			    (len == 16 && inet_ntop(AF_INET6, ASN1_STRING_get0_data(ip), text, sizeof(text)) != NULL))
				buf_printf(&out, "%s%s", out.len > 0 ? ", " : "", text);
		}
	}
	GENERAL_NAMES_free(names);
	if (out.len == 0) {
		char cn[256];
		if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)) > 0) {
			char *name = printable(cn, strlen(cn));
			buf_printf(&out, "%s (CN)", name);
			free(name);
		} else {
			buf_append_str(&out, "no name");
		}
	}
	return buf_steal(&out);
}

static void format_time(const ASN1_TIME *t, char *out, size_t size)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1 || strftime(out, size, "%Y-%m-%d", &tm) == 0)
		snprintf(out, size, "an unreadable date");
}

static void check_certificate(struct probe *p, int port)
{
	struct doctor *d = p->d;
	X509 *leaf = SSL_get0_peer_certificate(p->ssl);
	STACK_OF(X509) *sent = SSL_get_peer_cert_chain(p->ssl);
	int sent_count = sent != NULL ? sk_X509_num(sent) : 0;
	char subject[256] = "", issuer[256] = "";

	if (leaf == NULL) {
		add_check(d, port, "certificate-chain", V_FAIL, "the server sent no certificate");
		return;
	}
	X509_NAME_oneline(X509_get_subject_name(leaf), subject, sizeof(subject));
	X509_NAME_oneline(X509_get_issuer_name(leaf), issuer, sizeof(issuer));
	const char *store = d->cafile != NULL ? d->cafile : "the system's trusted CAs";

	/* The chain, checked against the system store or --cafile. */
	if (p->vlog.count == 0 && SSL_get_verify_result(p->ssl) == X509_V_OK) {
		add_check(d, port, "certificate-chain", V_OK, "%s issued by %s, verified against %s (%d sent)",
			  subject, issuer, store, sent_count);
	} else {
		struct buf why = BUF_INIT;
		for (int i = 0; i < p->vlog.count; i++)
			buf_printf(&why, "%s%s (depth %d: %s)", i > 0 ? "; " : "", verify_phrase(p->vlog.codes[i]),
				   p->vlog.depths[i], p->vlog.subjects[i]);
		if (p->vlog.count == 0)
			buf_printf(&why, "%s", verify_phrase((int)SSL_get_verify_result(p->ssl)));
		struct check *c = add_check(d, port, "certificate-chain", V_FAIL,
					    "not verified against %s: %s", store, why.data);
		if (p->vlog.count > 0)
			chain_hint(c, &p->vlog, d);
		buf_free(&why);
	}

	/* The names, as a client checks them (RFC 6125). */
	int match = d->host_is_ip ? X509_check_ip_asc(leaf, d->host, 0)
				  : X509_check_host(leaf, d->host, 0, 0, NULL);
	char *names = cert_names(leaf);
	if (match == 1) {
		add_check(d, port, "certificate-name", V_OK, "%s matches (%s)", d->host, names);
	} else {
		struct check *c = add_check(d, port, "certificate-name", V_FAIL,
					    "certificate is for %s, not %s", names, d->host);
		set_hint(c, "name mismatch: certificate is for %s, not %s: add %s to the certificate, "
			 "or connect with a name it holds", names, d->host, d->host);
	}
	free(names);

	/* Days to expiry. */
	int days = 0, secs = 0;
	char date[64];
	format_time(X509_get0_notAfter(leaf), date, sizeof(date));
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(leaf)) != 1) {
		add_check(d, port, "certificate-expiry", V_WARN, "cannot read the expiry date");
	} else if (days < 0 || secs < 0) {
		struct check *c = add_check(d, port, "certificate-expiry", V_FAIL,
					    "expired on %s (%d days ago)", date, -days);
		set_hint(c, "certificate expired %d days ago: renew it", -days);
	} else if (days < EXPIRY_WARN_DAYS) {
		struct check *c = add_check(d, port, "certificate-expiry", V_WARN,
					    "expires on %s, in %d days", date, days);
		set_hint(c, "certificate expires in %d days: renew it", days);
	} else {
		add_check(d, port, "certificate-expiry", V_OK, "expires on %s, in %d days", date, days);
	}
}

/* The version and cipher a default client gets: the best both speak. */
static void check_cipher(struct probe *p, int port)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(p->ssl);
	const char *name = cipher != NULL ? SSL_CIPHER_get_name(cipher) : "none";
	int version = SSL_version(p->ssl);

	if (cipher == NULL) {
		add_check(p->d, port, "cipher", V_WARN, "no cipher negotiated");
	} else if (version < TLS1_3_VERSION && !SSL_CIPHER_is_aead(cipher)) {
		struct check *c = add_check(p->d, port, "cipher", V_WARN, "%s with %s: not an AEAD cipher",
					    version_text(version), name);
		set_hint(c, "prefer AES-GCM or CHACHA20-POLY1305 ciphers");
	} else if (version < TLS1_3_VERSION && SSL_CIPHER_get_kx_nid(cipher) == NID_kx_rsa) {
		struct check *c = add_check(p->d, port, "cipher", V_WARN, "%s with %s: no forward secrecy",
					    version_text(version), name);
		set_hint(c, "prefer ECDHE ciphers");
	} else {
		add_check(p->d, port, "cipher", V_OK, "%s with %s", version_text(version), name);
	}
}

/* ---- IMAP steps ---- */

/* Reads and judges the greeting (RFC 3501 7.1). 0 when the session can go on. */
static int check_greeting(struct probe *p, int port, enum port_mode mode)
{
	char *line;

	if (probe_read_line(p, &line) < 0) {
		struct check *c = add_check(p->d, port, "greeting", V_FAIL, "no greeting: %s", p->error);
		if (mode == MODE_STARTTLS)
			set_hint(c, "the port accepts connections but does not speak IMAP in plaintext; "
				 "if it is implicit TLS, use --port %d/tls", port);
		else
			set_hint(c, "the TLS handshake worked but no IMAP greeting followed: is this an IMAP port?");
		return -1;
	}
	int ret = 0;
	if (starts_with_ci(line, "* OK")) {
		add_check(p->d, port, "greeting", V_OK, "%s", line);
	} else if (starts_with_ci(line, "* PREAUTH")) {
		struct check *c = add_check(p->d, port, "greeting", V_WARN, "%s", line);
		set_hint(c, "the server logs everyone in without a password");
	} else if (starts_with_ci(line, "* BYE")) {
		struct check *c = add_check(p->d, port, "greeting", V_FAIL, "%s", line);
		set_hint(c, "the server refuses connections: see its log (connection limits, overload)");
		ret = -1;
	} else {
		struct check *c = add_check(p->d, port, "greeting", V_FAIL, "not an IMAP greeting: %.200s", line);
		set_hint(c, "something other than an IMAP server answers on %d", port);
		ret = -1;
	}
	free(line);
	return ret;
}

/* CAPABILITY (RFC 3501 6.1.1); returns the list (malloc'd) or NULL. */
static char *get_capabilities(struct probe *p, int port, const char *name)
{
	char *caps = NULL, *status = NULL;

	if (probe_command(p, "CAPABILITY", &caps, &status) < 0) {
		add_check(p->d, port, name, V_FAIL, "CAPABILITY: %s", p->error);
		free(caps);
		return NULL;
	}
	if (!status_is_ok(status) || caps == NULL) {
		add_check(p->d, port, name, V_FAIL, "CAPABILITY answered %s%s", status,
			  caps == NULL ? " without a CAPABILITY response" : "");
		free(caps);
		free(status);
		return NULL;
	}
	free(status);
	add_check(p->d, port, name, V_INFO, "%s", caps);
	return caps;
}

/* RFC 3501 6.2.3, RFC 8314 and our own policy: no password in clear. */
static void check_plaintext_login(struct doctor *d, int port, const char *caps)
{
	char *mechs = auth_mechanisms(caps);
	bool login = !has_cap(caps, "LOGINDISABLED");
	bool clear_mech = has_cap(caps, "AUTH=PLAIN") || has_cap(caps, "AUTH=LOGIN");

	if (login || clear_mech) {
		struct check *c = add_check(d, port, "plaintext-login", V_FAIL,
					    "a password can be sent before TLS: %s%s%s%s",
					    login ? "LOGINDISABLED is not advertised" : "",
					    login && mechs[0] != '\0' ? ", " : "",
					    mechs[0] != '\0' ? "AUTH=" : "", mechs);
		set_hint(c, "passwords may cross the network in clear: set allow_plaintext_auth = no "
			 "(postern) or disable_plaintext_auth = yes (Dovecot)");
	} else if (mechs[0] != '\0') {
		struct check *c = add_check(d, port, "plaintext-login", V_WARN,
					    "LOGINDISABLED, but AUTH=%s offered before TLS", mechs);
		set_hint(c, "offer authentication only after STARTTLS");
	} else {
		add_check(d, port, "plaintext-login", V_OK, "LOGINDISABLED before TLS, no AUTH= mechanism");
	}
	free(mechs);
}

/* An IMAP astring for LOGIN: a quoted string when it can be one, else a
 * synchronizing literal. Returns 0, or -1 (error in p->error). */
static int send_astring(struct probe *p, struct buf *line, const char *s, const char *tag, char **status_r)
{
	bool quotable = true;

	for (const char *c = s; *c != '\0'; c++) {
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			quotable = false;
	}
	if (quotable) {
		buf_append_char(line, '"');
		for (const char *c = s; *c != '\0'; c++) {
			if (*c == '"' || *c == '\\')
				buf_append_char(line, '\\');
			buf_append_char(line, *c);
		}
		buf_append_char(line, '"');
		return 0;
	}
	/* RFC 3501 4.3: send the length, wait for "+", then the bytes. */
	buf_printf(line, "{%zu}\r\n", strlen(s));
	int r = probe_write(p, line->data, line->len);
	OPENSSL_cleanse(line->data, line->len);
	buf_clear(line);
	if (r < 0)
		return -1;
	r = probe_response(p, tag, NULL, status_r, true);
	if (r < 0)
		return -1;
	if (r == 0) {
		snprintf(p->error, sizeof(p->error), "literal refused: %.200s", *status_r);
		return -1;
	}
	buf_append_str(line, s);
	return 0;
}

/* Logs in over TLS (never before): AUTHENTICATE PLAIN when offered (RFC
 * 4616, with SASL-IR when offered, RFC 4959), else LOGIN. */
static void check_login(struct probe *p, int port, const char *caps)
{
	struct doctor *d = p->d;
	char tag[32], *status = NULL;
	struct buf line = BUF_INIT, plain = BUF_INIT;
	const char *mech;
	int r = -1;

	next_tag(p, tag, sizeof(tag));
	if (has_cap(caps, "AUTH=PLAIN")) {
		mech = "AUTHENTICATE PLAIN";
		buf_append_char(&plain, '\0');
		buf_append_str(&plain, d->user);
		buf_append_char(&plain, '\0');
		buf_append_str(&plain, d->password);
		if (has_cap(caps, "SASL-IR")) {
			buf_printf(&line, "%s AUTHENTICATE PLAIN ", tag);
			base64_encode(&line, plain.data, plain.len);
			buf_append_str(&line, "\r\n");
			r = probe_write(p, line.data, line.len);
			if (r == 0)
				r = probe_response(p, tag, NULL, &status, false);
		} else {
			buf_printf(&line, "%s AUTHENTICATE PLAIN\r\n", tag);
			r = probe_write(p, line.data, line.len);
			if (r == 0)
				r = probe_response(p, tag, NULL, &status, true);
			if (r == 1) {
				OPENSSL_cleanse(line.data, line.len);
				buf_clear(&line);
				base64_encode(&line, plain.data, plain.len);
				buf_append_str(&line, "\r\n");
				r = probe_write(p, line.data, line.len);
				if (r == 0)
					r = probe_response(p, tag, NULL, &status, false);
			}
		}
	} else if (has_cap(caps, "LOGINDISABLED")) {
		struct check *c = add_check(d, port, "login", V_FAIL,
					    "LOGINDISABLED and no AUTH=PLAIN even over TLS: no way to log in");
		set_hint(c, "enable LOGIN or AUTH=PLAIN on TLS connections");
		return;
	} else {
		mech = "LOGIN";
		buf_printf(&line, "%s LOGIN ", tag);
		r = send_astring(p, &line, d->user, tag, &status);
		if (r == 0) {
			buf_append_char(&line, ' ');
			r = send_astring(p, &line, d->password, tag, &status);
		}
		if (r == 0) {
			buf_append_str(&line, "\r\n");
			r = probe_write(p, line.data, line.len);
			if (r == 0)
				r = probe_response(p, tag, NULL, &status, false);
		}
	}
	if (line.data != NULL)
		OPENSSL_cleanse(line.data, line.len);
	if (plain.data != NULL)
		OPENSSL_cleanse(plain.data, plain.len);
	buf_free(&line);
	buf_free(&plain);

	char *user = printable(d->user, strlen(d->user));
	if (r < 0) {
		add_check(d, port, "login", V_FAIL, "%s as %s: %s", mech, user, p->error);
	} else if (r == 1) {
		add_check(d, port, "login", V_FAIL, "%s as %s: unexpected continuation request", mech, user);
	} else if (status_is_ok(status)) {
		add_check(d, port, "login", V_OK, "logged in as %s with %s", user, mech);
		char *bye = NULL;
		if (probe_command(p, "LOGOUT", NULL, &bye) == 0)
			free(bye);
	} else {
		struct check *c = add_check(d, port, "login", V_FAIL, "%s as %s failed: %s", mech, user, status);
		set_hint(c, "check the user name and password; the server's log says why it refused");
	}
	free(user);
	free(status);
}

/* ---- One port ---- */

static int connect_step(struct probe *p, int port, const char *name, bool report_ok)
{
	long long ms = 0;
	bool refused;

	if (probe_connect(p, port, &ms, &refused) == 0) {
		if (report_ok) {
			char addr[INET6_ADDRSTRLEN] = "?";
			struct sockaddr_storage ss;
			socklen_t len = sizeof(ss);
			if (getpeername(p->fd, (struct sockaddr *)&ss, &len) == 0) {
				const void *a = ss.ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
									 : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
				if (inet_ntop(ss.ss_family, a, addr, sizeof(addr)) == NULL)
					snprintf(addr, sizeof(addr), "?");
			}
			add_check(p->d, port, name, V_OK, "connected to %s port %d in %lld ms", addr, port, ms);
		}
		return 0;
	}
	struct check *c = add_check(p->d, port, name, V_FAIL, "cannot connect: %s", p->error);
	if (refused)
		set_hint(c, "%d closed: firewall or server not listening", port);
	else
		set_hint(c, "%d unreachable: a firewall drops the packets, or the host is down", port);
	return -1;
}

/* Greeting and STARTTLS on a fresh plaintext connection, for a version
 * probe. 0 when the TLS handshake may start. */
static int starttls_prelude(struct probe *p)
{
	char *line = NULL, *status = NULL;

	if (probe_read_line(p, &line) < 0)
		return -1;
	free(line);
	if (probe_command(p, "STARTTLS", NULL, &status) < 0)
		return -1;
	bool ok = status_is_ok(status);
	if (!ok)
		snprintf(p->error, sizeof(p->error), "STARTTLS answered %.200s", status);
	free(status);
	buf_clear(&p->in);
	return ok ? 0 : -1;
}

static void probe_versions(struct doctor *d, int port, enum port_mode mode)
{
	for (size_t i = 0; i < N_TLS_VERSIONS; i++) {
		char name[16];
		const char *text = tls_versions[i].text;
		bool legacy = tls_versions[i].version < TLS1_2_VERSION;
		snprintf(name, sizeof(name), "tls-%s", tls_versions[i].label);
		if (d->version_ctx[i] == NULL) {
			add_check(d, port, name, V_INFO, "%s not tested: this OpenSSL cannot speak it (%s)",
				  text, d->version_ctx_error[i]);
			continue;
		}
		struct probe p;
		long long ms;
		bool refused;
		probe_init(&p, d);
		if (probe_connect(&p, port, &ms, &refused) < 0 ||
		    (mode == MODE_STARTTLS && starttls_prelude(&p) < 0)) {
			add_check(d, port, name, V_WARN, "%s not tested: %s", text, p.error);
			probe_close(&p);
			continue;
		}
		if (probe_handshake(&p, d->version_ctx[i]) == 0) {
			const char *cipher = SSL_get_cipher_name(p.ssl);
			if (legacy) {
				struct check *c = add_check(d, port, name, V_FAIL, "%s accepted (%s)", text, cipher);
				set_hint(c, "%s accepted: set tls_min_version = 1.2 (postern) or "
					 "ssl_min_protocol = TLSv1.2 (Dovecot); RFC 8996 deprecates it", text);
			} else {
				add_check(d, port, name, V_OK, "%s accepted (%s)", text, cipher);
			}
		} else if (p.ssl_reason == SSL_R_NO_PROTOCOLS_AVAILABLE ||
			   p.ssl_reason == SSL_R_NO_CIPHERS_AVAILABLE) {
			add_check(d, port, name, V_INFO, "%s not tested: %s on this side", text, p.error);
		} else if (legacy) {
			add_check(d, port, name, V_OK, "%s rejected (%s)", text, p.error);
		} else if (tls_versions[i].version == TLS1_3_VERSION) {
			struct check *c = add_check(d, port, name, V_INFO, "%s rejected (%s)", text, p.error);
			set_hint(c, "TLS 1.3 is faster and safer: enable it (OpenSSL 1.1.1 or later)");
		} else {
			struct check *c = add_check(d, port, name, V_INFO, "%s rejected (%s)", text, p.error);
			set_hint(c, "clients without TLS 1.3 cannot connect");
		}
		probe_close(&p);
	}
}

/* Everything after a successful TLS handshake on the main connection. */
static void after_handshake(struct probe *p, int port, enum port_mode mode)
{
	check_cipher(p, port);
	check_certificate(p, port);
	if (mode == MODE_TLS && check_greeting(p, port, mode) < 0)
		return;
	char *caps = get_capabilities(p, port, "capabilities-tls");
	if (caps == NULL)
		return;
	if (p->d->user != NULL)
		check_login(p, port, caps);
	free(caps);
}

/* STARTTLS (RFC 3501 6.2.1) and the checks over the upgraded connection.
 * Returns true when the server accepted STARTTLS, so TLS can be probed. */
static bool starttls_step(struct probe *p, int port, enum port_mode mode)
{
	struct doctor *d = p->d;
	char *status = NULL;

	if (probe_command(p, "STARTTLS", NULL, &status) < 0) {
		add_check(d, port, "starttls", V_FAIL, "STARTTLS: %s", p->error);
		return false;
	}
	bool accepted = status_is_ok(status);
	if (!accepted) {
		struct check *c = add_check(d, port, "starttls", V_FAIL, "STARTTLS offered but answered %s", status);
		set_hint(c, "the server's TLS setup is broken: see its log");
	} else if (p->in.len > 0) {
		/* Nothing may follow the OK in clear (CVE-2011-0411). */
		struct check *c = add_check(d, port, "starttls", V_FAIL,
					    "the server sent data in clear after the STARTTLS OK");
		set_hint(c, "the server is open to STARTTLS command injection (CVE-2011-0411): update it");
	} else if (probe_handshake(p, d->main_ctx) < 0) {
		struct check *c = add_check(d, port, "starttls", V_FAIL,
					    "TLS handshake after STARTTLS failed: %s", p->error);
		set_hint(c, "the server's TLS settings refuse a default OpenSSL client");
	} else {
		add_check(d, port, "starttls", V_OK, "offered and working: %s", SSL_get_version(p->ssl));
		after_handshake(p, port, mode);
	}
	free(status);
	return accepted;
}

static void doctor_port(struct doctor *d, const struct port_spec *ps)
{
	int port = ps->port;
	enum port_mode mode = ps->mode;
	struct probe p;

	probe_init(&p, d);
	if (connect_step(&p, port, "connect", true) < 0)
		return;

	/* Which protocol: 993 is implicit TLS (RFC 8314 3.3); elsewhere a
	 * handshake that works says so. A plaintext server's greeting makes
	 * the handshake fail at once, so this costs no timeout. */
	if (mode == MODE_AUTO && port == 993) {
		mode = MODE_TLS;
		add_check(d, port, "mode", V_INFO, "implicit TLS (port 993)");
	} else if (mode == MODE_AUTO) {
		/* Every version and cipher allowed, so a server that speaks only
		 * old TLS is still recognised as TLS. */
		char error[128];
		SSL_CTX *any = new_client_ctx(error, sizeof(error));
		mode = MODE_STARTTLS;
		if (any != NULL) {
			SSL_CTX_set_security_level(any, 0);
			if (SSL_CTX_set_min_proto_version(any, TLS1_VERSION) != 1 ||
			    SSL_CTX_set_cipher_list(any, "ALL:@SECLEVEL=0") != 1)
				ERR_clear_error();	/* the defaults still recognise TLS */
			if (probe_handshake(&p, any) == 0)
				mode = MODE_TLS;
			SSL_CTX_free(any);
		}
		add_check(d, port, "mode", V_INFO, mode == MODE_TLS ? "implicit TLS (the handshake works)"
			  : "plaintext, STARTTLS expected (no TLS handshake)");
		probe_close(&p);
		probe_init(&p, d);
		if (connect_step(&p, port, "connect", false) < 0)
			return;
	} else {
		add_check(d, port, "mode", V_INFO, mode == MODE_TLS ? "implicit TLS (as asked)"
			  : "plaintext with STARTTLS (as asked)");
	}

	/* Versions are probed wherever TLS can start, even when a default
	 * client fails: a server speaking only TLS 1.0 is what they reveal. */
	bool probe_tls = mode == MODE_TLS;
	if (mode == MODE_TLS) {
		if (probe_handshake(&p, d->main_ctx) == 0) {
			add_check(d, port, "tls-handshake", V_OK, "%s", SSL_get_version(p.ssl));
			after_handshake(&p, port, mode);
		} else {
			struct check *c = add_check(d, port, "tls-handshake", V_FAIL, "TLS handshake failed: %s", p.error);
			if (ps->mode == MODE_TLS || port == 993)
				set_hint(c, "%d should speak implicit TLS; if it speaks STARTTLS, use --port %d/starttls",
					 port, port);
			else
				set_hint(c, "the server's TLS settings refuse a default OpenSSL client");
		}
	} else {
		char *caps = NULL;
		if (check_greeting(&p, port, mode) == 0)
			caps = get_capabilities(&p, port, "capabilities");
		if (caps != NULL) {
			check_plaintext_login(d, port, caps);
			if (!has_cap(caps, "STARTTLS")) {
				struct check *c = add_check(d, port, "starttls", V_FAIL, "STARTTLS not offered");
				set_hint(c, "plaintext only: offer STARTTLS on %d (postern: tls = starttls) or close it", port);
			} else {
				probe_tls = starttls_step(&p, port, mode);
			}
		}
		free(caps);
	}
	probe_close(&p);
	if (probe_tls)
		probe_versions(d, port, mode);
	else
		add_check(d, port, "tls-versions", V_INFO, "not probed: no working TLS on this port");
}

/* ---- Arguments ---- */

static void usage(void)
{
	fputs("usage: postern doctor HOST [--port N[/tls|/starttls]]... [--cafile FILE]\n"
	      "                      [--user NAME] [--json] [--timeout SECONDS]\n"
	      "  Checks an IMAP server from the outside (ports 143 and 993 by default).\n"
	      "  With --user, the password is read as one line from standard input.\n"
	      "  Exit status: 0 no problems, 1 problems found, 2 usage error.\n", stderr);
}

static int parse_port(const char *arg, struct port_spec *ps)
{
	char *end;
	errno = 0;
	long n = strtol(arg, &end, 10);
	if (errno != 0 || end == arg || n < 1 || n > 65535)
		return -1;
	ps->port = (int)n;
	if (*end == '\0')
		ps->mode = MODE_AUTO;
	else if (strcmp(end, "/tls") == 0)
		ps->mode = MODE_TLS;
	else if (strcmp(end, "/starttls") == 0)
		ps->mode = MODE_STARTTLS;
	else
		return -1;
	return 0;
}

/* One line from stdin, a byte at a time so nothing else is buffered, with
 * echo off on a terminal. Returns a malloc'd string or NULL. */
static char *read_password(const char *user)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	char buf[LIMIT_PASSWORD_LEN + 1];
	size_t len = 0;
	bool too_long = false, got = false;

	if (tty) {
		fprintf(stderr, "Password for %s: ", user);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0)
			tty = false;
	}
	for (;;) {
		char c;
		ssize_t n = read(STDIN_FILENO, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || c == '\n')
			break;
		got = true;
		if (len < LIMIT_PASSWORD_LEN)
			buf[len++] = c;
		else
			too_long = true;
	}
	if (tty) {
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	char *password = (!got || too_long || memchr(buf, '\0', len) != NULL) ? NULL : xstrdup(buf);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (password == NULL)
		fprintf(stderr, "postern doctor: %s\n", too_long ? "password too long"
			: got ? "password holds a NUL byte" : "no password on standard input");
	return password;
}

static void doctor_free(struct doctor *d)
{
	for (size_t i = 0; i < d->check_count; i++) {
		free(d->checks[i].name);
		free(d->checks[i].detail);
		free(d->checks[i].hint);
	}
	free(d->checks);
	if (d->password != NULL) {
		OPENSSL_cleanse(d->password, strlen(d->password));
		free(d->password);
	}
	if (d->addrs != NULL)
		freeaddrinfo(d->addrs);
	SSL_CTX_free(d->main_ctx);
	for (size_t i = 0; i < N_TLS_VERSIONS; i++)
		SSL_CTX_free(d->version_ctx[i]);
}

int cli_doctor(int argc, char **argv)
{
	static const struct option options[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "cafile", required_argument, NULL, 'C' },
		{ "user", required_argument, NULL, 'u' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct doctor d;
	struct port_spec ports[MAX_PORTS];
	size_t port_count = 0;
	int opt, status = EXIT_USAGE;

	memset(&d, 0, sizeof(d));
	d.timeout_ms = DEFAULT_TIMEOUT_MS;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "p:u:t:h", options, NULL)) != -1) {
		switch (opt) {
		case 'p':
			if (port_count == MAX_PORTS) {
				fprintf(stderr, "postern doctor: at most %d ports\n", MAX_PORTS);
				return EXIT_USAGE;
			}
			if (parse_port(optarg, &ports[port_count]) < 0) {
				fprintf(stderr, "postern doctor: bad --port '%s': expected N, N/tls or N/starttls\n",
					optarg);
				return EXIT_USAGE;
			}
			port_count++;
			break;
		case 'C':
			d.cafile = optarg;
			break;
		case 'u':
			d.user = optarg;
			break;
		case 'j':
			d.json = true;
			break;
		case 't': {
			char *end;
			double s = strtod(optarg, &end);
			if (end == optarg || *end != '\0' || !(s > 0 && s <= 3600)) {
				fprintf(stderr, "postern doctor: bad --timeout '%s': seconds, more than 0 and at most 3600\n",
					optarg);
				return EXIT_USAGE;
			}
			d.timeout_ms = (int)(s * 1000 + 0.5);
			if (d.timeout_ms < 1)
				d.timeout_ms = 1;
			break;
		}
		case 'h':
			usage();
			return EXIT_OK;
		default:
			usage();
			return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc || argv[optind][0] == '\0') {
		usage();
		return EXIT_USAGE;
	}
	d.host = argv[optind];
	if (port_count == 0) {
		ports[0] = (struct port_spec){ 143, MODE_AUTO };
		ports[1] = (struct port_spec){ 993, MODE_AUTO };
		port_count = 2;
	}
	if (d.user != NULL && (d.user[0] == '\0' || strpbrk(d.user, "\r\n") != NULL)) {
		fprintf(stderr, "postern doctor: bad --user\n");
		return EXIT_USAGE;
	}
	if (d.user != NULL) {
		d.password = read_password(d.user);
		if (d.password == NULL)
			return EXIT_USAGE;
	}
	unsigned char ip[sizeof(struct in6_addr)];
	d.host_is_ip = inet_pton(AF_INET, d.host, ip) == 1 || inet_pton(AF_INET6, d.host, ip) == 1;

	if (setup_tls(&d) < 0) {
		status = d.cafile != NULL ? EXIT_USAGE : EXIT_PROBLEMS;
		goto out;
	}
	if (!d.json)
		printf("postern doctor %s (timeout %g s)\n", d.host, d.timeout_ms / 1000.0);

	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	int gai = getaddrinfo(d.host, NULL, &hints, &d.addrs);
	if (gai != 0) {
		struct check *c = add_check(&d, 0, "resolve", V_FAIL, "cannot resolve %s: %s", d.host,
					    gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
		set_hint(c, "check the name and the DNS (an A or AAAA record)");
		d.addrs = NULL;
	} else {
		for (size_t i = 0; i < port_count; i++)
			doctor_port(&d, &ports[i]);
	}
	status = finish_report(&d);
out:
	doctor_free(&d);
	return status;
}
