/* APPEND (RFC 9051 6.3.12) with MULTIAPPEND (RFC 3502: several messages,
 * all or nothing) and APPENDUID (RFC 4315).
 *
 * A message literal comes in one of two ways. Small ones are in the command
 * (memory). Ones above LIMIT_STREAM_THRESHOLD were streamed by the session
 * into store blobs while the command was read (a streamed argument, its
 * blob in s->stream_blobs in order): here they are finished (fsync), mapped
 * to compute the cached metadata, and handed to store_append as blobs, so a
 * 50 MB message never sits in the heap. The mapping costs page cache, not
 * heap: while the metadata is computed the touched pages count in the
 * worker's RSS (clean file pages, dropped at munmap). */
#include "imapd/flags.h"
#include "imapd/message_meta.h"
#include "imapd/search_indexer.h"
#include "imapd/selected.h"
#include "imapd/session.h"
#include "core/log.h"
#include "core/xalloc.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct append_item {
	struct flag_list flags;
	int64_t internaldate;
	const struct imap_arg *literal;
	struct store_blob *blob;	/* a streamed literal's, owned by the session */
	struct store_message_meta meta;
};

/* "dd-Mon-yyyy hh:mm:ss +zzzz" (RFC 9051 9 date-time; the day may be one
 * digit or space-padded). Returns 0 and the Unix time, or -1. */
static int parse_date_time(const char *text, int64_t *time_r)
{
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	int day, year, hour, min, sec, consumed = 0;
	char month[4], sign;
	unsigned zone;
	while (*text == ' ')
		text++;
	if (sscanf(text, "%2d-%3s-%4d %2d:%2d:%2d %c%4u%n", &day, month, &year, &hour, &min, &sec,
		   &sign, &zone, &consumed) != 8 || text[consumed] != '\0' || (sign != '+' && sign != '-'))
		return -1;
	int mon = -1;
	for (int i = 0; i < 12; i++) {
		if (strcasecmp(month, months[i]) == 0)
			mon = i;
	}
	if (mon < 0 || day < 1 || day > 31 || year < 1900 || hour > 23 || min > 59 || sec > 60 ||
	    zone % 100 > 59 || zone > 2359)
		return -1;
	struct tm tm = { .tm_year = year - 1900, .tm_mon = mon, .tm_mday = day,
			 .tm_hour = hour, .tm_min = min, .tm_sec = sec };
	time_t t = timegm(&tm);
	int offset = (int)(zone / 100) * 3600 + (int)(zone % 100) * 60;
	*time_r = (int64_t)t - (sign == '+' ? offset : -offset);
	return 0;
}

/* Reads one [flags] [date-time] literal group starting at args[*i]. */
static int parse_item(const struct imap_command *cmd, size_t *i, bool utf8, struct append_item *item,
		      const char **error_r)
{
	*item = (struct append_item){ 0 };
	if (*i < cmd->arg_count && imap_arg_is_list(&cmd->args[*i])) {
		const struct imap_arg *list = &cmd->args[*i];
		if (flags_parse(list->list, list->list_count, &item->flags, error_r) < 0)
			return -1;
		(*i)++;
	}
	if (*i < cmd->arg_count && cmd->args[*i].type == IMAP_ARG_STRING) {
		if (parse_date_time(cmd->args[*i].str, &item->internaldate) < 0) {
			*error_r = "Invalid date-time (expected \"dd-Mon-yyyy hh:mm:ss +zzzz\")";
			return -1;
		}
		(*i)++;
	}
	/* RFC 6855 4: UTF8 (~{n}) carries a message with UTF-8 headers. */
	if (utf8 && *i + 1 < cmd->arg_count && imap_arg_is_atom(&cmd->args[*i]) &&
	    strcasecmp(cmd->args[*i].str, "UTF8") == 0 && imap_arg_is_list(&cmd->args[*i + 1]) &&
	    cmd->args[*i + 1].list_count == 1 && cmd->args[*i + 1].list[0].type == IMAP_ARG_LITERAL) {
		item->literal = &cmd->args[*i + 1].list[0];
		*i += 2;
		return 0;
	}
	if (*i >= cmd->arg_count || cmd->args[*i].type != IMAP_ARG_LITERAL) {
		*error_r = "APPEND needs the message as a literal";
		return -1;
	}
	/* RFC 3516 4.4: with BINARY a message may come as literal8 (~{n}),
	 * NULs and all; it is stored as sent. */
	item->literal = &cmd->args[*i];
	(*i)++;
	return 0;
}

static void free_items(struct append_item *items, size_t count)
{
	for (size_t k = 0; k < count; k++) {
		flag_list_free(&items[k].flags);
		store_message_meta_free(&items[k].meta);
	}
	free(items);
}

/* Finishes a streamed message and computes its metadata from a read-only
 * mapping of the file. 0, or -1 with the tagged NO sent. */
static int blob_meta(struct session *s, const char *tag, struct store_blob *blob,
		     struct store_message_meta *meta_r)
{
	int fd;
	if (store_blob_finish(s->store, blob) < 0 || store_blob_open_read(s->store, blob, &fd) < 0) {
		session_store_error(s, tag, "APPEND");
		return -1;
	}
	size_t size = (size_t)store_blob_size(blob);
	void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	int saved = errno;
	close(fd);
	if (map == MAP_FAILED) {
		/* Not a store error: the file is there, the mapping isn't. */
		struct log_line l;
		log_begin(&l, LOG_ERROR, "append_map_failed");
		log_str(&l, "session", s->id);
		log_uint(&l, "size", size);
		log_str(&l, "error", strerror(saved));
		log_end(&l);
		session_tagged(s, tag, "NO", "[SERVERBUG] APPEND failed; the server log has details");
		return -1;
	}
	/* One pass over the headers and MIME structure, front to back. */
	(void)madvise(map, size, MADV_SEQUENTIAL);
	message_meta_compute(map, size, meta_r);
	munmap(map, size);
	return 0;
}

static void reply_appenduid(struct session *s, const char *tag, uint32_t uidvalidity,
			    const uint32_t *uids, size_t count)
{
	struct buf set = BUF_INIT;
	uid_set_write(&set, uids, count);
	session_ok(s, tag, "[APPENDUID %u %s] APPEND completed", uidvalidity, set.data);
	buf_free(&set);
}

void cmd_append(struct session *s, const struct imap_command *cmd)
{
	const char *error = NULL;
	struct buf name = BUF_INIT;
	if (cmd->arg_count < 2 || session_mailbox_from_wire(s, &cmd->args[0], &name, &error) < 0) {
		session_tagged(s, cmd->tag, "BAD", "%s", error ? error : "APPEND takes a mailbox and a message");
		buf_free(&name);
		return;
	}
	if (strncasecmp(name.data, "INBOX", 5) == 0 && (name.len == 5 || name.data[5] == '/'))
		memcpy(name.data, "INBOX", 5);
	struct append_item *items = NULL;
	size_t count = 0, streamed = 0;
	for (size_t i = 1; i < cmd->arg_count;) {
		items = xrealloc(items, (count + 1) * sizeof(*items));
		if (parse_item(cmd, &i, s->utf8, &items[count], &error) < 0) {
			flag_list_free(&items[count].flags);
			free_items(items, count);
			session_tagged(s, cmd->tag, "BAD", "%s", error);
			buf_free(&name);
			return;
		}
		if (imap_arg_is_streamed(items[count].literal)) {
			/* The session streamed every big literal of this command
			 * and nothing else, and the only other place a literal may
			 * sit is a flag list, refused above: one blob each. */
			assert(streamed < s->stream_blob_count || s->stream_failed);
			if (!s->stream_failed)
				items[count].blob = s->stream_blobs[streamed];
			streamed++;
		}
		count++;
	}
	struct store_append_msg *msgs = xcalloc(count, sizeof(*msgs));
	if (s->stream_failed) {
		/* Writing a streamed message failed (disk full, I/O): the
		 * store's last error is still that one. */
		session_store_error(s, cmd->tag, "APPEND");
		goto out;
	}
	/* The mailbox first: no need to parse 50 MB for a TRYCREATE. */
	struct store_status status;
	if (store_mailbox_status(s->store, name.data, UINT32_MAX, &status) < 0) {
		if (store_last_error(s->store, NULL) == STORE_ERR_NOT_FOUND)
			/* RFC 9051 6.3.12: TRYCREATE tells the client CREATE would help. */
			session_tagged(s, cmd->tag, "NO", "[TRYCREATE] No such mailbox");
		else
			session_store_error(s, cmd->tag, "APPEND");
		goto out;
	}
	for (size_t k = 0; k < count; k++) {
		if (items[k].literal->len == 0) {
			session_tagged(s, cmd->tag, "NO", "Can't save an empty message");
			goto out;
		}
		msgs[k] = (struct store_append_msg){
			.flags = items[k].flags.flags,
			.keywords = items[k].flags.keywords,
			.keyword_count = items[k].flags.keyword_count,
			.internaldate = items[k].internaldate,
			.meta = &items[k].meta,
		};
		if (items[k].blob != NULL) {
			if (blob_meta(s, cmd->tag, items[k].blob, &items[k].meta) < 0)
				goto out;
			msgs[k].blob = items[k].blob;
		} else {
			message_meta_compute(items[k].literal->str, items[k].literal->len, &items[k].meta);
			msgs[k].data = items[k].literal->str;
			msgs[k].size = items[k].literal->len;
		}
	}
	uint32_t uidvalidity = 0;
	uint32_t *uids = xcalloc(count, sizeof(uint32_t));
	if (store_append(s->store, status.mailbox_id, msgs, count, &uidvalidity, uids) < 0)
		session_store_error(s, cmd->tag, "APPEND");
	else {
		search_indexer_push(s->ctx->indexer, s->user);
		reply_appenduid(s, cmd->tag, uidvalidity, uids, count);
	}
	free(uids);
out:
	free(msgs);
	free_items(items, count);
	buf_free(&name);
}
