/* SEARCH evaluation: one message at a time, loading what the keys need. */
#include "imapd/search_match.h"

#include "core/xalloc.h"
#include "mime/mime.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- case folding ---------------------------------------------------- */

/* Simple case folding (Unicode CaseFolding.txt, status C and S) for the
 * scripts mail in European languages uses. Written as ranges rather than
 * a table: most blocks alternate upper/lower or sit at a fixed distance. */
static uint32_t fold_cp(uint32_t c)
{
	if (c < 0x80)
		return c >= 'A' && c <= 'Z' ? c + 32 : c;
	if (c < 0x100) {
		if (c == 0xb5)
			return 0x3bc;			/* micro sign: Greek mu */
		if (c >= 0xc0 && c <= 0xde && c != 0xd7)
			return c + 32;
		return c;
	}
	if (c < 0x180) {			/* Latin Extended-A */
		if (c == 0x130)
			return 'i';		/* dotted capital I: fold to i for matching */
		if (c == 0x178)
			return 0xff;
		if (c == 0x17f)
			return 's';		/* long s */
		if ((c >= 0x100 && c <= 0x137 && c != 0x131) || (c >= 0x14a && c <= 0x177))
			return c | 1;
		if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e))
			return (c & 1) ? c + 1 : c;
		return c;
	}
	if (c < 0x250) {			/* Latin Extended-B, regular parts */
		if (c == 0x1c4 || c == 0x1c5)
			return 0x1c6;
		if (c == 0x1c7 || c == 0x1c8)
			return 0x1c9;
		if (c == 0x1ca || c == 0x1cb)
			return 0x1cc;
		if (c == 0x1f1 || c == 0x1f2)
			return 0x1f3;
		if (c >= 0x1cd && c <= 0x1dc)
			return (c & 1) ? c + 1 : c;
		if ((c >= 0x1de && c <= 0x1ef) || c == 0x1f4 || (c >= 0x1f8 && c <= 0x21f) ||
		    (c >= 0x222 && c <= 0x233) || (c >= 0x246 && c <= 0x24f))
			return c | 1;
		return c;
	}
	if (c >= 0x345 && c < 0x400) {		/* Greek */
		switch (c) {
		case 0x345: return 0x3b9;
		case 0x37f: return 0x3f3;
		case 0x386: return 0x3ac;
		case 0x38c: return 0x3cc;
		case 0x38e: case 0x38f: return c + 63;
		case 0x3c2: return 0x3c3;	/* final sigma */
		case 0x3cf: return 0x3d7;
		case 0x3d0: return 0x3b2;
		case 0x3d1: return 0x3b8;
		case 0x3d5: return 0x3c6;
		case 0x3d6: return 0x3c0;
		case 0x3f0: return 0x3ba;
		case 0x3f1: return 0x3c1;
		case 0x3f4: return 0x3b8;
		case 0x3f5: return 0x3b5;
		case 0x3f7: return 0x3f8;
		case 0x3f9: return 0x3f2;
		case 0x3fa: return 0x3fb;
		case 0x3fd: case 0x3fe: case 0x3ff: return c - 130;
		default: break;
		}
		if (c >= 0x388 && c <= 0x38a)
			return c + 37;
		if ((c >= 0x391 && c <= 0x3a1) || (c >= 0x3a3 && c <= 0x3ab))
			return c + 32;
		if (c >= 0x3d8 && c <= 0x3ef)
			return c | 1;
		return c;
	}
	if (c >= 0x400 && c < 0x530) {		/* Cyrillic and Supplement */
		if (c <= 0x40f)
			return c + 80;
		if (c <= 0x42f)
			return c + 32;
		if (c == 0x4c0)
			return 0x4cf;
		if ((c >= 0x460 && c <= 0x481) || (c >= 0x48a && c <= 0x4bf) || (c >= 0x4d0 && c <= 0x52f))
			return c | 1;
		if (c >= 0x4c1 && c <= 0x4ce)
			return (c & 1) ? c + 1 : c;
		return c;
	}
	if (c >= 0x531 && c <= 0x556)		/* Armenian */
		return c + 48;
	if (c >= 0x1e00 && c < 0x1f00) {	/* Latin Extended Additional */
		if (c == 0x1e9b)
			return 0x1e61;
		if (c == 0x1e9e)
			return 0xdf;		/* capital sharp s */
		if (c <= 0x1e95 || (c >= 0x1ea0 && c <= 0x1eff))
			return c | 1;
		return c;
	}
	if (c >= 0x1f00 && c < 0x1f70) {	/* Greek Extended: capitals sit 8 above */
		unsigned low = c & 0xf;
		unsigned row = (c >> 4) & 0xf;
		if (low >= 8 && (row == 0 || row == 2 || row == 3 || row == 6))
			return c - 8;
		if (low >= 8 && low <= 0xd && (row == 1 || row == 4))
			return c - 8;
		if (row == 5 && (c == 0x1f59 || c == 0x1f5b || c == 0x1f5d || c == 0x1f5f))
			return c - 8;
		return c;
	}
	switch (c) {
	case 0x2126: return 0x3c9;		/* ohm sign */
	case 0x212a: return 'k';		/* kelvin sign */
	case 0x212b: return 0xe5;		/* angstrom sign */
	default: break;
	}
	if (c >= 0xff21 && c <= 0xff3a)		/* fullwidth Latin */
		return c + 32;
	return c;
}

/* Decodes one UTF-8 sequence at in[0..len); returns its length, or 0 when
 * the bytes are not a valid (shortest-form, non-surrogate) sequence. */
static size_t utf8_decode(const unsigned char *in, size_t len, uint32_t *cp_r)
{
	unsigned char b = in[0];
	size_t n;
	uint32_t cp, min;
	if (b < 0x80) {
		*cp_r = b;
		return 1;
	} else if (b >= 0xc2 && b <= 0xdf) {
		n = 2, cp = b & 0x1f, min = 0x80;
	} else if (b >= 0xe0 && b <= 0xef) {
		n = 3, cp = b & 0x0f, min = 0x800;
	} else if (b >= 0xf0 && b <= 0xf4) {
		n = 4, cp = b & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((in[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (in[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return n;
}

static void utf8_encode(uint32_t cp, struct buf *out)
{
	char b[4];
	size_t n;
	if (cp < 0x80) {
		b[0] = (char)cp, n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6)), b[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12)), b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
	} else {
		b[0] = (char)(0xf0 | (cp >> 18)), b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
	}
	buf_append(out, b, n);
}

void search_fold(const char *in, size_t len, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)in;
	buf_reserve(out, len);
	size_t i = 0;
	while (i < len) {
		/* ASCII runs are the common case: fold them without decoding. */
		if (p[i] < 0x80) {
			buf_append_char(out, (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]));
			i++;
			continue;
		}
		uint32_t cp;
		size_t n = utf8_decode(p + i, len - i, &cp);
		if (n == 0) {
			buf_append_char(out, (char)p[i]);
			i++;
			continue;
		}
		uint32_t folded = fold_cp(cp);
		if (folded == cp)
			buf_append(out, p + i, n);
		else
			utf8_encode(folded, out);
		i += n;
	}
}

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
	COST_INDEX,	/* one index row (the save date) */
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
		seqset_resolve(&key->set, (uint32_t)sel->count);
		return COST_VIEW;
	case SEARCH_UID:
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
		return COST_INDEX;
	case SEARCH_SENTBEFORE:
	case SEARCH_SENTON:
	case SEARCH_SENTSINCE:
		return COST_HEADER;
	case SEARCH_HEADER:
		fold_needle(key);
		return COST_HEADER;
	case SEARCH_BODY:
	case SEARCH_TEXT:
		fold_needle(key);
		return COST_BODY;
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
		return COST_VIEW;
	}
	return COST_BODY;
}

void search_plan_init(struct search_plan *plan, struct search_query *query, struct store *store,
		      const struct selected *sel, int64_t now)
{
	*plan = (struct search_plan){ .query = query, .store = store, .sel = sel, .now = now };
	plan_key(plan, query->root);
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

/* The field's value, raw (unfolded) and RFC 2047 decoded, folded. */
static void append_field_text(const struct mime_header_field *f, struct buf *out)
{
	struct buf raw = BUF_INIT, decoded = BUF_INIT;
	mime_header_unfold(f->value, f->value_len, &raw);
	search_fold(raw.data ? raw.data : "", raw.len, out);
	buf_append_char(out, '\n');
	(void)mime_decode_header_value(f->value, f->value_len, &decoded);
	search_fold(decoded.data ? decoded.data : "", decoded.len, out);
	buf_append_char(out, '\n');
	buf_free(&raw);
	buf_free(&decoded);
}

static void append_header_text(const struct mime_part *part, const char *data, struct buf *out)
{
	size_t pos = 0;
	struct mime_header_field f;
	while (mime_header_next(part, data, &pos, &f) > 0) {
		search_fold(f.name, f.name_len, out);
		buf_append_str(out, ": ");
		append_field_text(&f, out);
	}
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
		append_field_text(&f, &text);
		found = text.len > 0 && memmem(text.data, text.len, key->str, key->str_len) != NULL;
	}
	buf_free(&text);
	return found;
}

/* Body text of part and what it contains: text leaves decoded to UTF-8;
 * an encapsulated message contributes its header too, since it is part
 * of the outer message's body. Non-text leaves (images, archives) are
 * skipped: their bytes mean nothing as text. */
static void append_body_text(const struct mime_part *part, const char *data, struct buf *out)
{
	if (part->flags & MIME_PART_MULTIPART) {
		for (const struct mime_part *c = part->children; c != NULL; c = c->next)
			append_body_text(c, data, out);
		return;
	}
	if (part->flags & MIME_PART_MESSAGE) {
		for (const struct mime_part *c = part->children; c != NULL; c = c->next) {
			append_header_text(c, data, out);
			append_body_text(c, data, out);
		}
		return;
	}
	if (strcmp(part->type, "text") != 0)
		return;
	struct buf decoded = BUF_INIT;
	(void)mime_body_to_utf8(part, data, &decoded);
	search_fold(decoded.data ? decoded.data : "", decoded.len, out);
	buf_append_char(out, '\n');
	buf_free(&decoded);
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
		append_body_text(m->root, m->data, &m->body_text);
	}
	return contains(&m->body_text, key);
}

static bool match_text(struct msg_state *m, const struct search_key *key)
{
	if (!load_file(m))
		return false;
	if (!m->header_loaded) {
		m->header_loaded = true;
		append_header_text(m->root, m->data, &m->header_text);
	}
	return contains(&m->header_text, key) || match_body(m, key);
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
		return selected_is_recent(sel, msg) && !(msg->flags & STORE_FLAG_SEEN);
	case SEARCH_OLD:
		return !selected_is_recent(sel, msg);
	case SEARCH_RECENT:
		return selected_is_recent(sel, msg);
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
	case SEARCH_HEADER:
		return match_header(m, key);
	case SEARCH_BODY:
		return match_body(m, key);
	case SEARCH_TEXT:
		return match_text(m, key);
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
