/* The DATA stream of LMTP and SMTP (RFC 5321 4.1.1.4, 4.5.2): lines up to
 * the end-of-data line ".", with the leading dot taken off every other line
 * that starts with one (dot-unstuffing) and every line ending written out
 * as CRLF, a bare LF included. Incremental: any split of the input gives
 * the same message (tests/unit/test_lmtp_data.c feeds it byte by byte).
 *
 * The first CRLF of "<CRLF>.<CRLF>" ends the message's last line and stays
 * in the message (RFC 5321 4.1.1.4), so a message always ends with CRLF;
 * a client whose message lacked one has added it before the dot. ".<LF>"
 * also ends the data, as a bare LF ends any other line. A CR not followed
 * by LF is kept as it is. */
#ifndef POSTERN_LMTP_DATA_H
#define POSTERN_LMTP_DATA_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lmtp_data_state {
	LMTP_DATA_BOL,		/* at the start of a line */
	LMTP_DATA_DOT,		/* a line began with '.' */
	LMTP_DATA_DOT_CR,	/* the line is ".\r" so far */
	LMTP_DATA_TEXT,		/* inside a line */
	LMTP_DATA_CR,		/* inside a line, after '\r' */
	LMTP_DATA_DONE,		/* the end-of-data line was read */
};

struct lmtp_data {
	enum lmtp_data_state state;
	struct buf *out;	/* the message is appended here (not owned) */
	uint64_t limit;		/* most message bytes kept */
	uint64_t size;		/* message bytes seen, also past the limit */
	bool too_big;		/* size passed limit: out was freed, the rest
				   is read and thrown away */
};

/* Starts reading a message into out, keeping at most limit bytes. */
void lmtp_data_init(struct lmtp_data *d, struct buf *out, uint64_t limit);
/* Reads from data. Returns 1 when the end-of-data line was read:
 * *consumed_r bytes were used and the rest is the next command (RFC 2920
 * pipelining). Returns 0 when all of data was used and more is needed. */
int lmtp_data_feed(struct lmtp_data *d, const char *data, size_t len, size_t *consumed_r);

#endif
