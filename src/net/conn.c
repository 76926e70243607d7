#include "net/conn.h"
#include "core/log.h"
#include "core/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* Read at most this much per wakeup before letting the session parse, so
 * one fast client can't starve the others in the loop. */
#define CONN_READ_CHUNK 16384
#define CONN_READ_BUDGET (256 * 1024)

static void conn_flush(struct conn *c);
static void conn_read(struct conn *c);
static void conn_update_events(struct conn *c);

static void conn_report_close(struct conn *c, const char *reason)
{
	if (c->dead || c->handler == NULL)
		return;
	const struct conn_handler *h = c->handler;
	c->handler = NULL;	/* report once */
	ev_io_stop(c->loop, &c->io);
	h->on_close(c->ctx, reason);
}

static void ssl_failure_reason(struct conn *c, const char *what, int ssl_error)
{
	unsigned long err = ERR_get_error();
	if (err != 0) {
		const char *reason = ERR_reason_error_string(err);
		snprintf(c->tls_error, sizeof(c->tls_error), "%s", reason ? reason : "unknown");
	} else if (ssl_error == SSL_ERROR_SYSCALL) {
		snprintf(c->tls_error, sizeof(c->tls_error), "%s",
			 errno != 0 ? strerror(errno) : "unexpected eof");
	} else {
		snprintf(c->tls_error, sizeof(c->tls_error), "ssl error %d", ssl_error);
	}
	ERR_clear_error();
	char reason[200];
	snprintf(reason, sizeof(reason), "%s: %s", what, c->tls_error);
	conn_report_close(c, reason);
}

void conn_peer_address(int fd, char *ip, size_t ip_size, int *port_r)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int port = 0;
	snprintf(ip, ip_size, "unknown");
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		goto out;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		if (inet_ntop(AF_INET, &sin->sin_addr, ip, (socklen_t)ip_size) == NULL)
			snprintf(ip, ip_size, "unknown");
		port = ntohs(sin->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		if (inet_ntop(AF_INET6, &sin6->sin6_addr, ip, (socklen_t)ip_size) == NULL)
			snprintf(ip, ip_size, "unknown");
		port = ntohs(sin6->sin6_port);
		/* One client, one throttle entry, whichever socket family it used. */
		if (strncmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.') != NULL)
			memmove(ip, ip + 7, strlen(ip + 7) + 1);
	} else if (ss.ss_family == AF_UNIX) {
		snprintf(ip, ip_size, "local");
	}
out:
	if (port_r != NULL)
		*port_r = port;
}

static void conn_handshake(struct conn *c)
{
	ERR_clear_error();
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->tls_state = CONN_TLS_ON;
		c->tls_wants_write = false;
		tls_server_unref(&c->tls);
		if (c->handler != NULL && c->handler->on_tls_ready != NULL)
			c->handler->on_tls_ready(c->ctx);
		if (!c->dead && c->handler != NULL)
			conn_read(c);	/* the client may have sent a command already */
		return;
	}
	int err = SSL_get_error(c->ssl, r);
	if (err == SSL_ERROR_WANT_READ) {
		c->tls_wants_write = false;
	} else if (err == SSL_ERROR_WANT_WRITE) {
		c->tls_wants_write = true;
	} else {
		ssl_failure_reason(c, "tls_failed", err);
		return;
	}
	conn_update_events(c);
}

/* The client speaks first in TLS, so the handshake proceeds from the next
 * readable event; nothing here calls back into the session. */
static int create_ssl(struct conn *c)
{
	c->ssl = tls_server_new_ssl(c->tls, c->fd);
	if (c->ssl == NULL)
		return -1;
	SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	c->tls_state = CONN_TLS_HANDSHAKE;
	c->tls_wants_write = false;
	return 0;
}

static void begin_tls(struct conn *c)
{
	if (create_ssl(c) < 0) {
		conn_report_close(c, "tls_failed: cannot create session");
		return;
	}
	conn_update_events(c);
}

static void conn_io_cb(void *ctx, uint32_t events)
{
	struct conn *c = ctx;
	if (c->tls_state == CONN_TLS_HANDSHAKE) {
		if (c->ssl != NULL)
			conn_handshake(c);
		else if (events & (EPOLLERR | EPOLLHUP))
			conn_report_close(c, "reset");
		return;
	}
	if ((events & EPOLLOUT) || c->tls_wants_write)
		conn_flush(c);
	if (!c->dead && c->handler != NULL && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		conn_read(c);
	if (!c->dead && c->handler != NULL)
		conn_update_events(c);
}

static void conn_flush_cb(void *ctx)
{
	conn_flush(ctx);
}

static void conn_free_cb(void *ctx)
{
	struct conn *c = ctx;
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
}

static void conn_kick_cb(void *ctx)
{
	struct conn *c = ctx;
	if (c->dead || c->handler == NULL || c->input_paused)
		return;
	if (c->in.len > 0 || (c->read_eof && c->session_handles_eof))
		c->handler->on_input(c->ctx);
	if (!c->dead && c->handler != NULL && !c->input_paused && c->ssl != NULL &&
	    SSL_pending(c->ssl) > 0)
		conn_read(c);
	if (!c->dead && c->handler != NULL)
		conn_update_events(c);
}

struct conn *conn_new(struct ev_loop *loop, int fd, const struct conn_handler *handler,
		      void *ctx, struct tls_server *tls)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	c->loop = loop;
	c->fd = fd;
	c->handler = handler;
	c->ctx = ctx;
	ev_io_init(&c->io, fd, conn_io_cb, c);
	ev_defer_init(&c->flush_defer, conn_flush_cb, c);
	ev_defer_init(&c->free_defer, conn_free_cb, c);
	ev_defer_init(&c->kick_defer, conn_kick_cb, c);
	int one = 1;
	/* Responses are batched per loop pass already; Nagle would only add
	 * a delayed-ACK stall to each small reply. Failure is harmless. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	conn_peer_address(fd, c->peer_ip, sizeof(c->peer_ip), &c->peer_port);
	if (tls != NULL) {
		c->tls = tls_server_ref(tls);
		if (create_ssl(c) < 0) {
			tls_server_unref(&c->tls);
			close(fd);
			free(c);
			return NULL;
		}
	}
	conn_update_events(c);
	return c;
}

void conn_free(struct conn **connp)
{
	struct conn *c = *connp;
	if (c == NULL)
		return;
	*connp = NULL;
	c->dead = true;
	c->handler = NULL;
	ev_io_stop(c->loop, &c->io);
	ev_defer_cancel(c->loop, &c->flush_defer);
	ev_defer_cancel(c->loop, &c->kick_defer);
	if (c->ssl != NULL) {
		/* A close_notify when it can go out at once; never wait for it. */
		if (c->tls_state == CONN_TLS_ON) {
			ERR_clear_error();
			(void)SSL_shutdown(c->ssl);
			ERR_clear_error();
		}
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	tls_server_unref(&c->tls);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	ev_defer_queue(c->loop, &c->free_defer);
}

static void conn_update_events(struct conn *c)
{
	if (c->dead || c->handler == NULL)
		return;
	uint32_t want = 0;
	if (c->tls_state == CONN_TLS_HANDSHAKE) {
		want = c->tls_wants_write ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
		if (c->ssl == NULL)	/* STARTTLS: waiting for the OK to drain */
			want = EPOLLOUT;
	} else {
		if (!c->input_paused && !c->read_eof && !c->closing)
			want |= EPOLLIN;
		if (c->out.len > c->out_sent || c->tls_wants_write)
			want |= EPOLLOUT;
	}
	if (want == 0) {
		ev_io_stop(c->loop, &c->io);
		return;
	}
	if (ev_io_set(c->loop, &c->io, want) < 0)
		conn_report_close(c, "epoll failed");
}

static void output_drained(struct conn *c)
{
	buf_free(&c->out);	/* idle connections keep no output buffer either */
	c->out_sent = 0;
	if (c->closing) {
		conn_report_close(c, "logout");
		return;
	}
	if (c->tls_state == CONN_TLS_HANDSHAKE && c->ssl == NULL) {
		begin_tls(c);
		return;
	}
	if (c->handler != NULL && c->handler->on_drained != NULL)
		c->handler->on_drained(c->ctx);
}

/* The client does not read what it asked for: one last try with the
 * goodbye, then the session hears of it and closes. */
static void output_overflow(struct conn *c)
{
	const char *goodbye = c->output_goodbye;
	c->output_limit = 0;	/* this runs once */
	if (goodbye != NULL) {
		buf_append_str(&c->out, goodbye);
		conn_flush(c);
		if (c->dead || c->handler == NULL)
			return;
	}
	conn_report_close(c, "limit: output buffer");
}

static void conn_flush(struct conn *c)
{
	if (c->dead || c->handler == NULL)
		return;
	/* Nothing may go out in clear once the TLS handshake has begun. */
	if (c->tls_state == CONN_TLS_HANDSHAKE && c->ssl != NULL)
		return;
	while (c->out_sent < c->out.len) {
		const char *data = c->out.data + c->out_sent;
		size_t len = c->out.len - c->out_sent;
		ssize_t n;
		if (c->tls_state == CONN_TLS_ON) {
			ERR_clear_error();
			int r = SSL_write(c->ssl, data, len > INT32_MAX ? INT32_MAX : (int)len);
			if (r <= 0) {
				int err = SSL_get_error(c->ssl, r);
				if (err == SSL_ERROR_WANT_WRITE) {
					c->tls_wants_write = true;
					break;
				}
				if (err == SSL_ERROR_WANT_READ) {
					c->tls_wants_write = false;
					break;
				}
				ssl_failure_reason(c, "write_failed", err);
				return;
			}
			c->tls_wants_write = false;
			n = r;
		} else {
			n = send(c->fd, data, len, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				if (errno == EINTR)
					continue;
				conn_report_close(c, errno == EPIPE || errno == ECONNRESET ? "reset" : "write_failed");
				return;
			}
		}
		c->out_sent += (size_t)n;
		c->bytes_out += (uint64_t)n;
		if (c->metric_out != NULL)
			__atomic_fetch_add(c->metric_out, (uint64_t)n, __ATOMIC_RELAXED);
	}
	if (c->out_sent == c->out.len) {
		output_drained(c);
	} else if (c->output_limit > 0 && c->out.len - c->out_sent > c->output_limit) {
		output_overflow(c);
		return;
	}
	if (!c->dead && c->handler != NULL)
		conn_update_events(c);
}

/* Returns bytes read, 0 when it would block, -1 when the conn was closed,
 * CONN_READ_EOF when the peer closed (not yet reported: bytes read just
 * before the EOF still go to the session first). */
#define CONN_READ_EOF (-2)
static ssize_t conn_read_some(struct conn *c)
{
	buf_reserve(&c->in, CONN_READ_CHUNK);
	char *dest = c->in.data + c->in.len;
	if (c->tls_state == CONN_TLS_ON) {
		ERR_clear_error();
		int r = SSL_read(c->ssl, dest, CONN_READ_CHUNK);
		if (r > 0)
			return r;
		int err = SSL_get_error(c->ssl, r);
		if (err == SSL_ERROR_WANT_READ)
			return 0;
		if (err == SSL_ERROR_WANT_WRITE) {
			c->tls_wants_write = true;
			return 0;
		}
		if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
			c->read_eof = true;
			return CONN_READ_EOF;
		}
		ssl_failure_reason(c, "read_failed", err);
		return -1;
	}
	for (;;) {
		ssize_t n = recv(c->fd, dest, CONN_READ_CHUNK, 0);
		if (n > 0)
			return n;
		if (n == 0) {
			c->read_eof = true;
			return CONN_READ_EOF;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		conn_report_close(c, errno == ECONNRESET ? "reset" : "read_failed");
		return -1;
	}
}

static void conn_read(struct conn *c)
{
	size_t total = 0;
	while (!c->input_paused && !c->closing && total < CONN_READ_BUDGET) {
		ssize_t n = conn_read_some(c);
		if (n == CONN_READ_EOF) {
			/* "a LOGOUT" or an LMTP DATA's final dot may arrive in
			 * the same read as the FIN: the session sees them first. */
			if (c->session_handles_eof) {
				conn_update_events(c);	/* nothing more to read */
				if (c->handler != NULL)
					c->handler->on_input(c->ctx);
				return;
			}
			if (total > 0 && c->handler != NULL)
				c->handler->on_input(c->ctx);
			if (!c->dead)
				conn_report_close(c, "eof");
			return;
		}
		if (n < 0)
			return;
		if (n == 0)
			break;
		c->in.len += (size_t)n;
		c->in.data[c->in.len] = '\0';
		c->bytes_in += (uint64_t)n;
		if (c->metric_in != NULL)
			__atomic_fetch_add(c->metric_in, (uint64_t)n, __ATOMIC_RELAXED);
		total += (size_t)n;
	}
	if (total > 0 && c->handler != NULL)
		c->handler->on_input(c->ctx);
	/* An idle connection holds no buffer: the 16 KiB reserved for a read
	 * that found nothing, or left once everything was parsed, goes back. */
	if (!c->dead && c->in.len == 0 && c->in.cap > 0)
		buf_free(&c->in);
	/* Out of budget with more waiting: epoll reports it again (level
	 * triggered), except for bytes OpenSSL already holds. */
	if (!c->dead && c->handler != NULL && total >= CONN_READ_BUDGET)
		ev_defer_queue(c->loop, &c->kick_defer);
}

int conn_start_tls(struct conn *c, struct tls_server *tls)
{
	if (c->tls_state != CONN_TLS_OFF)
		return -1;
	/* RFC 3501 6.2.1, RFC 2595 3.1: nothing the client sent after the
	 * STARTTLS line may be taken as a command once TLS is up. */
	buf_clear(&c->in);
	c->tls = tls_server_ref(tls);
	c->tls_state = CONN_TLS_HANDSHAKE;
	if (c->out.len == c->out_sent) {
		begin_tls(c);
		return 0;
	}
	ev_defer_queue(c->loop, &c->flush_defer);
	conn_update_events(c);
	return 0;
}

void conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->dead)
		return;
	buf_append(&c->out, data, len);
	ev_defer_queue(c->loop, &c->flush_defer);
}

void conn_write_str(struct conn *c, const char *s)
{
	conn_write(c, s, strlen(s));
}

void conn_printf(struct conn *c, const char *fmt, ...)
{
	if (c->dead)
		return;
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&c->out, fmt, ap);
	va_end(ap);
	ev_defer_queue(c->loop, &c->flush_defer);
}

void conn_set_output_limit(struct conn *c, size_t limit, const char *goodbye)
{
	c->output_limit = limit;
	c->output_goodbye = goodbye;
}

size_t conn_output_pending(const struct conn *c)
{
	return c->out.len - c->out_sent;
}

void conn_close_after_flush(struct conn *c)
{
	c->closing = true;
	ev_defer_queue(c->loop, &c->flush_defer);
}

void conn_pause_input(struct conn *c)
{
	c->input_paused = true;
	conn_update_events(c);
}

void conn_resume_input(struct conn *c)
{
	if (!c->input_paused)
		return;
	c->input_paused = false;
	ev_defer_queue(c->loop, &c->kick_defer);
}

bool conn_is_tls(const struct conn *c)
{
	return c->tls_state == CONN_TLS_ON;
}

const char *conn_tls_version(const struct conn *c)
{
	return c->tls_state == CONN_TLS_ON ? SSL_get_version(c->ssl) : NULL;
}

const char *conn_tls_cipher(const struct conn *c)
{
	return c->tls_state == CONN_TLS_ON ? SSL_get_cipher_name(c->ssl) : NULL;
}
