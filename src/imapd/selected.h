/* The selected mailbox of a session (RFC 9051 3.3): the messages the client
 * knows, in sequence-number order, and the bookkeeping that keeps sequence
 * numbers valid while other sessions, LMTP and `postern deliver` change the
 * mailbox (RFC 9051 7.4.1 and 5.5: no EXPUNGE while a FETCH, STORE or SEARCH
 * runs, so a client's numbers never shift under a command). */
#ifndef POSTERN_IMAPD_SELECTED_H
#define POSTERN_IMAPD_SELECTED_H

#include "core/buf.h"
#include "imap/parser.h"
#include "imap/seqset.h"
#include "imapd/packed_view.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct session;

struct selected {
	uint64_t mailbox_id;
	char *name;			/* UTF-8, '/'-separated */
	char mailboxid[STORE_OBJECTID_SIZE];	/* RFC 8474 MAILBOXID */
	bool readonly;			/* EXAMINE */
	uint32_t uidvalidity;
	uint32_t uidnext;		/* as last reported */
	uint64_t modseq;		/* changes up to this one are reflected in msgs */
	struct store_msg *msgs;		/* msgs[i] is sequence number i + 1, UIDs ascending */
	size_t count;
	size_t cap;
	/* In IDLE the messages live here instead (msgs is NULL and count is
	 * kept in step): see packed_view.h. */
	struct packed_view packed;
	bool is_packed;
	struct store_keywords keywords;	/* names of the keyword bits */
	size_t keywords_announced;	/* keyword count last sent in FLAGS */
	uint32_t recent_above;		/* IMAP4rev1 \Recent: UIDs above are recent here */
	/* Expunged by someone else while announcing was not allowed; sent at
	 * the next command that allows EXPUNGE responses. */
	uint32_t *pending_expunges;
	size_t pending_count;
	/* RFC 5182: the result SEARCH RETURN (SAVE) saved, as ascending UIDs.
	 * "$" names those still in the view, so expunged messages leave it
	 * without bookkeeping (UIDs are never reused). Empty until a SAVE, and
	 * gone with the selection: SELECT, EXAMINE, CLOSE and UNSELECT end it. */
	uint32_t *saved_uids;
	size_t saved_count;
};

/* A set of messages resolved against the selected mailbox: indexes into
 * msgs (sequence number - 1), ascending, without duplicates. */
struct msg_set {
	size_t *index;
	size_t count;
};
void msg_set_free(struct msg_set *set);

/* Resolves a sequence set or UID set argument. Returns 0, or -1 with a
 * static message in *error_r for bad syntax or (sequence numbers only) a
 * number beyond the mailbox (RFC 9051 6.4.4: BAD). UIDs that don't exist
 * are simply absent from the result (RFC 9051 6.4.8). "$" is the saved
 * search result (RFC 5182 2.1), the same messages for either form; before
 * any SAVE it is empty, which is not an error. */
int selected_resolve(const struct selected *sel, const struct imap_arg *arg, bool uid,
		     struct msg_set *set_r, const char **error_r);
/* Replaces the saved search result by uids (ascending; copied). */
void selected_save_result(struct selected *sel, const uint32_t *uids, size_t count);
/* The index of uid in msgs, or SIZE_MAX. */
size_t selected_find_uid(const struct selected *sel, uint32_t uid);
/* UID ranges of the messages in set, for the store. Caller frees. */
struct store_uid_range *selected_uid_ranges(const struct selected *sel, const struct msg_set *set,
					    size_t *count_r);
/* "\Seen \Flagged $Label" (without parentheses), and \Recent when the
 * message is recent for this session. */
void selected_write_flags(const struct selected *sel, const struct store_msg *msg, bool recent,
			  struct buf *out);
bool selected_is_recent(const struct selected *sel, const struct store_msg *msg);

/* Sends untagged updates for changes made elsewhere: new messages as
 * EXISTS (and RECENT), flag changes as FETCH (FLAGS), and, when
 * allow_expunge, EXPUNGE responses (also the ones held back earlier). */
void session_sync(struct session *s, bool allow_expunge);
/* Applies flag changes the session made itself, sending FETCH unless silent. */
void session_apply_flag_changes(struct session *s, const struct store_msg *changed, size_t count,
				bool silent, bool uid_command);
/* Removes expunged UIDs from the view, sending "* N EXPUNGE" for each. */
void session_apply_expunges(struct session *s, const uint32_t *uids, size_t count);

/* RFC 7162 3.1: a CONDSTORE enabling command (FETCH MODSEQ or
 * CHANGEDSINCE, SEARCH MODSEQ, STORE UNCHANGEDSINCE) ran. Sets
 * s->condstore; the first time, with a mailbox selected, the client also
 * gets "* OK [HIGHESTMODSEQ n]" so it knows where its view stands. */
void session_enable_condstore(struct session *s);

/* RFC 7162 3.2.6: "* VANISHED (EARLIER) uids" for the UIDs of uid_set
 * (a UID set argument; '*' is the highest UID the mailbox ever gave)
 * expunged with a modseq above since. When the store's expunge log no
 * longer reaches back to since, every UID of the set below UIDNEXT that
 * is not in the view is reported instead (RFC 7162 3.2.5.2 allows
 * reporting more than vanished). UIDs still in the view are left out:
 * their VANISHED comes when the view catches up. Sends nothing when there
 * are none. 0, or -1 when the store failed (nothing sent). */
int selected_send_vanished_earlier(struct session *s, const struct seqset *uid_set, uint64_t since);

/* Writes uids (in the order given) as a compact set: "4,7:9". */
void uid_set_write(struct buf *out, const uint32_t *uids, size_t count);

/* Entering IDLE: msgs becomes the packed form. */
void selected_pack(struct selected *sel);
/* Leaving IDLE: the full view again, dates, sizes and modseqs read from
 * the store. Returns -1 (view still packed) if the store fails. */
int selected_unpack(struct session *s);

void selected_free(struct selected **sel);
/* Frees the worker's shared cache of the last changes read (exit). */
struct imapd_context;
void session_sync_cache_free(struct imapd_context *ctx);

#endif
