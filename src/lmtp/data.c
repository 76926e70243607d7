#include "lmtp/data.h"

#include <string.h>

void lmtp_data_init(struct lmtp_data *d, struct buf *out, uint64_t limit)
{
	*d = (struct lmtp_data){ .state = LMTP_DATA_BOL, .out = out, .limit = limit };
}

/* Past the limit the buffer goes at once: the client may send gigabytes
 * and we answer 552 only after the dot (RFC 5321 4.5.3.1.10), so memory
 * stays at the limit. */
static void emit(struct lmtp_data *d, const char *p, size_t n)
{
	d->size += n;
	if (d->too_big)
		return;
	if (d->size > d->limit) {
		d->too_big = true;
		buf_free(d->out);
		return;
	}
	buf_append(d->out, p, n);
}

int lmtp_data_feed(struct lmtp_data *d, const char *data, size_t len, size_t *consumed_r)
{
	size_t i = 0;
	while (i < len && d->state != LMTP_DATA_DONE) {
		char c = data[i];
		switch (d->state) {
		case LMTP_DATA_BOL:
			if (c == '.') {
				d->state = LMTP_DATA_DOT;
				i++;
			} else {
				d->state = LMTP_DATA_TEXT;
			}
			break;
		case LMTP_DATA_DOT:
			if (c == '\r') {
				d->state = LMTP_DATA_DOT_CR;
				i++;
			} else if (c == '\n') {
				d->state = LMTP_DATA_DONE;
				i++;
			} else {
				/* RFC 5321 4.5.2: drop the stuffed dot, keep the rest. */
				d->state = LMTP_DATA_TEXT;
			}
			break;
		case LMTP_DATA_DOT_CR:
			if (c == '\n') {
				d->state = LMTP_DATA_DONE;
				i++;
			} else {
				/* "." CR x: an unstuffed line holding a bare CR. */
				emit(d, "\r", 1);
				d->state = LMTP_DATA_TEXT;
			}
			break;
		case LMTP_DATA_TEXT: {
			size_t run = i;
			while (run < len && data[run] != '\r' && data[run] != '\n')
				run++;
			if (run > i) {
				emit(d, data + i, run - i);
				i = run;
				break;
			}
			if (c == '\r') {
				d->state = LMTP_DATA_CR;
			} else {
				emit(d, "\r\n", 2);
				d->state = LMTP_DATA_BOL;
			}
			i++;
			break;
		}
		case LMTP_DATA_CR:
			if (c == '\n') {
				emit(d, "\r\n", 2);
				d->state = LMTP_DATA_BOL;
				i++;
			} else {
				emit(d, "\r", 1);
				d->state = LMTP_DATA_TEXT;
			}
			break;
		case LMTP_DATA_DONE:
			break;
		}
	}
	*consumed_r = i;
	return d->state == LMTP_DATA_DONE ? 1 : 0;
}
