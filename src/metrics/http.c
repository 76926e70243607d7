#include "metrics/http.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "net/conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* A request bigger than this is not a scrape. */
#define HTTP_MAX_REQUEST 8192
#define HTTP_TIMEOUT_MS 10000

struct http_client {
	struct metrics_http *server;
	struct http_client *prev, *next;
	struct conn *conn;
	struct ev_timer timeout;
	bool answered;
};

struct metrics_http {
	struct ev_loop *loop;
	struct ev_io io;
	metrics_http_render_cb *render;
	void *ctx;
	struct http_client *clients;
};

static void client_free(struct http_client *c)
{
	struct metrics_http *h = c->server;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		h->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	ev_timer_stop(h->loop, &c->timeout);
	conn_free(&c->conn);
	free(c);
}

static void respond(struct http_client *c, const char *status, const char *type, const struct buf *body)
{
	conn_printf(c->conn, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
		    status, type, body->len);
	if (body->len > 0)
		conn_write(c->conn, body->data, body->len);
	c->answered = true;
	conn_close_after_flush(c->conn);
}

static void on_input(void *ctx)
{
	struct http_client *c = ctx;
	struct buf *in = &c->conn->in;
	if (c->answered) {
		buf_clear(in);
		return;
	}
	char *end = strstr(in->data, "\r\n\r\n");
	if (end == NULL)
		end = strstr(in->data, "\n\n");
	if (end == NULL) {
		if (in->len > HTTP_MAX_REQUEST) {
			struct buf body = BUF_INIT;
			buf_append_str(&body, "request too large\n");
			respond(c, "431 Request Header Fields Too Large", "text/plain", &body);
			buf_free(&body);
		}
		return;
	}
	/* Only the request line matters: "GET /metrics HTTP/1.1". */
	size_t path_len = 0;
	bool is_get = strncmp(in->data, "GET ", 4) == 0;
	const char *path = in->data + 4;
	if (is_get)
		path_len = strcspn(path, " ?\r\n");
	struct buf body = BUF_INIT;
	if (is_get && path_len == 8 && strncmp(path, "/metrics", 8) == 0) {
		c->server->render(c->server->ctx, &body);
		respond(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", &body);
	} else {
		buf_append_str(&body, "not found: only GET /metrics is served here\n");
		respond(c, "404 Not Found", "text/plain", &body);
	}
	buf_free(&body);
	buf_clear(in);
}

static void on_close(void *ctx, const char *reason)
{
	client_free(ctx);
}

static const struct conn_handler http_handler = {
	.on_input = on_input,
	.on_close = on_close,
};

static void timeout_cb(void *ctx)
{
	client_free(ctx);
}

static void accept_cb(void *ctx, uint32_t events)
{
	struct metrics_http *h = ctx;
	for (int i = 0; i < 16; i++) {
		int fd = accept4(h->io.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
				log_msg(LOG_ERROR, "metrics_accept", "%s", strerror(errno));
			return;
		}
		struct http_client *c = xcalloc(1, sizeof(*c));
		c->server = h;
		c->conn = conn_new(h->loop, fd, &http_handler, c, NULL);
		if (c->conn == NULL) {
			free(c);
			continue;
		}
		c->next = h->clients;
		if (h->clients != NULL)
			h->clients->prev = c;
		h->clients = c;
		ev_timer_init(&c->timeout, timeout_cb, c);
		ev_timer_start(h->loop, &c->timeout, HTTP_TIMEOUT_MS);
	}
}

struct metrics_http *metrics_http_new(struct ev_loop *loop, int listen_fd, metrics_http_render_cb *render,
				      void *ctx)
{
	struct metrics_http *h = xcalloc(1, sizeof(*h));
	h->loop = loop;
	h->render = render;
	h->ctx = ctx;
	ev_io_init(&h->io, listen_fd, accept_cb, h);
	if (ev_io_set(loop, &h->io, EPOLLIN) < 0) {
		log_msg(LOG_ERROR, "metrics_listen", "%s", strerror(errno));
		close(listen_fd);
		free(h);
		return NULL;
	}
	return h;
}

void metrics_http_free(struct metrics_http **hp)
{
	struct metrics_http *h = *hp;
	if (h == NULL)
		return;
	while (h->clients != NULL)
		client_free(h->clients);
	ev_io_stop(h->loop, &h->io);
	close(h->io.fd);
	free(h);
	*hp = NULL;
}
