/* imapload connections: non-blocking sockets under one level-triggered
 * epoll loop, OpenSSL on top when asked, IMAP and LMTP response framing and
 * checking. See il.h for the contract. */
#include "il.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* What a connection waits for. */
enum cstate {
	CS_CONNECTING,  /* TCP connect in progress */
	CS_HANDSHAKE,   /* TLS handshake in progress */
	CS_GREETING,    /* waiting for "* OK" / "220" */
	CS_STARTTLS,    /* STARTTLS sent, waiting for its OK */
	CS_LHLO,        /* LMTP: LHLO sent */
	CS_READY,       /* nothing outstanding: the workload may send */
	CS_CMD,         /* a command is waiting for its tagged reply */
	CS_IDLE_WAIT,   /* IDLE sent, waiting for "+" */
	CS_IDLING,      /* in IDLE: only untagged data expected */
	CS_CLOSED,
};

struct il_conn_private {
	int fd;
	SSL *ssl;
	enum cstate st;
	bool tls_after_starttls;
	bool logout;            /* LOGOUT sent: BYE and EOF are expected */
	bool want_out;          /* EPOLLOUT registered */
	struct il_buf in, out;
	size_t need;            /* bytes of `in` (from start) before a frame can end */
	size_t scan;            /* where to look for the next LF */
	uint64_t frame_literals;
	unsigned tagn;
	char tag[16];
	char cmd[IL_MAX_CMD_TEXT];
	uint64_t sent_ns, deadline_ns;
	struct il_stat *stat;
	il_reply_fn *cb;
	il_conn_fn *ready, *idle_cb;
	/* Synchronizing literals still to send, waiting for "+". */
	int lit_next, lit_n;
	const char *const *lit_texts;
	const char *const *lit_data;
	const size_t *lit_lens;
	int lmtp_left;          /* LMTP replies still expected */
	size_t slot;            /* index in loop.conns */
	struct il_conn *next_dead;
};

static struct {
	int epfd;
	SSL_CTX *ctx;
	struct il_conn **conns;
	size_t nconns, cap;
	struct il_conn *dead;
	uint64_t tls_full, tls_resumed;
	struct sockaddr_in server;
} loop;

static void conn_fail(struct il_conn *c, const char *what, const char *line, size_t len)
	__attribute__((noreturn));

static void conn_fail(struct il_conn *c, const char *what, const char *line, size_t len)
{
	if (len > 300)
		len = 300;
	il_fail("client %d (%s): %s%s%s%s%s%.*s%s", c->id, il_user_name(c->id), what,
		c->p->cmd[0] ? " during `" : "", c->p->cmd, c->p->cmd[0] ? "`" : "",
		line ? ": server said `" : "", (int)len, line ? line : "", line ? "`" : "");
}

static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct il_conn *c = SSL_get_app_data(ssl);
	if (c == NULL)
		return 0;
	if (c->session != NULL)
		SSL_SESSION_free(c->session);
	c->session = sess;
	return 1; /* we keep the reference */
}

void il_loop_init(void)
{
	loop.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop.epfd < 0)
		il_fail("epoll_create1: %s", strerror(errno));
	memset(&loop.server, 0, sizeof(loop.server));
	loop.server.sin_family = AF_INET;
	loop.server.sin_port = htons((uint16_t)il_opt.port);
	if (inet_pton(AF_INET, il_opt.host, &loop.server.sin_addr) != 1)
		il_fail("-h %s: not a numeric IPv4 address", il_opt.host);
	if (il_opt.sec != IL_SEC_PLAIN) {
		loop.ctx = SSL_CTX_new(TLS_client_method());
		if (loop.ctx == NULL)
			il_fail("SSL_CTX_new failed");
		if (SSL_CTX_set_min_proto_version(loop.ctx, TLS1_2_VERSION) != 1)
			il_fail("SSL_CTX_set_min_proto_version failed");
		/* Benchmark against our own self-signed certificates: no
		 * verification, which costs the client, not the server. */
		SSL_CTX_set_verify(loop.ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_mode(loop.ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
						   SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		SSL_CTX_set_session_cache_mode(loop.ctx,
					       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(loop.ctx, new_session_cb);
	}
}

static void conn_events(struct il_conn *c, bool out)
{
	if (c->p->want_out == out)
		return;
	struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c };
	if (epoll_ctl(loop.epfd, EPOLL_CTL_MOD, c->p->fd, &ev) != 0)
		il_fail("epoll_ctl MOD: %s", strerror(errno));
	c->p->want_out = out;
}

struct il_conn *il_conn_open(int id, enum il_proto proto, void *ud, il_conn_fn *ready)
{
	struct il_conn *c = calloc(1, sizeof(*c));
	struct il_conn_private *p = calloc(1, sizeof(*p));
	if (c == NULL || p == NULL)
		il_fail("out of memory");
	c->id = id;
	c->ud = ud;
	c->proto = proto;
	c->p = p;
	p->ready = ready;
	p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0)
		il_fail("socket: %s (raise the file limit: ulimit -n)", strerror(errno));
	int one = 1;
	if (setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		il_fail("TCP_NODELAY: %s", strerror(errno));
	if (il_opt.nsrc > 1) {
		/* Spread over 127.0.0.1..N so that more than one ephemeral
		 * port range is available; the port is picked at connect()
		 * time, per 4-tuple (IP_BIND_ADDRESS_NO_PORT). */
		struct sockaddr_in src = { .sin_family = AF_INET };
		src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(id % il_opt.nsrc));
		if (setsockopt(p->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) != 0)
			il_fail("IP_BIND_ADDRESS_NO_PORT: %s", strerror(errno));
		if (bind(p->fd, (struct sockaddr *)&src, sizeof(src)) != 0)
			il_fail("bind 127.0.0.%d: %s", 1 + id % il_opt.nsrc, strerror(errno));
	}
	if (connect(p->fd, (struct sockaddr *)&loop.server, sizeof(loop.server)) != 0 &&
	    errno != EINPROGRESS)
		il_fail("client %d: connect %s:%d: %s", id, il_opt.host, il_opt.port, strerror(errno));
	p->st = CS_CONNECTING;
	p->deadline_ns = il_now_ns() + (uint64_t)(il_opt.timeout * 1e9);
	snprintf(p->cmd, sizeof(p->cmd), "connect");
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
	if (epoll_ctl(loop.epfd, EPOLL_CTL_ADD, p->fd, &ev) != 0)
		il_fail("epoll_ctl ADD: %s", strerror(errno));
	p->want_out = true;
	if (loop.nconns == loop.cap) {
		loop.cap = loop.cap ? loop.cap * 2 : 1024;
		loop.conns = il_xrealloc(loop.conns, loop.cap * sizeof(*loop.conns));
	}
	p->slot = loop.nconns;
	loop.conns[loop.nconns++] = c;
	return c;
}

void il_conn_close(struct il_conn *c)
{
	struct il_conn_private *p = c->p;
	if (p->st == CS_CLOSED)
		return;
	p->st = CS_CLOSED;
	if (p->ssl != NULL) {
		/* A close_notify, best effort: without it OpenSSL marks the
		 * session as not resumable when the SSL is freed. */
		if (SSL_is_init_finished(p->ssl) && SSL_shutdown(p->ssl) < 0)
			ERR_clear_error();
		SSL_set_app_data(p->ssl, NULL);
		SSL_free(p->ssl);
		p->ssl = NULL;
	}
	/* close() removes the fd from the epoll set. */
	if (close(p->fd) != 0)
		il_fail("close: %s", strerror(errno));
	p->fd = -1;
	struct il_conn *last = loop.conns[--loop.nconns];
	loop.conns[p->slot] = last;
	last->p->slot = p->slot;
	p->next_dead = loop.dead;
	loop.dead = c;
}

static void free_dead(void)
{
	while (loop.dead != NULL) {
		struct il_conn *c = loop.dead;
		loop.dead = c->p->next_dead;
		il_buf_free(&c->p->in);
		il_buf_free(&c->p->out);
		if (c->session != NULL)
			SSL_SESSION_free(c->session);
		free(c->p);
		free(c);
	}
}

int il_loop_open_count(void)
{
	return (int)loop.nconns;
}

void il_tls_counts(uint64_t *full_r, uint64_t *resumed_r)
{
	*full_r = loop.tls_full;
	*resumed_r = loop.tls_resumed;
}

const char *il_conn_current(const struct il_conn *c)
{
	return c->p->cmd;
}

void il_conn_trim(struct il_conn *c)
{
	struct il_conn_private *p = c->p;
	if (p->in.start == p->in.len && p->need == 0)
		il_buf_free(&p->in), p->scan = 0;
	if (p->out.start == p->out.len)
		il_buf_free(&p->out);
}

static const char *ssl_error_text(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();
	if (e == 0)
		return "no OpenSSL error queued";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

/* Writes what is buffered; registers EPOLLOUT while some is left. */
static void conn_flush(struct il_conn *c)
{
	struct il_conn_private *p = c->p;
	if (p->st == CS_CLOSED || p->st == CS_CONNECTING || p->st == CS_HANDSHAKE)
		return;
	while (p->out.start < p->out.len) {
		size_t n = p->out.len - p->out.start;
		if (n > 1 << 20)
			n = 1 << 20;
		if (p->ssl != NULL) {
			int w = SSL_write(p->ssl, p->out.data + p->out.start, (int)n);
			if (w <= 0) {
				int err = SSL_get_error(p->ssl, w);
				if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ)
					break;
				conn_fail(c, err == SSL_ERROR_SYSCALL ? "TLS write failed (connection lost)"
								      : ssl_error_text(),
					  NULL, 0);
			}
			il_buf_consume(&p->out, (size_t)w);
		} else {
			ssize_t w = send(p->fd, p->out.data + p->out.start, n, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				conn_fail(c, strerror(errno), NULL, 0);
			}
			il_buf_consume(&p->out, (size_t)w);
		}
	}
	conn_events(c, p->out.start < p->out.len);
}

static void start_tls(struct il_conn *c)
{
	struct il_conn_private *p = c->p;
	p->ssl = SSL_new(loop.ctx);
	if (p->ssl == NULL || SSL_set_fd(p->ssl, p->fd) != 1)
		il_fail("SSL_new/SSL_set_fd: %s", ssl_error_text());
	SSL_set_app_data(p->ssl, c);
	if (c->session != NULL && SSL_set_session(p->ssl, c->session) != 1)
		il_fail("SSL_set_session: %s", ssl_error_text());
	p->st = CS_HANDSHAKE;
	snprintf(p->cmd, sizeof(p->cmd), "TLS handshake");
	p->deadline_ns = il_now_ns() + (uint64_t)(il_opt.timeout * 1e9);
}

static void send_raw(struct il_conn *c, const void *data, size_t n)
{
	il_buf_append(&c->p->out, data, n);
}

static void begin_cmd(struct il_conn *c, enum cstate st, struct il_stat *stat, il_reply_fn *cb)
{
	struct il_conn_private *p = c->p;
	if (p->st != CS_READY)
		il_fail("client %d: bug: command while %s is outstanding", c->id, p->cmd);
	p->st = st;
	p->stat = stat;
	p->cb = cb;
	c->fetches = 0;
	c->literal_bytes = 0;
	p->sent_ns = il_now_ns();
	p->deadline_ns = p->sent_ns + (uint64_t)(il_opt.timeout * 1e9);
	snprintf(p->tag, sizeof(p->tag), "a%u", ++p->tagn);
}

void il_cmd(struct il_conn *c, struct il_stat *stat, il_reply_fn *cb, const char *fmt, ...)
{
	struct il_conn_private *p = c->p;
	begin_cmd(c, CS_CMD, stat, cb);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(p->cmd, sizeof(p->cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(p->cmd))
		il_fail("command text too long");
	if (strncasecmp(p->cmd, "LOGOUT", 6) == 0)
		p->logout = true;
	il_buf_printf(&p->out, "%s %s\r\n", p->tag, p->cmd);
	/* The password is not repeated in failure messages. */
	if (strncasecmp(p->cmd, "LOGIN ", 6) == 0)
		snprintf(p->cmd, sizeof(p->cmd), "LOGIN %s ***", il_user_name(c->id));
	conn_flush(c);
}

/* Sends literal k's data, the text after it, and the next literal's
 * announcement (or the final CRLF). */
static void send_literal_step(struct il_conn *c, bool plus)
{
	struct il_conn_private *p = c->p;
	int k = p->lit_next;
	if (k > 0) {
		send_raw(c, p->lit_data[k - 1], p->lit_lens[k - 1]);
		send_raw(c, p->lit_texts[k], strlen(p->lit_texts[k]));
	}
	if (k < p->lit_n)
		il_buf_printf(&p->out, " {%zu%s}\r\n", p->lit_lens[k], plus ? "+" : "");
	else
		send_raw(c, "\r\n", 2);
	p->lit_next = k + 1;
}

void il_cmd_literals(struct il_conn *c, struct il_stat *stat, il_reply_fn *cb, int ndata,
		     const char *const *texts, const char *const *data, const size_t *lens)
{
	struct il_conn_private *p = c->p;
	begin_cmd(c, CS_CMD, stat, cb);
	snprintf(p->cmd, sizeof(p->cmd), "%s ... (%d literal%s)", texts[0], ndata, ndata == 1 ? "" : "s");
	il_buf_printf(&p->out, "%s %s", p->tag, texts[0]);
	p->lit_texts = texts;
	p->lit_data = data;
	p->lit_lens = lens;
	p->lit_n = ndata;
	p->lit_next = 0;
	bool plus = (c->caps & IL_CAP_LITERALPLUS) != 0;
	if (plus) {
		while (p->lit_next <= p->lit_n)
			send_literal_step(c, true);
		p->lit_n = 0;
	} else {
		send_literal_step(c, false);
	}
	conn_flush(c);
}

void il_idle(struct il_conn *c, il_conn_fn *cb)
{
	struct il_conn_private *p = c->p;
	begin_cmd(c, CS_IDLE_WAIT, NULL, NULL);
	p->idle_cb = cb;
	snprintf(p->cmd, sizeof(p->cmd), "IDLE");
	il_buf_printf(&p->out, "%s IDLE\r\n", p->tag);
	conn_flush(c);
}

void il_idle_done(struct il_conn *c, il_reply_fn *done_cb)
{
	struct il_conn_private *p = c->p;
	if (p->st != CS_IDLING)
		il_fail("client %d: bug: DONE outside IDLE", c->id);
	p->st = CS_CMD;
	p->cb = done_cb;
	p->stat = NULL;
	p->sent_ns = il_now_ns();
	p->deadline_ns = p->sent_ns + (uint64_t)(il_opt.timeout * 1e9);
	snprintf(p->cmd, sizeof(p->cmd), "IDLE ... DONE");
	send_raw(c, "DONE\r\n", 6);
	conn_flush(c);
}

void il_lmtp(struct il_conn *c, struct il_stat *stat, il_reply_fn *cb, int count, const char *data,
	     size_t len)
{
	struct il_conn_private *p = c->p;
	begin_cmd(c, CS_CMD, stat, cb);
	p->lmtp_left = count;
	size_t show = strcspn(data, "\r\n");
	snprintf(p->cmd, sizeof(p->cmd), "%.*s", (int)(show < 200 ? show : 200), data);
	send_raw(c, data, len);
	conn_flush(c);
}

static void parse_caps(struct il_conn *c, const char *line, size_t len)
{
	static const struct {
		const char *name;
		unsigned cap;
	} known[] = {
		{ "LITERAL+", IL_CAP_LITERALPLUS },
		{ "MULTIAPPEND", IL_CAP_MULTIAPPEND },
		{ "IDLE", IL_CAP_IDLE },
		{ "STARTTLS", IL_CAP_STARTTLS },
	};
	const char *s = memmem(line, len, "CAPABILITY ", 11);
	if (s == NULL)
		return;
	const char *end = line + len;
	const char *close = memchr(s, ']', (size_t)(end - s));
	if (close != NULL)
		end = close;
	unsigned caps = 0;
	for (const char *w = s + 11; w < end;) {
		const char *sp = memchr(w, ' ', (size_t)(end - w));
		size_t wl = (size_t)((sp ? sp : end) - w);
		for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
			if (strlen(known[k].name) == wl && strncasecmp(w, known[k].name, wl) == 0)
				caps |= known[k].cap;
		w += wl + 1;
	}
	c->caps = caps;
}

static void finish_cmd(struct il_conn *c, const char *line, size_t len, int code)
{
	struct il_conn_private *p = c->p;
	if (p->stat != NULL)
		il_stat_add(p->stat, il_now_ns() - p->sent_ns);
	il_reply_fn *cb = p->cb;
	p->st = CS_READY;
	p->cb = NULL;
	p->cmd[0] = '\0';
	p->deadline_ns = 0;
	struct il_reply r = { .line = line, .len = len, .code = code };
	if (cb != NULL)
		cb(c, &r);
}

static bool starts(const char *line, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && strncasecmp(line, prefix, n) == 0;
}

static void imap_untagged(struct il_conn *c, const char *line, size_t len)
{
	struct il_conn_private *p = c->p;
	const char *rest = line + 2;
	size_t rlen = len - 2;
	if (starts(rest, rlen, "BYE")) {
		if (p->logout)
			return;
		conn_fail(c, "unexpected BYE", line, len);
	}
	if (starts(rest, rlen, "BAD") || starts(rest, rlen, "NO ") || (rlen == 2 && starts(rest, rlen, "NO")))
		conn_fail(c, "untagged error", line, len);
	if (p->st == CS_GREETING) {
		if (!starts(rest, rlen, "OK"))
			conn_fail(c, "greeting is not OK", line, len);
		parse_caps(c, line, len);
		if (il_opt.sec == IL_SEC_STARTTLS) {
			p->st = CS_READY;
			begin_cmd(c, CS_STARTTLS, NULL, NULL);
			snprintf(p->cmd, sizeof(p->cmd), "STARTTLS");
			il_buf_printf(&p->out, "%s STARTTLS\r\n", p->tag);
			conn_flush(c);
			return;
		}
		p->st = CS_READY;
		p->cmd[0] = '\0';
		p->deadline_ns = 0;
		p->ready(c);
		return;
	}
	if (starts(rest, rlen, "OK") || starts(rest, rlen, "CAPABILITY")) {
		parse_caps(c, line, len);
	} else if (rlen > 0 && rest[0] >= '0' && rest[0] <= '9') {
		char *end;
		unsigned long n = strtoul(rest, &end, 10);
		size_t off = (size_t)(end - rest);
		if (starts(rest + off, rlen - off, " EXISTS"))
			c->exists = (uint32_t)n;
		else if (starts(rest + off, rlen - off, " EXPUNGE")) {
			if (n == 0 || n > c->exists)
				conn_fail(c, "EXPUNGE of a message that does not exist", line, len);
			c->exists--;
		} else if (starts(rest + off, rlen - off, " FETCH")) {
			if (n == 0 || n > c->exists)
				conn_fail(c, "FETCH for a message number beyond EXISTS", line, len);
			c->fetches++;
		}
	}
	if (c->on_untagged != NULL)
		c->on_untagged(c, line, len);
}

static void imap_response(struct il_conn *c, const char *line, size_t len)
{
	struct il_conn_private *p = c->p;
	if (len >= 2 && line[0] == '*' && line[1] == ' ') {
		imap_untagged(c, line, len);
		return;
	}
	if (len >= 1 && line[0] == '+' && (len == 1 || line[1] == ' ')) {
		if (p->st == CS_IDLE_WAIT) {
			p->st = CS_IDLING;
			p->deadline_ns = 0;
			p->idle_cb(c);
			return;
		}
		if (p->st == CS_CMD && p->lit_n > 0 && p->lit_next <= p->lit_n) {
			send_literal_step(c, false);
			if (p->lit_next > p->lit_n)
				p->lit_n = 0;
			conn_flush(c);
			return;
		}
		conn_fail(c, "unexpected continuation request", line, len);
	}
	size_t tl = strlen(p->tag);
	bool ours = (p->st == CS_CMD || p->st == CS_STARTTLS || p->st == CS_IDLE_WAIT) && len > tl &&
		    memcmp(line, p->tag, tl) == 0 && line[tl] == ' ';
	if (!ours)
		conn_fail(c, "response with an unknown tag or malformed", line, len);
	const char *status = line + tl + 1;
	size_t slen = len - tl - 1;
	if (starts(status, slen, "NO") || starts(status, slen, "BAD"))
		conn_fail(c, "command failed", line, len);
	if (!starts(status, slen, "OK ") && !(slen == 2 && starts(status, slen, "OK")))
		conn_fail(c, "tagged response is not OK, NO or BAD", line, len);
	if (p->st == CS_IDLE_WAIT)
		conn_fail(c, "IDLE ended before it began", line, len);
	parse_caps(c, line, len);
	if (p->st == CS_STARTTLS) {
		/* RFC 2595 3.1: nothing may follow the OK in clear. */
		if (p->in.len != p->in.start)
			conn_fail(c, "data after the STARTTLS OK (command injection?)", line, len);
		p->tls_after_starttls = true;
		start_tls(c);
		return;
	}
	finish_cmd(c, line, len, 0);
}

static void lmtp_response(struct il_conn *c, const char *line, size_t len)
{
	struct il_conn_private *p = c->p;
	if (len < 3 || line[0] < '1' || line[0] > '5' || (len > 3 && line[3] != ' ' && line[3] != '-'))
		conn_fail(c, "malformed LMTP reply", line, len);
	int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (code >= 400)
		conn_fail(c, "LMTP error", line, len);
	if (len > 3 && line[3] == '-')
		return; /* continued */
	switch (p->st) {
	case CS_GREETING:
		if (code != 220)
			conn_fail(c, "LMTP greeting is not 220", line, len);
		p->st = CS_READY;
		begin_cmd(c, CS_LHLO, NULL, NULL);
		snprintf(p->cmd, sizeof(p->cmd), "LHLO imapload.localhost");
		il_buf_printf(&p->out, "LHLO imapload.localhost\r\n");
		conn_flush(c);
		return;
	case CS_LHLO:
		p->st = CS_READY;
		p->cmd[0] = '\0';
		p->deadline_ns = 0;
		p->ready(c);
		return;
	case CS_CMD:
		if (--p->lmtp_left == 0)
			finish_cmd(c, line, len, code);
		return;
	default:
		conn_fail(c, "LMTP reply with no command outstanding", line, len);
	}
}

/* Frames complete responses out of the input buffer and dispatches them. */
static void conn_parse(struct il_conn *c)
{
	struct il_conn_private *p = c->p;
	while (p->st != CS_CLOSED && p->st != CS_HANDSHAKE) {
		char *base = p->in.data + p->in.start;
		size_t avail = p->in.len - p->in.start;
		if (p->need > avail)
			return;
		char *nl = avail > p->scan ? memchr(base + p->scan, '\n', avail - p->scan) : NULL;
		if (nl == NULL) {
			if (avail - p->need > IL_MAX_LINE)
				conn_fail(c, "line too long", base, 200);
			p->scan = avail;
			return;
		}
		size_t pos = (size_t)(nl - base);
		if (pos == 0 || base[pos - 1] != '\r')
			conn_fail(c, "line ends in LF without CR", base, pos);
		if (c->proto == IL_PROTO_IMAP && pos >= 4 && base[pos - 2] == '}') {
			/* A literal: "{N}" (or "~{N}") ends the line. */
			size_t k = pos - 3;
			while (k > 0 && base[k] >= '0' && base[k] <= '9')
				k--;
			if (base[k] == '{' && k < pos - 3) {
				unsigned long long n = strtoull(base + k + 1, NULL, 10);
				if (n > IL_MAX_LITERAL)
					conn_fail(c, "literal too large", base, pos);
				p->frame_literals += n;
				p->need = pos + 1 + (size_t)n;
				p->scan = p->need;
				continue;
			}
		}
		size_t len = pos - 1;
		c->literal_bytes += p->frame_literals;
		p->frame_literals = 0;
		p->need = 0;
		p->scan = 0;
		/* Consume before dispatching: a callback may send or close. */
		size_t start = p->in.start;
		p->in.start += pos + 1;
		if (c->proto == IL_PROTO_IMAP)
			imap_response(c, p->in.data + start, len);
		else
			lmtp_response(c, p->in.data + start, len);
		if (p->st != CS_CLOSED && p->in.start >= p->in.len)
			p->in.start = p->in.len = 0;
	}
}

static void conn_read(struct il_conn *c)
{
	struct il_conn_private *p = c->p;
	for (int rounds = 0; rounds < 16 && p->st != CS_CLOSED && p->st != CS_HANDSHAKE; rounds++) {
		/* Keep the unparsed part of a frame in place: the parser
		 * holds offsets into it. */
		char *w = il_buf_space(&p->in, 65536);
		ssize_t n;
		if (p->ssl != NULL) {
			int r = SSL_read(p->ssl, w, 65536);
			if (r <= 0) {
				int err = SSL_get_error(p->ssl, r);
				if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
					return;
				if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0))
					n = 0;
				else
					conn_fail(c, ssl_error_text(), NULL, 0);
			} else {
				n = r;
			}
		} else {
			n = recv(p->fd, w, 65536, 0);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return;
				if (p->logout)
					n = 0;
				else
					conn_fail(c, strerror(errno), NULL, 0);
			}
		}
		if (n == 0) {
			if (p->logout && p->st == CS_READY) {
				il_conn_close(c);
				return;
			}
			conn_fail(c, "server closed the connection", p->in.data + p->in.start,
				  p->in.len - p->in.start);
		}
		p->in.len += (size_t)n;
		conn_parse(c);
		if (p->ssl == NULL && (size_t)n < 65536)
			return;
	}
}

static void conn_handshake(struct il_conn *c)
{
	struct il_conn_private *p = c->p;
	int r = SSL_connect(p->ssl);
	if (r == 1) {
		if (SSL_session_reused(p->ssl))
			loop.tls_resumed++;
		else
			loop.tls_full++;
		c->resumed = SSL_session_reused(p->ssl);
		if (p->tls_after_starttls) {
			p->st = CS_READY;
			p->cmd[0] = '\0';
			p->deadline_ns = 0;
			p->ready(c);
		} else {
			p->st = CS_GREETING;
			snprintf(p->cmd, sizeof(p->cmd), "greeting");
		}
		return;
	}
	int err = SSL_get_error(p->ssl, r);
	if (err == SSL_ERROR_WANT_READ) {
		conn_events(c, false);
		return;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		conn_events(c, true);
		return;
	}
	conn_fail(c, err == SSL_ERROR_SYSCALL ? "TLS handshake: connection lost" : ssl_error_text(), NULL, 0);
}

static void conn_event(struct il_conn *c, uint32_t events)
{
	struct il_conn_private *p = c->p;
	if (p->st == CS_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);
		if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
			il_fail("getsockopt: %s", strerror(errno));
		if (err == EINPROGRESS || err == EALREADY)
			return;
		if (err != 0)
			il_fail("client %d: connect %s:%d: %s", c->id, il_opt.host, il_opt.port, strerror(err));
		if (!(events & (EPOLLOUT | EPOLLIN)))
			return;
		if (il_opt.sec == IL_SEC_TLS)
			start_tls(c);
		else {
			p->st = CS_GREETING;
			snprintf(p->cmd, sizeof(p->cmd), "greeting");
		}
		conn_events(c, false);
	}
	if (p->st == CS_HANDSHAKE) {
		conn_handshake(c);
		if (p->st == CS_HANDSHAKE)
			return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		conn_read(c);
	/* OpenSSL may hold decrypted bytes that epoll cannot see. */
	while (p->st != CS_CLOSED && p->ssl != NULL && p->st != CS_HANDSHAKE && SSL_pending(p->ssl) > 0)
		conn_read(c);
	if (p->st == CS_HANDSHAKE) {
		conn_handshake(c);
		if (p->st == CS_HANDSHAKE)
			return;
		conn_read(c);
	}
	if (p->st != CS_CLOSED)
		conn_flush(c);
}

static void check_timeouts(uint64_t now)
{
	for (size_t i = 0; i < loop.nconns; i++) {
		struct il_conn *c = loop.conns[i];
		if (c->p->deadline_ns != 0 && now > c->p->deadline_ns)
			il_fail("client %d (%s): no answer within %.0f s to `%s`", c->id, il_user_name(c->id),
				il_opt.timeout, c->p->cmd);
	}
}

void il_loop_run(il_stop_fn *stop)
{
	struct epoll_event evs[256];
	uint64_t last_check = il_now_ns();
	while (!stop()) {
		int n = epoll_wait(loop.epfd, evs, 256, 50);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			il_fail("epoll_wait: %s", strerror(errno));
		}
		for (int i = 0; i < n; i++) {
			struct il_conn *c = evs[i].data.ptr;
			if (c->p->st == CS_CLOSED)
				continue;
			conn_event(c, evs[i].events);
		}
		free_dead();
		uint64_t now = il_now_ns();
		if (now - last_check > 200000000u) {
			check_timeouts(now);
			last_check = now;
		}
	}
	free_dead();
}
