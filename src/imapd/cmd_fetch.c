/* FETCH and UID FETCH (RFC 3501 6.4.5, 7.4.2; RFC 9051 6.4.5, 7.5.2).
 *
 * What each item costs:
 * - UID, FLAGS, INTERNALDATE come from the selected view: no store access.
 * - ENVELOPE, BODY, BODYSTRUCTURE, RFC822.SIZE come from the metadata
 *   computed when the message was stored (message_meta.h): one index
 *   lookup, the body file is not opened. Without metadata (older
 *   messages), the message is parsed instead.
 * - Sections (BODY[...], RFC822...) map the immutable body file and send
 *   byte ranges of it.
 *
 * Streaming (DESIGN.md "a large FETCH streams from the message file"): a
 * section larger than FETCH_INLINE_MAX is written as its literal header
 * followed by chunks of the mapping, and no more is queued while the
 * connection holds FETCH_OUTPUT_BOUND bytes; the command then sets
 * s->busy and continues from s->on_drained. The same bound applies
 * between messages and items, so FETCH 1:* of a large mailbox queues at
 * most about FETCH_OUTPUT_BOUND plus one inline piece. Pages of the
 * mapping already sent are given back with madvise(MADV_DONTNEED) so the
 * resident size doesn't grow with the message either.
 *
 * Line ends: sizes and bytes are those of the message with every bare LF
 * sent as CRLF (RFC 3501 2.2: lines end with CRLF) when the metadata says
 * the stored bytes have one; partial offsets count in that converted
 * stream, so RFC822.SIZE, BODYSTRUCTURE sizes and literal sizes agree. NUL
 * bytes are sent as 0x80 (RFC 3501 9: CHAR8 excludes NUL in a literal),
 * as Dovecot does; one byte for one byte, so no size changes. */
#include "core/log.h"
#include "core/xalloc.h"
#include "imap/bodystructure.h"
#include "imap/envelope.h"
#include "imap/fetch_parse.h"
#include "imapd/message_meta.h"
#include "imapd/selected.h"
#include "imapd/session.h"
#include "mime/mime.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Stop queueing output while this much waits to be written. */
#define FETCH_OUTPUT_BOUND (256 * 1024)
/* A section up to this size goes out in the response line buffer; larger
 * ones stream from the mapping in chunks of the same size. */
#define FETCH_INLINE_MAX (64 * 1024)
/* Mapped pages already sent are released in steps of this size. */
#define FETCH_RELEASE_STEP (1024 * 1024)

/* Where the raw bytes of a section come from. */
enum src_kind {
	SRC_RANGE,		/* data[start..end) */
	SRC_FIELDS,		/* header fields of part, filtered by sec */
};

/* Yields the raw bytes of a section as slices, in order. */
struct src {
	enum src_kind kind;
	const char *data;
	size_t start, end;			/* SRC_RANGE; start advances */
	const struct mime_part *part;		/* SRC_FIELDS: whose header */
	const struct fetch_section *sec;
	size_t hpos;				/* mime_header_next() position */
	bool want_blank;			/* the header had its blank line */
	bool crlf_pending;			/* a field without line end: add one */
	bool done;
};

/* A section being sent: the slices, converted, after skipping `skip`
 * converted bytes and stopping after `remain` (the partial window). */
struct stream {
	struct src src;
	bool convert;		/* bare LF -> CRLF */
	const char *slice;
	size_t slice_len, slice_off;
	bool cr_sent;		/* the CR of a bare LF went out, its LF not yet */
	uint64_t skip;
	uint64_t remain;
};

/* The message being answered. */
struct fetch_msg {
	size_t pos;			/* in the msg_set */
	size_t index;			/* in sel->msgs */
	struct store_message_meta meta;
	bool have_meta;
	struct message_extra extra;
	bool have_extra;
	char *map;			/* the body file, or NULL */
	size_t map_size;
	const char *data;		/* map, or "" for an empty file */
	size_t size;
	struct mime_part *root;		/* parsed on demand */
	size_t released;		/* mapping released up to here */
	size_t item;			/* next item to write */
	bool flags_done;		/* FLAGS written (asked for) */
	bool need_space;		/* an item was written: separate the next */
	bool streaming;			/* inside a section literal */
	struct stream stream;
};

struct fetch_cmd {
	char *tag;
	struct fetch_request req;
	struct msg_set set;
	unsigned char *seen_set;	/* per set position: \Seen set by this command */
	size_t next;			/* next set position to start */
	bool in_msg;
	struct fetch_msg msg;
	bool need_meta, need_body;
	bool expunged;			/* some message was gone from the store */
	bool async;			/* s->busy was set */
	struct buf line;		/* the response being built */
	struct buf chunk;		/* streaming buffer */
};

enum step {
	STEP_MORE,		/* output bound reached: wait for the drain */
	STEP_DONE,		/* every message answered */
	STEP_FAILED,		/* a tagged NO was sent */
};

/* ---- sources: which raw bytes a section is ---------------------------- */

static bool field_matches(const struct fetch_section *sec, const struct mime_header_field *f)
{
	for (size_t i = 0; i < sec->field_count; i++) {
		const char *want = sec->fields[i];
		if (strlen(want) == f->name_len && strncasecmp(want, f->name, f->name_len) == 0)
			return true;
	}
	return false;
}

/* RFC 3501 6.4.5: "the blank line is included in all header fetches,
 * except in the case of a message which has no body and no blank line". */
static bool header_has_blank_line(const char *data, size_t start, size_t end)
{
	if (end <= start || data[end - 1] != '\n')
		return false;
	end--;
	if (end > start && data[end - 1] == '\r')
		end--;
	return end == start || data[end - 1] == '\n';
}

/* The next raw slice, or false at the end. */
static bool src_next(struct src *src, const char **p_r, size_t *len_r)
{
	if (src->done)
		return false;
	if (src->kind == SRC_RANGE) {
		src->done = true;
		*p_r = src->data + src->start;
		*len_r = src->end - src->start;
		return *len_r > 0;
	}
	if (src->crlf_pending) {
		src->crlf_pending = false;
		*p_r = "\r\n";
		*len_r = 2;
		return true;
	}
	struct mime_header_field f;
	bool want_not = src->sec->text == FETCH_TEXT_HEADER_FIELDS_NOT;
	while (mime_header_next(src->part, src->data, &src->hpos, &f) == 1) {
		if (field_matches(src->sec, &f) == want_not)
			continue;
		/* The field with its line end as stored; a last field without
		 * one gets a CRLF so the lines stay lines. */
		size_t end = (size_t)(f.value + f.value_len - src->data);
		if (end < src->part->body_start && src->data[end] == '\r')
			end++;
		if (end < src->part->body_start && src->data[end] == '\n')
			end++;
		else
			src->crlf_pending = true;
		*p_r = f.name;
		*len_r = end - (size_t)(f.name - src->data);
		return true;
	}
	src->done = true;
	if (src->want_blank) {
		*p_r = "\r\n";
		*len_r = 2;
		return true;
	}
	return false;
}

/* A LF not preceded by CR in its slice: sent as CRLF. Slices start at
 * line starts, so a LF first in its slice follows another line end. */
static bool is_bare_lf(const char *slice, size_t i)
{
	return slice[i] == '\n' && (i == 0 || slice[i - 1] != '\r');
}

static uint64_t converted_len(const char *p, size_t len, bool convert)
{
	uint64_t n = len;
	if (!convert)
		return n;
	const char *end = p + len, *q = p;
	while ((q = memchr(q, '\n', (size_t)(end - q))) != NULL) {
		if (is_bare_lf(p, (size_t)(q - p)))
			n++;
		q++;
	}
	return n;
}

static uint64_t src_size(struct src src, bool convert)
{
	uint64_t total = 0;
	const char *p;
	size_t len;
	while (src_next(&src, &p, &len))
		total += converted_len(p, len, convert);
	return total;
}

/* ---- streams: converted bytes with the partial window ------------------ */

/* Takes up to k converted bytes b[0..k): skipped first, then appended
 * (NUL as 0x80) up to remain and *room. Returns how many were taken. */
static size_t put(struct stream *st, struct buf *out, const char *b, size_t k, size_t *room)
{
	size_t taken = 0;
	if (st->skip > 0) {
		size_t n = st->skip < k ? (size_t)st->skip : k;
		st->skip -= n;
		taken = n;
		b += n;
		k -= n;
	}
	size_t n = k;
	if (n > st->remain)
		n = (size_t)st->remain;
	if (n > *room)
		n = *room;
	if (n > 0) {
		size_t at = out->len;
		buf_append(out, b, n);
		for (char *z = memchr(out->data + at, '\0', n); z != NULL;
		     z = memchr(z, '\0', (size_t)(out->data + out->len - z)))
			*z = (char)0x80;
		st->remain -= n;
		*room -= n;
		taken += n;
	}
	return taken;
}

/* Appends up to room converted bytes of the stream to out. Returns true
 * when the stream is finished. */
static bool stream_fill(struct stream *st, struct buf *out, size_t room)
{
	while (st->remain > 0 && room > 0) {
		if (st->slice == NULL || st->slice_off == st->slice_len) {
			if (!src_next(&st->src, &st->slice, &st->slice_len))
				break;
			st->slice_off = 0;
			continue;
		}
		const char *p = st->slice + st->slice_off;
		size_t n = st->slice_len - st->slice_off;
		if (!st->convert) {
			st->slice_off += put(st, out, p, n, &room);
			continue;
		}
		if (st->slice[st->slice_off] == '\n' && is_bare_lf(st->slice, st->slice_off)) {
			if (!st->cr_sent) {
				if (put(st, out, "\r", 1, &room) == 0)
					break;
				st->cr_sent = true;
			}
			if (put(st, out, "\n", 1, &room) == 0)
				break;
			st->cr_sent = false;
			st->slice_off++;
			continue;
		}
		/* Up to the next LF: those bytes go out unchanged. */
		const char *lf = memchr(p + 1, '\n', n - 1);
		size_t run = lf != NULL ? (size_t)(lf - p) : n;
		size_t taken = put(st, out, p, run, &room);
		st->slice_off += taken;
		if (taken < run)
			break;
	}
	return st->remain == 0 || (st->src.done && !st->src.crlf_pending &&
				   (st->slice == NULL || st->slice_off == st->slice_len));
}

/* ---- one message ------------------------------------------------------- */

static void msg_release(struct fetch_msg *m)
{
	mime_free(&m->root);
	if (m->map != NULL)
		munmap(m->map, m->map_size);
	m->map = NULL;
	if (m->have_meta)
		store_message_meta_free(&m->meta);
	*m = (struct fetch_msg){ 0 };
}

/* Gives back mapped pages before `upto` (already sent): the file stays
 * in the page cache, but not in this worker's resident set. */
static void msg_release_pages(struct fetch_msg *m, size_t upto)
{
	if (m->map == NULL || upto < m->released + FETCH_RELEASE_STEP)
		return;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t to = upto / page * page;
	if (to > m->released) {
		(void)madvise(m->map + m->released, to - m->released, MADV_DONTNEED);
		m->released = to;
	}
}

static const struct mime_part *msg_root(struct fetch_msg *m)
{
	if (m->root == NULL)
		m->root = mime_parse(m->data, m->size);
	return m->root;
}

static bool msg_convert(const struct fetch_msg *m)
{
	/* Without the cached fact, converting is always right: a message
	 * without bare LF comes out the same, it only costs a scan. */
	return m->have_extra ? m->extra.bare_lf : true;
}

/* Sets up the source of sec; false when the section does not exist. */
static bool section_source(struct fetch_msg *m, const struct fetch_section *sec, struct src *src)
{
	*src = (struct src){ .kind = SRC_RANGE, .data = m->data, .sec = sec };
	if (sec->part[0] == '\0' && sec->text == FETCH_TEXT_ALL) {
		src->end = m->size;	/* BODY[], RFC822: no parse needed */
		return true;
	}
	const struct mime_part *root = msg_root(m);
	const struct mime_part *p = root, *msg = root;
	if (sec->part[0] != '\0') {
		if (mime_find_section(root, sec->part, &p) < 0)
			return false;
		/* RFC 3501 6.4.5: HEADER, HEADER.FIELDS[.NOT] and TEXT after a
		 * part number address the message a MESSAGE/RFC822 part
		 * encapsulates; on other parts they don't exist. */
		msg = (p->flags & MIME_PART_MESSAGE) && p->children != NULL ? p->children : NULL;
	}
	switch (sec->text) {
	case FETCH_TEXT_ALL:
		src->start = p->body_start;
		src->end = p->body_end;
		return true;
	case FETCH_TEXT_MIME:
		/* RFC 3501 6.4.5: the MIME header of this part. */
		src->start = p->header_start;
		src->end = p->body_start;
		return true;
	case FETCH_TEXT_HEADER:
		if (msg == NULL)
			return false;
		src->start = msg->header_start;
		src->end = msg->body_start;
		return true;
	case FETCH_TEXT_TEXT:
		if (msg == NULL)
			return false;
		src->start = msg->body_start;
		src->end = msg->body_end;
		return true;
	case FETCH_TEXT_HEADER_FIELDS:
	case FETCH_TEXT_HEADER_FIELDS_NOT:
		if (msg == NULL)
			return false;
		src->kind = SRC_FIELDS;
		src->part = msg;
		src->want_blank = header_has_blank_line(m->data, msg->header_start, msg->body_start);
		return true;
	}
	return false;
}

static void write_internaldate(struct buf *out, int64_t t)
{
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	/* RFC 3501 9 date-time; kept in UTC as the store keeps it. */
	buf_printf(out, "INTERNALDATE \"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday,
		   months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void write_flags(struct session *s, struct fetch_msg *m, struct buf *out)
{
	const struct selected *sel = s->selected;
	const struct store_msg *msg = &sel->msgs[m->index];
	buf_append_str(out, "FLAGS (");
	selected_write_flags(sel, msg, !s->rev2 && selected_is_recent(sel, msg), out);
	buf_append_char(out, ')');
	m->flags_done = true;
}

/* ENVELOPE, BODY, BODYSTRUCTURE: cached, or computed from the body. */
static void write_structure(struct fetch_msg *m, enum fetch_item_type type, struct buf *out)
{
	const char *cached = type == FETCH_ENVELOPE ? m->meta.envelope
			     : type == FETCH_BODY   ? m->meta.body
						    : m->meta.bodystructure;
	buf_append_str(out, type == FETCH_ENVELOPE ? "ENVELOPE " : type == FETCH_BODY ? "BODY " : "BODYSTRUCTURE ");
	if (cached != NULL) {
		buf_append_str(out, cached);
		return;
	}
	const struct mime_part *root = msg_root(m);
	if (type == FETCH_ENVELOPE)
		imap_write_envelope(out, root, m->data);
	else
		imap_write_bodystructure(out, root, m->data, type == FETCH_BODYSTRUCTURE);
}

static uint64_t msg_imap_size(struct fetch_msg *m)
{
	if (m->have_extra)
		return m->extra.imap_size;
	struct src src = { .kind = SRC_RANGE, .data = m->data, .end = m->size };
	return src_size(src, true);
}

/* Does the message need its body file? The caller decided need_body for
 * sections; metadata-less structure items need it too. */
static bool msg_needs_body(const struct fetch_cmd *f, const struct fetch_msg *m)
{
	if (f->need_body)
		return true;
	for (size_t i = 0; i < f->req.count; i++) {
		switch (f->req.items[i].type) {
		case FETCH_ENVELOPE:
			if (m->meta.envelope == NULL)
				return true;
			break;
		case FETCH_BODY:
			if (m->meta.body == NULL)
				return true;
			break;
		case FETCH_BODYSTRUCTURE:
			if (m->meta.bodystructure == NULL)
				return true;
			break;
		case FETCH_RFC822_SIZE:
			if (!m->have_extra)
				return true;
			break;
		default:
			break;
		}
	}
	return false;
}

/* Loads what the message needs before anything of it is written, so a
 * message gone from the store is skipped whole. Returns 0, 1 when the
 * message was expunged, -1 after sending a tagged NO. */
static int msg_begin(struct session *s, struct fetch_cmd *f, size_t pos)
{
	struct selected *sel = s->selected;
	struct fetch_msg *m = &f->msg;
	*m = (struct fetch_msg){ .pos = pos, .index = f->set.index[pos] };
	uint32_t uid = sel->msgs[m->index].uid;
	if (f->need_meta) {
		if (store_message_meta_get(s->store, sel->mailbox_id, uid, &m->meta) < 0)
			goto store_failed;
		m->have_meta = true;
		m->have_extra = message_extra_decode(m->meta.extra, m->meta.extra_len, &m->extra) == 0;
	}
	if (msg_needs_body(f, m)) {
		int fd = -1;
		size_t size = 0;
		if (store_message_open(s->store, sel->mailbox_id, uid, &fd, &size) < 0)
			goto store_failed;
		m->data = "";
		if (size > 0) {
			void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
			if (p == MAP_FAILED) {
				log_msg(LOG_ERROR, "fetch_mmap_failed", "session %s uid %u size %zu: %s", s->id,
					uid, size, strerror(errno));
				close(fd);
				msg_release(m);
				session_tagged(s, f->tag, "NO", "[SERVERBUG] FETCH failed; the server log has details");
				return -1;
			}
			m->map = p;
			m->map_size = size;
			m->data = p;
			(void)madvise(p, size, MADV_SEQUENTIAL);
		}
		close(fd);
		m->size = size;
	}
	buf_printf(&f->line, "* %zu FETCH (", m->index + 1);
	/* RFC 3501 6.4.8: UID FETCH responses always carry the UID. */
	if (s->cmd_uid && !fetch_request_has(&f->req, FETCH_UID))
	{
		buf_printf(&f->line, "UID %u", uid);
		m->need_space = true;
	}
	return 0;
store_failed:
	if (store_last_error(s->store, NULL) == STORE_ERR_NOT_FOUND) {
		/* Expunged elsewhere; the client still has its number until we
		 * may tell it (RFC 9051 7.4.1). RFC 5530 EXPUNGEISSUED at the end. */
		msg_release(m);
		f->expunged = true;
		return 1;
	}
	msg_release(m);
	session_store_error(s, f->tag, "FETCH");
	return -1;
}

static void flush_line(struct session *s, struct fetch_cmd *f)
{
	if (f->line.len > 0)
		conn_write(s->conn, f->line.data, f->line.len);
	buf_clear(&f->line);
}

static bool over_bound(struct session *s, const struct fetch_cmd *f)
{
	return conn_output_pending(s->conn) + f->line.len >= FETCH_OUTPUT_BOUND;
}

/* Starts a section item: its name, and its bytes inline or as a stream. */
static void section_begin(struct session *s, struct fetch_cmd *f, const struct fetch_section *sec)
{
	struct fetch_msg *m = &f->msg;
	struct src src;
	buf_append_str(&f->line, sec->name);
	if (sec->partial)
		buf_printf(&f->line, "<%llu>", (unsigned long long)sec->origin);
	if (!section_source(m, sec, &src)) {
		/* No such part: NIL (RFC 3501 9: BODY section SP nstring). */
		buf_append_str(&f->line, " NIL");
		return;
	}
	bool convert = msg_convert(m);
	uint64_t total = src.kind == SRC_RANGE && !convert ? src.end - src.start : src_size(src, convert);
	uint64_t skip = 0, len = total;
	if (sec->partial) {
		/* RFC 3501 6.4.5: past the end is an empty string; a window
		 * reaching beyond the end is cut. */
		skip = sec->origin < total ? sec->origin : total;
		len = total - skip < sec->octets ? total - skip : sec->octets;
	}
	buf_printf(&f->line, " {%llu}\r\n", (unsigned long long)len);
	m->stream = (struct stream){ .src = src, .convert = convert, .skip = skip, .remain = len };
	if (len <= FETCH_INLINE_MAX) {
		stream_fill(&m->stream, &f->line, (size_t)len);
		return;
	}
	/* Sizing may have touched every page: give them back before sending. */
	if (m->map != NULL && m->map_size > FETCH_RELEASE_STEP) {
		(void)madvise(m->map, m->map_size, MADV_DONTNEED);
		m->released = 0;
	}
	flush_line(s, f);
	m->streaming = true;
}

/* Continues the section being streamed; true when it is finished. */
static bool section_continue(struct session *s, struct fetch_cmd *f)
{
	struct fetch_msg *m = &f->msg;
	while (!over_bound(s, f)) {
		buf_clear(&f->chunk);
		bool done = stream_fill(&m->stream, &f->chunk, FETCH_INLINE_MAX);
		if (f->chunk.len > 0)
			conn_write(s->conn, f->chunk.data, f->chunk.len);
		if (m->stream.slice != NULL && m->stream.src.kind == SRC_RANGE)
			msg_release_pages(m, (size_t)(m->stream.slice + m->stream.slice_off - m->data));
		if (done || f->chunk.len == 0) {
			m->streaming = false;
			buf_free(&f->chunk);
			return true;
		}
	}
	return false;
}

/* Writes the items of the current message from m->item on. Returns true
 * when the message is complete. */
static bool msg_continue(struct session *s, struct fetch_cmd *f)
{
	struct fetch_msg *m = &f->msg;
	if (m->streaming && !section_continue(s, f))
		return false;
	const struct store_msg *msg = &s->selected->msgs[m->index];
	while (m->item < f->req.count) {
		if (over_bound(s, f)) {
			flush_line(s, f);
			return false;
		}
		const struct fetch_item *it = &f->req.items[m->item++];
		if (m->need_space)
			buf_append_char(&f->line, ' ');
		m->need_space = true;
		switch (it->type) {
		case FETCH_UID:
			buf_printf(&f->line, "UID %u", msg->uid);
			break;
		case FETCH_FLAGS:
			write_flags(s, m, &f->line);
			break;
		case FETCH_INTERNALDATE:
			write_internaldate(&f->line, msg->internaldate);
			break;
		case FETCH_RFC822_SIZE:
			buf_printf(&f->line, "RFC822.SIZE %llu", (unsigned long long)msg_imap_size(m));
			break;
		case FETCH_ENVELOPE:
		case FETCH_BODY:
		case FETCH_BODYSTRUCTURE:
			write_structure(m, it->type, &f->line);
			break;
		case FETCH_SECTION:
			section_begin(s, f, it->section);
			if (m->streaming && !section_continue(s, f))
				return false;
			break;
		}
	}
	/* RFC 3501 6.4.5: flags changed by setting \Seen SHOULD be included. */
	if (f->seen_set[m->pos] && !m->flags_done) {
		if (m->need_space)
			buf_append_char(&f->line, ' ');
		write_flags(s, m, &f->line);
	}
	buf_append_str(&f->line, ")\r\n");
	flush_line(s, f);
	return true;
}

/* Runs until every message is answered or the output bound is reached. */
static enum step fetch_step(struct session *s, struct fetch_cmd *f)
{
	for (;;) {
		if (f->in_msg) {
			if (!msg_continue(s, f))
				return STEP_MORE;
			msg_release(&f->msg);
			f->in_msg = false;
		}
		if (f->next == f->set.count)
			return STEP_DONE;
		if (over_bound(s, f))
			return STEP_MORE;
		int r = msg_begin(s, f, f->next++);
		if (r < 0)
			return STEP_FAILED;
		f->in_msg = r == 0;
	}
}

/* ---- the command -------------------------------------------------------- */

static void fetch_free(struct fetch_cmd *f)
{
	if (f == NULL)
		return;
	msg_release(&f->msg);
	fetch_request_free(&f->req);
	msg_set_free(&f->set);
	free(f->seen_set);
	buf_free(&f->line);
	buf_free(&f->chunk);
	free(f->tag);
	free(f);
}

static void fetch_finish(struct session *s, struct fetch_cmd *f, enum step step)
{
	if (step == STEP_DONE) {
		if (f->expunged)
			session_tagged(s, f->tag, "NO", "[EXPUNGEISSUED] Some messages were expunged");
		else
			session_ok(s, f->tag, "%sFETCH completed", s->cmd_uid ? "UID " : "");
	}
	bool async = f->async;
	fetch_free(f);
	if (async) {
		s->cmd_state = NULL;
		s->on_drained = NULL;
		s->on_close = NULL;
		session_command_done(s);
	}
}

static void fetch_on_drained(struct session *s)
{
	struct fetch_cmd *f = s->cmd_state;
	enum step step = fetch_step(s, f);
	if (step != STEP_MORE)
		fetch_finish(s, f, step);
}

static void fetch_on_close(struct session *s)
{
	fetch_free(s->cmd_state);
	s->cmd_state = NULL;
	s->on_drained = NULL;
	s->on_close = NULL;
}

/* RFC 3501 6.4.5: BODY[...] without PEEK, RFC822 and RFC822.TEXT set
 * \Seen, in a read-write mailbox only (RFC 3501 6.3.2: EXAMINE is
 * read-only). One store update for all the messages before any is sent,
 * not one transaction per message; the cost is that a connection lost
 * mid-FETCH leaves \Seen on messages it didn't receive. */
static int mark_seen(struct session *s, struct fetch_cmd *f)
{
	struct selected *sel = s->selected;
	f->seen_set = xcalloc(f->set.count ? f->set.count : 1, 1);
	bool sets_seen = false;
	for (size_t i = 0; i < f->req.count; i++) {
		if (f->req.items[i].type == FETCH_SECTION && !f->req.items[i].section->peek)
			sets_seen = true;
	}
	if (!sets_seen || sel->readonly)
		return 0;
	struct msg_set unseen = { .index = xmalloc((f->set.count ? f->set.count : 1) * sizeof(size_t)) };
	for (size_t i = 0; i < f->set.count; i++) {
		if (!(sel->msgs[f->set.index[i]].flags & STORE_FLAG_SEEN))
			unseen.index[unseen.count++] = f->set.index[i];
	}
	if (unseen.count == 0) {
		msg_set_free(&unseen);
		return 0;
	}
	size_t range_count = 0;
	struct store_uid_range *ranges = selected_uid_ranges(sel, &unseen, &range_count);
	msg_set_free(&unseen);
	struct store_flags_result result = { 0 };
	int r = store_flags_update(s->store, sel->mailbox_id, ranges, range_count, STORE_FLAGS_ADD,
				   STORE_FLAG_SEEN, NULL, 0, 0, &result);
	free(ranges);
	if (r < 0)
		return -1;
	for (size_t i = 0; i < result.changed_count; i++) {
		size_t index = selected_find_uid(sel, result.changed[i].uid);
		size_t lo = 0, hi = f->set.count;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (f->set.index[mid] < index)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (index != SIZE_MAX && lo < f->set.count && f->set.index[lo] == index)
			f->seen_set[lo] = 1;
	}
	/* Silent: the FLAGS go in this command's FETCH responses. */
	session_apply_flag_changes(s, result.changed, result.changed_count, true, s->cmd_uid);
	store_flags_result_free(&result);
	return 0;
}

void cmd_fetch(struct session *s, const struct imap_command *cmd)
{
	const char *error = NULL;
	if (cmd->arg_count < 2) {
		session_tagged(s, cmd->tag, "BAD", "FETCH takes a sequence set and data items");
		return;
	}
	if (cmd->arg_count > 2) {
		/* RFC 4466 fetch-modifiers (CHANGEDSINCE) need CONDSTORE. */
		session_tagged(s, cmd->tag, "BAD", "Unexpected arguments after the FETCH data items");
		return;
	}
	struct fetch_cmd *f = xcalloc(1, sizeof(*f));
	if (fetch_parse(&cmd->args[1], &f->req, &error) < 0 ||
	    selected_resolve(s->selected, &cmd->args[0], s->cmd_uid, &f->set, &error) < 0) {
		session_tagged(s, cmd->tag, "BAD", "%s", error);
		fetch_free(f);
		return;
	}
	f->tag = xstrdup(cmd->tag);
	for (size_t i = 0; i < f->req.count; i++) {
		switch (f->req.items[i].type) {
		case FETCH_ENVELOPE:
		case FETCH_BODY:
		case FETCH_BODYSTRUCTURE:
		case FETCH_RFC822_SIZE:
			f->need_meta = true;
			break;
		case FETCH_SECTION:
			/* The metadata says whether bare LFs need converting. */
			f->need_body = true;
			f->need_meta = true;
			break;
		default:
			break;
		}
	}
	if (mark_seen(s, f) < 0) {
		session_store_error(s, f->tag, "FETCH");
		fetch_free(f);
		return;
	}
	enum step step = fetch_step(s, f);
	if (step != STEP_MORE) {
		fetch_finish(s, f, step);
		return;
	}
	/* The rest goes out as the client reads: no other command runs until
	 * then (RFC 9051 5.5: responses of one command are not interleaved). */
	f->async = true;
	s->busy = true;
	s->cmd_state = f;
	s->on_drained = fetch_on_drained;
	s->on_close = fetch_on_close;
}
