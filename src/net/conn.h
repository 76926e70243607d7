/* A client connection: a non-blocking socket, optionally wrapped in TLS,
 * with an input buffer the protocol layer parses from and an output buffer
 * flushed once per loop iteration, with backpressure.
 *
 * Ownership: the protocol session owns its conn and frees it with
 * conn_free(). The conn calls back into the session through conn_handler;
 * after conn_free() it never calls back again. The struct's memory is
 * released after the current batch of events (Redis's freeClientAsync), so
 * freeing from inside a callback is safe. */
#ifndef POSTERN_NET_CONN_H
#define POSTERN_NET_CONN_H

#include "core/buf.h"
#include "net/ev.h"
#include "net/tls.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

struct conn;

struct conn_handler {
	/* New bytes are in conn->in (also called after conn_resume_input). */
	void (*on_input)(void *ctx);
	/* The TLS handshake finished; conn_tls_version() etc. are valid. */
	void (*on_tls_ready)(void *ctx);
	/* The peer closed, the socket failed or the handshake failed: reason
	 * is "eof", "reset", "tls_failed: ..." and so on. The session must
	 * conn_free() (now or later); nothing more will be read. */
	void (*on_close)(void *ctx, const char *reason);
	/* All queued output has been written (optional). */
	void (*on_drained)(void *ctx);
};

enum conn_tls_state {
	CONN_TLS_OFF,
	CONN_TLS_HANDSHAKE,
	CONN_TLS_ON,
};

struct conn {
	struct ev_loop *loop;
	struct ev_io io;
	struct ev_defer flush_defer;	/* write queued output once per batch */
	struct ev_defer free_defer;	/* free the struct after the batch */
	struct ev_defer kick_defer;	/* re-deliver input after a resume */
	int fd;
	SSL *ssl;
	struct tls_server *tls;		/* held while handshaking */
	enum conn_tls_state tls_state;
	bool tls_wants_write;		/* the last SSL call wanted EPOLLOUT */
	bool input_paused;		/* the session is busy: don't read */
	bool closing;			/* flush the output, then close */
	bool dead;			/* conn_free() was called */
	bool read_eof;
	/* The session ends itself once it has run what arrived before the
	 * peer's EOF (IMAP: "a LOGIN ... b APPEND ... c LOGOUT" then a FIN);
	 * otherwise the conn reports the EOF through on_close at once. */
	bool session_handles_eof;
	struct buf in;
	struct buf out;
	size_t out_sent;		/* bytes of out already written */
	char peer_ip[64];		/* "192.0.2.1" or "2001:db8::1" */
	int peer_port;
	uint64_t bytes_in, bytes_out;
	uint64_t *metric_in, *metric_out;	/* optional shared counters to add to */
	size_t output_limit;		/* most output queued before a close; 0: none */
	const char *output_goodbye;	/* line tried once before that close, or NULL */
	const struct conn_handler *handler;
	void *ctx;
	char tls_error[160];		/* why the handshake failed */
};

/* Takes over fd (closed by conn_free, or at once when NULL is returned
 * because no TLS session could be made). The peer address is read with
 * getpeername. With tls, a TLS handshake comes first (implicit TLS).
 * Never calls the handler before it returns. */
struct conn *conn_new(struct ev_loop *loop, int fd, const struct conn_handler *handler,
		      void *ctx, struct tls_server *tls);
void conn_free(struct conn **conn);

/* STARTTLS: input already buffered is thrown away (RFC 3207 / CVE-2011-0411)
 * and the handshake begins after queued output (the OK) has been written. */
int conn_start_tls(struct conn *conn, struct tls_server *tls);

void conn_write(struct conn *conn, const void *data, size_t len);
void conn_write_str(struct conn *conn, const char *s);
void conn_printf(struct conn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A reader that lets more than limit bytes pile up unwritten is closed:
 * on_close is called with reason "limit: output buffer" (outside any
 * session callback, from the flush). goodbye (static, may be NULL) is
 * queued and written if the socket still takes it: best effort, since a
 * client that does not read will not see it. */
void conn_set_output_limit(struct conn *conn, size_t limit, const char *goodbye);
/* The peer address of a connected socket as conn_new formats it
 * ("192.0.2.1", "2001:db8::1", IPv4-mapped IPv6 as IPv4, "local" for a
 * unix socket, "unknown" when it can't be read); port_r may be NULL. */
void conn_peer_address(int fd, char *ip, size_t ip_size, int *port_r);
/* Bytes queued and not yet written. */
size_t conn_output_pending(const struct conn *conn);
/* After queued output is written, close; on_close is then called with
 * reason "logout". */
void conn_close_after_flush(struct conn *conn);

void conn_pause_input(struct conn *conn);
void conn_resume_input(struct conn *conn);

const char *conn_tls_version(const struct conn *conn);	/* NULL when not TLS */
const char *conn_tls_cipher(const struct conn *conn);
bool conn_is_tls(const struct conn *conn);

#endif
