/* The metrics endpoint: plain HTTP/1.x, GET /metrics only (anything else
 * 404), one request per connection. It runs in the master's loop, so a slow
 * or hostile scraper never touches an IMAP loop. */
#ifndef POSTERN_METRICS_HTTP_H
#define POSTERN_METRICS_HTTP_H

#include "core/buf.h"
#include "net/ev.h"

typedef void metrics_http_render_cb(void *ctx, struct buf *body);

struct metrics_http;

/* Serves on listen_fd (bound and listening, non-blocking; taken over). */
struct metrics_http *metrics_http_new(struct ev_loop *loop, int listen_fd, metrics_http_render_cb *render,
				      void *ctx);
void metrics_http_free(struct metrics_http **http);

#endif
