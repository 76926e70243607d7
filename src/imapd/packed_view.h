/* The selected mailbox of a session in IDLE, packed. While idling a session
 * only numbers messages (EXISTS, EXPUNGE, FETCH n FLAGS) and compares their
 * flags, so it keeps runs of consecutive UIDs and one flag byte per message
 * instead of a 40-byte store_msg: an IDLE session on a 50,000-message
 * INBOX holds about 50 KB instead of 2 MB. Dates, sizes and modseqs come
 * back from the store when IDLE ends (selected_unpack). */
#ifndef POSTERN_IMAPD_PACKED_VIEW_H
#define POSTERN_IMAPD_PACKED_VIEW_H

#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

struct packed_view {
	struct store_uid_range *runs;	/* ascending, disjoint, never adjacent */
	size_t run_count;
	size_t run_cap;
	uint8_t *flags;			/* flags[i]: store_flag bits of message i + 1 */
	uint64_t *keywords;		/* keywords[i], or NULL while every message has none */
	size_t count;
	size_t cap;
};

/* msgs: UIDs ascending. */
void packed_view_pack(struct packed_view *p, const struct store_msg *msgs, size_t count);
void packed_view_free(struct packed_view *p);

/* Index (sequence number - 1) of uid, or SIZE_MAX. */
size_t packed_view_find(const struct packed_view *p, uint32_t uid);
uint32_t packed_view_last_uid(const struct packed_view *p);
/* uid, flags and keywords of message index; the other fields are zero. */
void packed_view_get(const struct packed_view *p, size_t index, struct store_msg *msg_r);
void packed_view_set(struct packed_view *p, size_t index, uint32_t flags, uint64_t keywords);
void packed_view_remove(struct packed_view *p, size_t index);
/* msg->uid must be above packed_view_last_uid. */
void packed_view_append(struct packed_view *p, const struct store_msg *msg);
size_t packed_view_count_above(const struct packed_view *p, uint32_t uid);

/* The full view again: for each packed message the store's row (rows: the
 * mailbox now, UIDs ascending) with the packed flags and keywords, which
 * are what the client was told. A row changed after known_modseq gets
 * known_modseq, so the next sync still reports the change; a message the
 * store no longer has keeps a row of its own until that sync announces
 * the expunge. Returns count entries (malloc'd; count may be 0). */
struct store_msg *packed_view_unpack(const struct packed_view *p, const struct store_msg *rows,
				     size_t row_count, uint64_t known_modseq, size_t *count_r);

#endif
