/* Putting one message into one user's store: the common end of LMTP and
 * `postern deliver`. It opens the user's store, picks the mailbox (falling
 * back to INBOX), computes the message's metadata and appends it. Store
 * errors become a delivery status here, in one place; the callers turn the
 * status into an LMTP reply or an exit code.
 *
 * Blocks on disk I/O and on the user's write lock (store.h): LMTP calls it
 * on its delivery threads (lmtp/pool.h), never on the event loop. */
#ifndef POSTERN_LMTP_DELIVER_H
#define POSTERN_LMTP_DELIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

enum lmtp_deliver_status {
	LMTP_DELIVER_OK,	/* on disk: committed and fsynced */
	LMTP_DELIVER_TEMPFAIL,	/* disk, database, lock or permissions: retry later */
	LMTP_DELIVER_QUOTA,	/* the user's quota would be exceeded */
	LMTP_DELIVER_REFUSED,	/* the store refused this message (permanent) */
};

struct lmtp_deliver_result {
	enum lmtp_deliver_status status;
	const char *mailbox;	/* where it went: the requested name or "INBOX" */
	bool fell_back;		/* the requested mailbox did not exist */
	uint32_t uidvalidity;
	uint32_t uid;
	char *error;		/* details for the log (never for a client), or NULL */
};

/* Appends data (len > 0) to mailbox (NULL: INBOX) of user under data_dir.
 * A mailbox that does not exist or whose name is invalid means INBOX, and
 * result->fell_back says so. Returns 0 when delivered, -1 otherwise; in
 * both cases result is filled and must be freed with
 * lmtp_deliver_result_free. result->mailbox points at the mailbox argument
 * or at a static string. */
int lmtp_deliver(const char *data_dir, const char *user, const char *mailbox, const char *data,
		 size_t len, struct lmtp_deliver_result *result);
/* The same in two steps, for a caller that keeps the store open across
 * deliveries (the LMTP delivery threads): lmtp_deliver_open opens user's
 * store into *st_r (0), or fills result with the failure (-1, free it);
 * lmtp_deliver_store appends with an open handle and fills result as
 * lmtp_deliver does. */
int lmtp_deliver_open(const char *data_dir, const char *user, struct store **st_r,
		      struct lmtp_deliver_result *result);
int lmtp_deliver_store(struct store *st, const char *mailbox, const char *data, size_t len,
		       struct lmtp_deliver_result *result);
void lmtp_deliver_result_free(struct lmtp_deliver_result *result);

#endif
