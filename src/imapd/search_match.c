/* SEARCH evaluation: one message at a time, loading what the keys need. */
#include "imapd/search_match.h"

#include "core/log.h"
#include "core/xalloc.h"
#include "mime/mime.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- RFC 5322 dates -------------------------------------------------- */

static int month_from_name(const char *s, size_t len)
{
	static const char names[12][4] = {
		"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
	};
	if (len < 3)
		return 0;
	for (int i = 0; i < 12; i++) {
		if (strncasecmp(s, names[i], 3) == 0)
			return i + 1;
	}
	return 0;
}

static unsigned atoi_len(const char *s, size_t len)
{
	unsigned n = 0;
	for (size_t i = 0; i < len; i++)
		n = n * 10 + (unsigned)(s[i] - '0');
	return n;
}

struct date_token {
	const char *s;
	size_t len;
	bool digits;
};

int search_parse_sent_date(const char *value, size_t len, int64_t *day_r)
{
	/* Tokens are runs of letters or of digits; comments (RFC 5322 3.2.2)
	 * are skipped, so "(Tue) 1 Jul 2003" reads. The first tokens give the
	 * date: [day-name] day month year. */
	struct date_token tok[8];
	size_t ntok = 0, depth = 0;
	for (size_t i = 0; i < len && ntok < 8;) {
		char ch = value[i];
		if (ch == '(') {
			depth++, i++;
			continue;
		}
		if (ch == ')' && depth > 0) {
			depth--, i++;
			continue;
		}
		bool digit = ch >= '0' && ch <= '9';
		bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
		if (depth > 0 || (!digit && !alpha)) {
			i++;
			continue;
		}
		size_t start = i;
		while (i < len && ((digit && value[i] >= '0' && value[i] <= '9') ||
				   (alpha && ((value[i] >= 'a' && value[i] <= 'z') || (value[i] >= 'A' && value[i] <= 'Z')))))
			i++;
		tok[ntok++] = (struct date_token){ value + start, i - start, digit };
	}
	size_t t = 0;
	if (t < ntok && !tok[t].digits && month_from_name(tok[t].s, tok[t].len) == 0)
		t++;	/* day name */
	if (t + 3 > ntok)
		return -1;
	if (!tok[t].digits || tok[t].len > 2 || tok[t + 1].digits || !tok[t + 2].digits ||
	    tok[t + 2].len < 2 || tok[t + 2].len > 4)
		return -1;
	unsigned day = atoi_len(tok[t].s, tok[t].len);
	int month = month_from_name(tok[t + 1].s, tok[t + 1].len);
	unsigned year = atoi_len(tok[t + 2].s, tok[t + 2].len);
	if (month == 0 || day < 1 || day > 31)
		return -1;
	/* RFC 5322 4.3: two-digit years below 50 are 20xx, others and
	 * three-digit years are offset from 1900. */
	if (tok[t + 2].len == 2)
		year += year < 50 ? 2000 : 1900;
	else if (tok[t + 2].len == 3)
		year += 1900;
	*day_r = search_days_from_civil(year, (unsigned)month, day);
	return 0;
}

/* ---- planning -------------------------------------------------------- */

/* What evaluating a key costs, in the order keys are tried. */
enum key_cost {
	COST_VIEW,	/* from the selected view in memory */
	COST_INDEX,	/* one index row (the save date), or the search index */
	COST_HEADER,	/* the message file, mapped and parsed */
	COST_BODY,	/* and its text parts decoded */
};

static void fold_needle(struct search_key *key)
{
	struct buf folded = BUF_INIT;
	search_fold(key->str, key->str_len, &folded);
	free(key->str);
	key->str_len = folded.len;
	key->str = folded.data != NULL ? buf_steal(&folded) : xcalloc(1, 1);
}

/* RFC 5182 2.1: "$" and "UID $" name the same messages, the saved
 * result; it becomes a UID key over the saved UIDs (empty before any
 * SAVE: it matches nothing). */
static void saved_as_uids(const struct selected *sel, struct search_key *key)
{
	key->type = SEARCH_UID;
	key->set.is_saved = false;
	free(key->set.ranges);
	key->set.ranges = xmalloc((sel->saved_count ? sel->saved_count : 1) * sizeof(*key->set.ranges));
	key->set.count = 0;
	for (size_t i = 0; i < sel->saved_count; i++) {
		uint32_t uid = sel->saved_uids[i];
		struct seq_range *last = key->set.count ? &key->set.ranges[key->set.count - 1] : NULL;
		if (last != NULL && last->hi + 1 == uid)
			last->hi = uid;
		else
			key->set.ranges[key->set.count++] = (struct seq_range){ uid, uid };
	}
	/* Built sorted and disjoint, with no '*' to resolve. */
	key->set.sorted = true;
}

/* The store field that answers key, or -1. Only needles the index gives
 * the matcher's own answer for: no NUL (the header cache joins a field's
 * instances with NUL), and for full text exact trigram phrases (at least
 * 3 characters of UTF-8 the tokenizer reads losslessly). */
static int index_field(const struct search_key *key)
{
	if (key->type == SEARCH_HEADER) {
		if (memchr(key->str, '\0', key->str_len) != NULL)
			return -1;
		return search_text_field_id(key->field, strlen(key->field));
	}
	if (key->type != SEARCH_BODY && key->type != SEARCH_TEXT)
		return -1;
	size_t chars;
	if (!search_text_index_needle(key->str, key->str_len, &chars) || chars < 3)
		return -1;
	return key->type == SEARCH_BODY ? STORE_SEARCH_BODY : STORE_SEARCH_TEXT;
}

static enum key_cost plan_key(struct search_plan *plan, struct search_key *key)
{
	const struct selected *sel = plan->sel;
	switch (key->type) {
	case SEARCH_AND: {
		enum key_cost *costs = xmalloc((key->child_count ? key->child_count : 1) * sizeof(*costs));
		enum key_cost max = COST_VIEW;
		for (size_t i = 0; i < key->child_count; i++) {
			costs[i] = plan_key(plan, key->children[i]);
			if (costs[i] > max)
				max = costs[i];
		}
		/* Stable bucket sort by cost (four values, any number of keys):
		 * a cheap key that fails spares the expensive ones (AND is
		 * commutative, RFC 3501 6.4.4). */
		struct search_key **sorted = xmalloc((key->child_count ? key->child_count : 1) * sizeof(*sorted));
		size_t n = 0;
		for (enum key_cost c = COST_VIEW; c <= COST_BODY; c++) {
			for (size_t i = 0; i < key->child_count; i++) {
				if (costs[i] == c)
					sorted[n++] = key->children[i];
			}
		}
		memcpy(key->children, sorted, n * sizeof(*sorted));
		free(sorted);
		free(costs);
		return max;
	}
	case SEARCH_OR: {
		enum key_cost a = plan_key(plan, key->children[0]);
		enum key_cost b = plan_key(plan, key->children[1]);
		if (b < a) {
			struct search_key *t = key->children[0];
			key->children[0] = key->children[1];
			key->children[1] = t;
		}
		return a > b ? a : b;
	}
	case SEARCH_NOT:
		return plan_key(plan, key->children[0]);
	case SEARCH_SEQSET:
		if (key->set.is_saved) {
			saved_as_uids(sel, key);
			return COST_VIEW;
		}
		seqset_resolve(&key->set, (uint32_t)sel->count);
		return COST_VIEW;
	case SEARCH_UID:
		if (key->set.is_saved) {
			saved_as_uids(sel, key);
			return COST_VIEW;
		}
		/* RFC 9051 6.4.8: '*' is the highest UID in use; in an empty
		 * mailbox it matches nothing. */
		seqset_resolve(&key->set, sel->count > 0 ? sel->msgs[sel->count - 1].uid : 0);
		return COST_VIEW;
	case SEARCH_KEYWORD:
	case SEARCH_UNKEYWORD:
		/* Keywords are compared without case like flags (RFC 9051 2.3.2
		 * names them atoms; clients differ in case, servers fold). A name
		 * the mailbox never had matches nothing. */
		key->number = UINT32_MAX;
		for (size_t i = 0; i < sel->keywords.count && i < STORE_MAX_KEYWORDS; i++) {
			if (strcasecmp(sel->keywords.names[i], key->str) == 0) {
				key->number = (uint32_t)i;
				break;
			}
		}
		return COST_VIEW;
	case SEARCH_SAVEDBEFORE:
	case SEARCH_SAVEDON:
	case SEARCH_SAVEDSINCE:
	case SEARCH_EMAILID:
		return COST_INDEX;
	case SEARCH_SENTBEFORE:
	case SEARCH_SENTON:
	case SEARCH_SENTSINCE:
		return COST_HEADER;
	case SEARCH_HEADER:
		fold_needle(key);
		return index_field(key) >= 0 ? COST_INDEX : COST_HEADER;
	case SEARCH_BODY:
	case SEARCH_TEXT:
		fold_needle(key);
		return index_field(key) >= 0 ? COST_INDEX : COST_BODY;
	case SEARCH_ALL:
	case SEARCH_FLAG:
	case SEARCH_UNFLAG:
	case SEARCH_NEW:
	case SEARCH_OLD:
	case SEARCH_RECENT:
	case SEARCH_LARGER:
	case SEARCH_SMALLER:
	case SEARCH_BEFORE:
	case SEARCH_ON:
	case SEARCH_SINCE:
	case SEARCH_OLDER:
	case SEARCH_YOUNGER:
	case SEARCH_MODSEQ:
	case SEARCH_THREADID:
		return COST_VIEW;
	}
	return COST_BODY;
}

static void collect_indexed(struct search_plan *plan, const struct search_key *key, size_t *cap)
{
	for (size_t i = 0; i < key->child_count; i++)
		collect_indexed(plan, key->children[i], cap);
	int field = index_field(key);
	if (field < 0)
		return;
	if (plan->indexed_count == *cap) {
		*cap = *cap ? *cap * 2 : 4;
		plan->indexed = xrealloc(plan->indexed, *cap * sizeof(*plan->indexed));
	}
	plan->indexed[plan->indexed_count++] = (struct search_index_key){
		.key = key,
		.term = { .field = (enum store_search_field)field, .needle = key->str,
			  .needle_len = key->str_len },
	};
}

/* Index trouble costs speed, never answers: every message is read. */
static void lookup_indexed(struct search_plan *plan)
{
	size_t count = plan->indexed_count;
	struct store_search_term *terms = xcalloc(count, sizeof(*terms));
	for (size_t i = 0; i < count; i++)
		terms[i] = plan->indexed[i].term;
	if (store_search_index(plan->store, plan->sel->mailbox_id, terms, count, &plan->coverage) < 0) {
		const char *text;
		store_last_error(plan->store, &text);
		log_msg(LOG_WARN, "search_index", "index lookup failed, reading messages: %s", text);
		free(plan->indexed);
		plan->indexed = NULL;
		plan->indexed_count = 0;
	} else {
		for (size_t i = 0; i < count; i++)
			plan->indexed[i].term.matches = terms[i].matches;
	}
	free(terms);
}

void search_plan_init(struct search_plan *plan, struct search_query *query, struct store *store,
		      const struct selected *sel, int64_t now)
{
	*plan = (struct search_plan){ .query = query, .store = store, .sel = sel, .now = now };
	/* Needles are folded by the plan; the index holds folded text. */
	plan_key(plan, query->root);
	size_t cap = 0;
	collect_indexed(plan, query->root, &cap);
	if (plan->indexed_count > 0)
		lookup_indexed(plan);
}

bool search_plan_text_incomplete(const struct search_plan *plan)
{
	bool text = false;
	for (size_t i = 0; i < plan->indexed_count; i++)
		text |= plan->indexed[i].term.field >= STORE_SEARCH_HEADER_FIELDS;
	return text && plan->coverage.text.count < plan->sel->count;
}

void search_plan_deinit(struct search_plan *plan)
{
	for (size_t i = 0; i < plan->indexed_count; i++)
		store_uid_list_free(&plan->indexed[i].term.matches);
	free(plan->indexed);
	plan->indexed = NULL;
	plan->indexed_count = 0;
	store_search_coverage_free(&plan->coverage);
}

/* ---- one message ------------------------------------------------------ */

/* What has been loaded for the message being evaluated. */
struct msg_state {
	struct search_plan *plan;
	const struct store_msg *msg;
	size_t index;
	enum search_match_result failure;	/* GONE or ERROR once loading failed */
	bool info_loaded;
	int64_t savedate;
	char emailid[STORE_OBJECTID_SIZE];
	bool file_loaded;
	void *map;
	size_t size;
	const char *data;
	struct mime_part *root;
	bool sent_loaded;
	int64_t sent_day;
	bool header_loaded;
	struct buf header_text;		/* every field, raw and decoded, folded */
	bool body_loaded;
	struct buf body_text;		/* every text part decoded, folded */
};

/* A store call failed: the message is gone if the index no longer has it
 * (an expunge can also remove the body file between two calls). */
static void note_store_failure(struct msg_state *m)
{
	struct store_message_info info;
	struct store *st = m->plan->store;
	if (store_last_error(st, NULL) == STORE_ERR_NOT_FOUND ||
	    (store_message_get(st, m->plan->sel->mailbox_id, m->msg->uid, &info) < 0 &&
	     store_last_error(st, NULL) == STORE_ERR_NOT_FOUND))
		m->failure = SEARCH_MATCH_GONE;
	else
		m->failure = SEARCH_MATCH_ERROR;
}

static bool load_info(struct msg_state *m)
{
	if (!m->info_loaded) {
		m->info_loaded = true;
		struct store_message_info info;
		if (store_message_get(m->plan->store, m->plan->sel->mailbox_id, m->msg->uid, &info) < 0) {
			note_store_failure(m);
			return false;
		}
		/* RFC 8514 4.2: without a save date the internal date stands in. */
		m->savedate = info.savedate != 0 ? info.savedate : m->msg->internaldate;
		memcpy(m->emailid, info.emailid, sizeof(m->emailid));
	}
	return m->failure == 0;
}

static bool load_file(struct msg_state *m)
{
	if (m->file_loaded)
		return m->failure == 0;
	m->file_loaded = true;
	m->plan->bodies_opened++;
	int fd;
	size_t size;
	if (store_message_open(m->plan->store, m->plan->sel->mailbox_id, m->msg->uid, &fd, &size) < 0) {
		note_store_failure(m);
		return false;
	}
	if (size > 0) {
		/* Body files are immutable (store.h): a private read-only map
		 * can't change under us. */
		void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			close(fd);
			m->plan->errno_failure = errno;
			m->failure = SEARCH_MATCH_ERROR;
			return false;
		}
		m->map = map;
		m->size = size;
		m->data = map;
	} else {
		m->data = "";
	}
	close(fd);
	m->root = mime_parse(m->data, m->size);
	return true;
}

static int64_t day_of(int64_t t)
{
	/* Floor division: dates before 1970 stay on the right day. */
	return t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
}

static bool load_sent(struct msg_state *m)
{
	if (m->sent_loaded)
		return m->failure == 0;
	m->sent_loaded = true;
	if (!load_file(m))
		return false;
	struct buf value = BUF_INIT;
	/* No readable Date: the internal date stands in, as RFC 5256 2.2
	 * does for the sent date of SORT, so SENT* and SORT agree. */
	if (mime_header_get(m->root, m->data, "date", &value) <= 0 ||
	    search_parse_sent_date(value.data, value.len, &m->sent_day) < 0)
		m->sent_day = day_of(m->msg->internaldate);
	buf_free(&value);
	return true;
}

static bool name_is(const struct mime_header_field *f, const char *name)
{
	return strlen(name) == f->name_len && strncasecmp(f->name, name, f->name_len) == 0;
}

static bool match_header(struct msg_state *m, const struct search_key *key)
{
	if (!load_file(m))
		return false;
	size_t pos = 0;
	struct mime_header_field f;
	bool found = false;
	struct buf text = BUF_INIT;
	while (!found && mime_header_next(m->root, m->data, &pos, &f) > 0) {
		if (!name_is(&f, key->field))
			continue;
		/* RFC 3501 6.4.4 HEADER: an empty string matches every message
		 * that has the field. */
		if (key->str_len == 0) {
			found = true;
			break;
		}
		buf_clear(&text);
		search_text_field(&f, &text);
		found = text.len > 0 && memmem(text.data, text.len, key->str, key->str_len) != NULL;
	}
	buf_free(&text);
	return found;
}

static bool contains(const struct buf *hay, const struct search_key *key)
{
	if (key->str_len == 0)
		return true;
	return hay->len > 0 && memmem(hay->data, hay->len, key->str, key->str_len) != NULL;
}

static bool match_body(struct msg_state *m, const struct search_key *key)
{
	if (!load_file(m))
		return false;
	if (!m->body_loaded) {
		m->body_loaded = true;
		search_text_body(m->root, m->data, &m->body_text);
	}
	return contains(&m->body_text, key);
}

static bool match_text(struct msg_state *m, const struct search_key *key)
{
	if (!load_file(m))
		return false;
	if (!m->header_loaded) {
		m->header_loaded = true;
		search_text_header(m->root, m->data, &m->header_text);
	}
	return contains(&m->header_text, key) || match_body(m, key);
}

static bool uid_listed(const struct store_uid_list *list, uint32_t uid)
{
	size_t lo = 0, hi = list->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (list->uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < list->count && list->uids[lo] == uid;
}

/* From the index when it covers this message; otherwise (stored before
 * the index, too large for it, or gone from the store) by reading it. */
static bool index_answer(struct msg_state *m, const struct search_key *key,
			 bool (*read)(struct msg_state *, const struct search_key *))
{
	const struct search_plan *plan = m->plan;
	for (size_t i = 0; i < plan->indexed_count; i++) {
		const struct search_index_key *ik = &plan->indexed[i];
		if (ik->key != key)
			continue;
		const struct store_uid_list *covered = ik->term.field < STORE_SEARCH_HEADER_FIELDS
			? &plan->coverage.headers : &plan->coverage.text;
		if (!uid_listed(covered, m->msg->uid))
			break;
		return uid_listed(&ik->term.matches, m->msg->uid);
	}
	return read(m, key);
}

static uint32_t store_flag_bit(enum search_flag flag)
{
	switch (flag) {
	case SEARCH_FLAG_ANSWERED: return STORE_FLAG_ANSWERED;
	case SEARCH_FLAG_DELETED: return STORE_FLAG_DELETED;
	case SEARCH_FLAG_DRAFT: return STORE_FLAG_DRAFT;
	case SEARCH_FLAG_FLAGGED: return STORE_FLAG_FLAGGED;
	case SEARCH_FLAG_SEEN: return STORE_FLAG_SEEN;
	}
	return 0;
}

static bool has_keyword(const struct store_msg *msg, const struct search_key *key)
{
	return key->number < 64 && (msg->keywords & (UINT64_C(1) << key->number)) != 0;
}

static bool compare_day(int64_t day, enum search_key_type type, int64_t wanted)
{
	switch (type) {
	case SEARCH_BEFORE: case SEARCH_SENTBEFORE: case SEARCH_SAVEDBEFORE:
		return day < wanted;
	case SEARCH_ON: case SEARCH_SENTON: case SEARCH_SAVEDON:
		return day == wanted;
	default:
		return day >= wanted;
	}
}

static bool eval(struct msg_state *m, const struct search_key *key)
{
	const struct store_msg *msg = m->msg;
	const struct selected *sel = m->plan->sel;
	if (m->failure != 0)
		return false;
	switch (key->type) {
	case SEARCH_ALL:
		return true;
	case SEARCH_AND:
		for (size_t i = 0; i < key->child_count; i++) {
			if (!eval(m, key->children[i]))
				return false;
		}
		return true;
	case SEARCH_OR:
		return eval(m, key->children[0]) || eval(m, key->children[1]);
	case SEARCH_NOT:
		return !eval(m, key->children[0]);
	case SEARCH_SEQSET:
		return m->index + 1 <= UINT32_MAX && seqset_contains(&key->set, (uint32_t)(m->index + 1));
	case SEARCH_UID:
		return seqset_contains(&key->set, msg->uid);
	case SEARCH_FLAG:
		return (msg->flags & store_flag_bit(key->flag)) != 0;
	case SEARCH_UNFLAG:
		return (msg->flags & store_flag_bit(key->flag)) == 0;
	case SEARCH_KEYWORD:
		return has_keyword(msg, key);
	case SEARCH_UNKEYWORD:
		return !has_keyword(msg, key);
	case SEARCH_NEW:
		return !m->plan->no_recent && selected_is_recent(sel, msg) && !(msg->flags & STORE_FLAG_SEEN);
	case SEARCH_OLD:
		return m->plan->no_recent || !selected_is_recent(sel, msg);
	case SEARCH_RECENT:
		return !m->plan->no_recent && selected_is_recent(sel, msg);
	case SEARCH_LARGER:
		return msg->size > key->number;
	case SEARCH_SMALLER:
		return msg->size < key->number;
	case SEARCH_BEFORE:
	case SEARCH_ON:
	case SEARCH_SINCE:
		/* RFC 3501 6.4.4: the internal date, disregarding time and zone.
		 * The store keeps it as UTC seconds without the zone it came
		 * with, so the day is taken in UTC. */
		return compare_day(day_of(msg->internaldate), key->type, key->day);
	case SEARCH_SENTBEFORE:
	case SEARCH_SENTON:
	case SEARCH_SENTSINCE:
		return load_sent(m) && compare_day(m->sent_day, key->type, key->day);
	case SEARCH_SAVEDBEFORE:
	case SEARCH_SAVEDON:
	case SEARCH_SAVEDSINCE:
		return load_info(m) && compare_day(day_of(m->savedate), key->type, key->day);
	case SEARCH_OLDER:
		/* RFC 5032 3: OLDER and YOUNGER split messages by age in
		 * seconds; exactly n seconds old counts as YOUNGER n. */
		return m->plan->now - msg->internaldate > (int64_t)key->number;
	case SEARCH_YOUNGER:
		return m->plan->now - msg->internaldate <= (int64_t)key->number;
	case SEARCH_MODSEQ:
		/* RFC 7162 3.1.5: a modseq equal to or greater than the value.
		 * One modseq per message: an entry name asks the same. */
		return msg->modseq >= key->modseq;
	case SEARCH_EMAILID:
		/* RFC 8474 6: object ids are compared exactly. */
		return load_info(m) && strcmp(m->emailid, key->str) == 0;
	case SEARCH_THREADID:
		/* No threads (THREADID is NIL): nothing matches. */
		return false;
	case SEARCH_HEADER:
		return index_answer(m, key, match_header);
	case SEARCH_BODY:
		return index_answer(m, key, match_body);
	case SEARCH_TEXT:
		return index_answer(m, key, match_text);
	}
	return false;
}

enum search_match_result search_match_message(struct search_plan *plan, size_t index)
{
	struct msg_state m = { .plan = plan, .msg = &plan->sel->msgs[index], .index = index };
	bool matched = eval(&m, plan->query->root);
	mime_free(&m.root);
	if (m.map != NULL)
		munmap(m.map, m.size);
	buf_free(&m.header_text);
	buf_free(&m.body_text);
	if (m.failure != 0)
		return m.failure;
	return matched ? SEARCH_MATCH_YES : SEARCH_MATCH_NO;
}
