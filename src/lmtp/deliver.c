#include "lmtp/deliver.h"
#include "core/xalloc.h"
#include "imapd/message_meta.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

/* The one mapping from store errors to delivery outcomes. Anything the
 * server or the machine could fix later is temporary, so the MTA keeps the
 * message queued (RFC 5321 4.2.5: a 4yz reply means try again). */
static enum lmtp_deliver_status status_of(enum store_error error)
{
	switch (error) {
	case STORE_ERR_QUOTA:
		return LMTP_DELIVER_QUOTA;
	case STORE_ERR_INVALID:
		return LMTP_DELIVER_REFUSED;
	case STORE_ERR_NONE:
	case STORE_ERR_NOT_FOUND:
	case STORE_ERR_EXISTS:
	case STORE_ERR_INVALID_NAME:
	case STORE_ERR_NOT_ALLOWED:
	case STORE_ERR_LIMIT:
	case STORE_ERR_BUSY:
	case STORE_ERR_IO:
	case STORE_ERR_VERSION:
		break;
	}
	return LMTP_DELIVER_TEMPFAIL;
}

static int fail(struct lmtp_deliver_result *r, struct store *st, const char *what)
{
	const char *text = NULL;
	enum store_error error = store_last_error(st, &text);
	r->status = status_of(error);
	r->error = xasprintf("%s: %s: %s", what, store_error_name(error), text ? text : "");
	return -1;
}

int lmtp_deliver_open(const char *data_dir, const char *user, struct store **st_r,
		      struct lmtp_deliver_result *r)
{
	*r = (struct lmtp_deliver_result){ .status = LMTP_DELIVER_TEMPFAIL, .mailbox = "INBOX" };
	enum store_error error;
	char *text = NULL;
	if (store_open(data_dir, user, st_r, &error, &text) < 0) {
		r->status = error == STORE_ERR_QUOTA ? LMTP_DELIVER_QUOTA : LMTP_DELIVER_TEMPFAIL;
		r->error = xasprintf("open: %s: %s", store_error_name(error), text ? text : "");
		free(text);
		return -1;
	}
	return 0;
}

int lmtp_deliver(const char *data_dir, const char *user, const char *mailbox, const char *data,
		 size_t len, struct lmtp_deliver_result *r)
{
	struct store *st = NULL;
	if (lmtp_deliver_open(data_dir, user, &st, r) < 0)
		return -1;
	int ret = lmtp_deliver_store(st, mailbox, data, len, r);
	store_close(&st);
	return ret;
}

int lmtp_deliver_store(struct store *st, const char *mailbox, const char *data, size_t len,
		       struct lmtp_deliver_result *r)
{
	*r = (struct lmtp_deliver_result){ .status = LMTP_DELIVER_TEMPFAIL, .mailbox = "INBOX" };
	enum store_error error;
	struct store_status status;
	int ret = -1;
	bool found = false;
	if (mailbox != NULL && strcmp(mailbox, "INBOX") != 0) {
		if (store_mailbox_status(st, mailbox, UINT32_MAX, &status) == 0) {
			found = true;
			r->mailbox = mailbox;
		} else {
			error = store_last_error(st, NULL);
			/* Dovecot's lmtp_save_to_detail_mailbox behaves the
			 * same way: a folder that isn't there means INBOX. */
			if (error != STORE_ERR_NOT_FOUND && error != STORE_ERR_INVALID_NAME) {
				ret = fail(r, st, "mailbox");
				goto out;
			}
			r->fell_back = true;
		}
	}
	if (!found && store_mailbox_status(st, "INBOX", UINT32_MAX, &status) < 0) {
		ret = fail(r, st, "INBOX");
		goto out;
	}
	struct store_message_meta meta;
	message_meta_compute(data, len, &meta);
	struct store_append_msg msg = { .data = data, .size = len, .meta = &meta };
	if (store_append(st, status.mailbox_id, &msg, 1, &r->uidvalidity, &r->uid) < 0) {
		ret = fail(r, st, "append");
	} else {
		r->status = LMTP_DELIVER_OK;
		ret = 0;
	}
	store_message_meta_free(&meta);
out:
	return ret;
}

void lmtp_deliver_result_free(struct lmtp_deliver_result *r)
{
	free(r->error);
	r->error = NULL;
}
