/* The MIME structure parser: one forward pass over the message.
 *
 * The pass reads line by line and never goes back, so the cost is linear:
 * every line is looked at once, against the stack of open boundaries
 * (at most LIMIT_MIME_DEPTH of at most LIMIT_MIME_BOUNDARY_LEN bytes). The
 * running count of line ends up to the current position gives every part's
 * line count and CRLF-normalised size without rescanning its body. */
#include "mime/mime.h"
#include "mime/mime-private.h"

#include "core/limits.h"
#include "core/xalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- memory: one pool per tree, freed at once ---- */

struct pool_block {
	struct pool_block *next;
	size_t size, used;
};

struct mime_pool {
	struct pool_block *head;
};

#define POOL_ALIGN 16
#define POOL_HDR ((sizeof(struct pool_block) + POOL_ALIGN - 1) & ~(size_t)(POOL_ALIGN - 1))
#define POOL_BLOCK_SIZE 8192

static void *pool_alloc(struct mime_pool *pool, size_t n)
{
	n = (n + POOL_ALIGN - 1) & ~(size_t)(POOL_ALIGN - 1);
	struct pool_block *b = pool->head;
	if (n > POOL_BLOCK_SIZE / 4) {
		/* A big string gets its own block, linked behind the current
		 * one so the current block's free space is not wasted. */
		struct pool_block *big = xmalloc(POOL_HDR + n);
		big->size = big->used = n;
		if (b == NULL) {
			big->next = NULL;
			pool->head = big;
		} else {
			big->next = b->next;
			b->next = big;
		}
		char *mem = (char *)big + POOL_HDR;
		memset(mem, 0, n);
		return mem;
	}
	if (b == NULL || b->size - b->used < n) {
		b = xmalloc(POOL_HDR + POOL_BLOCK_SIZE);
		b->size = POOL_BLOCK_SIZE;
		b->used = 0;
		b->next = pool->head;
		pool->head = b;
	}
	char *mem = (char *)b + POOL_HDR + b->used;
	b->used += n;
	memset(mem, 0, n);
	return mem;
}

char *mime_pool_strndup(struct mime_pool *pool, const char *s, size_t n)
{
	char *d = pool_alloc(pool, n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

void *mime_pool_alloc(struct mime_pool *pool, size_t n)
{
	return pool_alloc(pool, n);
}

void mime_free(struct mime_part **rootp)
{
	if (rootp == NULL || *rootp == NULL)
		return;
	struct mime_pool *pool = (*rootp)->pool;
	*rootp = NULL;
	struct pool_block *b = pool->head;
	while (b != NULL) {
		struct pool_block *next = b->next;
		free(b);
		b = next;
	}
	free(pool);
}

/* ---- the parser ---- */

struct parser {
	const char *data;
	size_t len;
	size_t pos;		/* always at a line start */
	size_t lfs;		/* LFs in data[0..pos) */
	size_t bare_lfs;	/* of which not preceded by CR */
	struct mime_pool *pool;
	unsigned part_count;
	/* Open boundaries, outermost first (RFC 2046 5.1.2: an outer
	 * boundary also ends every inner multipart). */
	const char *bnd[LIMIT_MIME_DEPTH];
	size_t bnd_len[LIMIT_MIME_DEPTH];
	unsigned nbnd;
	struct buf tmp;		/* scratch for unfolded header values */
};

static size_t line_end(const struct parser *p, size_t start)
{
	const char *nl = memchr(p->data + start, '\n', p->len - start);
	return nl != NULL ? (size_t)(nl - p->data) : p->len;
}

/* Moves past the line ending at eol (offset of its LF, or len). */
static void advance_line(struct parser *p, size_t eol)
{
	if (eol >= p->len) {
		p->pos = p->len;
		return;
	}
	p->lfs++;
	if (eol == 0 || p->data[eol - 1] != '\r')
		p->bare_lfs++;
	p->pos = eol + 1;
}

/* Index of the innermost open boundary the line is a delimiter of, or -1.
 * A prefix match, as RFC 2046 5.1.1 allows only blanks or "--" after the
 * boundary and real mail is sloppier about those; the innermost boundary is
 * tried first so an inner "abcd" wins over an outer "abc". */
static int match_boundary(const struct parser *p, size_t start, size_t eol)
{
	size_t n = eol - start;
	const char *s = p->data + start;
	if (p->nbnd == 0 || n < 2 || s[0] != '-' || s[1] != '-')
		return -1;
	for (unsigned i = p->nbnd; i-- > 0;) {
		if (n - 2 >= p->bnd_len[i] && memcmp(s + 2, p->bnd[i], p->bnd_len[i]) == 0)
			return (int)i;
	}
	return -1;
}

static struct mime_part *new_part(struct parser *p, struct mime_part *parent)
{
	struct mime_part *part = pool_alloc(p->pool, sizeof(*part));
	part->parent = parent;
	part->depth = parent != NULL ? parent->depth + 1 : 0;
	part->header_start = part->body_start = part->body_end = p->pos;
	p->part_count++;
	/* RFC 2046 5.1.5: in a digest the default is message/rfc822;
	 * elsewhere RFC 2045 5.2: text/plain; charset=us-ascii. */
	if (parent != NULL && (parent->flags & MIME_PART_MULTIPART) != 0 &&
	    strcmp(parent->subtype, "digest") == 0) {
		part->type = mime_pool_strndup(p->pool, "message", 7);
		part->subtype = mime_pool_strndup(p->pool, "rfc822", 6);
	} else {
		part->type = mime_pool_strndup(p->pool, "text", 4);
		part->subtype = mime_pool_strndup(p->pool, "plain", 5);
	}
	return part;
}

static bool has_prefix_ci(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	if (len < n)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (mime_ascii_lower(s[i]) != prefix[i])
			return false;
	}
	return true;
}

static bool name_is(const char *s, size_t len, const char *name)
{
	return len == strlen(name) && has_prefix_ci(s, len, name);
}

/* Which Content-* fields have been seen: the first one counts, as a
 * second Content-Type is an error (RFC 2045 3) and the first is what most
 * agents use. */
enum seen_field {
	SEEN_TYPE = 1 << 0, SEEN_ENCODING = 1 << 1, SEEN_ID = 1 << 2,
	SEEN_DESC = 1 << 3, SEEN_DISP = 1 << 4, SEEN_LANG = 1 << 5,
	SEEN_LOC = 1 << 6, SEEN_MD5 = 1 << 7,
};

static char *field_text(struct parser *p, const char *v, size_t len)
{
	buf_clear(&p->tmp);
	mime_header_unfold(v, len, &p->tmp);
	return mime_pool_strndup(p->pool, p->tmp.data != NULL ? p->tmp.data : "", p->tmp.len);
}

/* Handles one header field data[start..end) (folded, without the last line
 * end) if it is one of the Content-* fields that shape the structure. */
static void header_field(struct parser *p, struct mime_part *part, unsigned *seen,
			 size_t start, size_t end)
{
	const char *f = p->data + start;
	size_t len = end - start;
	if (!has_prefix_ci(f, len, "content-"))
		return;
	const char *colon = memchr(f, ':', len);
	if (colon == NULL)
		return;
	size_t nlen = (size_t)(colon - f);
	while (nlen > 0 && (f[nlen - 1] == ' ' || f[nlen - 1] == '\t'))
		nlen--;
	const char *v = colon + 1;
	size_t vlen = len - (size_t)(v - f);
	const char *name = f + 8;
	nlen -= 8;

	if (name_is(name, nlen, "type") && !(*seen & SEEN_TYPE)) {
		*seen |= SEEN_TYPE;
		buf_clear(&p->tmp);
		mime_header_unfold(v, vlen, &p->tmp);
		mime_parse_content_type(p->pool, p->tmp.data, p->tmp.len, part);
	} else if (name_is(name, nlen, "transfer-encoding") && !(*seen & SEEN_ENCODING)) {
		*seen |= SEEN_ENCODING;
		buf_clear(&p->tmp);
		mime_header_unfold(v, vlen, &p->tmp);
		part->encoding = mime_parse_token_value(p->pool, p->tmp.data, p->tmp.len);
	} else if (name_is(name, nlen, "id") && !(*seen & SEEN_ID)) {
		*seen |= SEEN_ID;
		part->id = field_text(p, v, vlen);
	} else if (name_is(name, nlen, "description") && !(*seen & SEEN_DESC)) {
		*seen |= SEEN_DESC;
		part->description = field_text(p, v, vlen);
	} else if (name_is(name, nlen, "disposition") && !(*seen & SEEN_DISP)) {
		*seen |= SEEN_DISP;
		buf_clear(&p->tmp);
		mime_header_unfold(v, vlen, &p->tmp);
		mime_parse_disposition(p->pool, p->tmp.data, p->tmp.len, part);
	} else if (name_is(name, nlen, "language") && !(*seen & SEEN_LANG)) {
		*seen |= SEEN_LANG;
		buf_clear(&p->tmp);
		mime_header_unfold(v, vlen, &p->tmp);
		mime_parse_language(p->pool, p->tmp.data, p->tmp.len, part);
	} else if (name_is(name, nlen, "location") && !(*seen & SEEN_LOC)) {
		*seen |= SEEN_LOC;
		part->location = field_text(p, v, vlen);
	} else if (name_is(name, nlen, "md5") && !(*seen & SEEN_MD5)) {
		*seen |= SEEN_MD5;
		part->md5 = field_text(p, v, vlen);
	}
}

/* Reads the header block at p->pos. Returns -1 normally, with p->pos after
 * the blank line (or at the end: a message may be all header), or the index
 * of an open boundary whose delimiter line came before any blank line: the
 * part then has an empty body and p->pos is at that line. */
static int parse_header(struct parser *p, struct mime_part *part)
{
	size_t bare0 = p->bare_lfs;
	unsigned seen = 0;
	size_t field_start = SIZE_MAX, field_end = 0;
	int r = -1;

	part->header_start = p->pos;
	while (p->pos < p->len) {
		size_t start = p->pos, eol = line_end(p, start);
		size_t cend = eol;
		if (cend > start && p->data[cend - 1] == '\r')
			cend--;
		if (cend == start) {
			/* RFC 2822 2.1: an empty line ends the header. */
			advance_line(p, eol);
			break;
		}
		if ((r = match_boundary(p, start, eol)) >= 0)
			break;
		if (p->data[start] != ' ' && p->data[start] != '\t') {
			if (field_start != SIZE_MAX)
				header_field(p, part, &seen, field_start, field_end);
			field_start = start;
		}
		/* A blank-led line continues the field (RFC 2822 2.2.3);
		 * one with no field before it is dropped. */
		field_end = cend;
		advance_line(p, eol);
	}
	if (field_start != SIZE_MAX)
		header_field(p, part, &seen, field_start, field_end);
	part->body_start = p->pos;
	part->header_size = part->body_start - part->header_start + (p->bare_lfs - bare0);
	return r;
}

/* Skips body lines up to the next delimiter of an open boundary. Returns its
 * index with p->pos at that line, or -1 at the end of the data. */
static int scan_body(struct parser *p)
{
	while (p->pos < p->len) {
		size_t start = p->pos, eol = line_end(p, start);
		int r = match_boundary(p, start, eol);
		if (r >= 0)
			return r;
		advance_line(p, eol);
	}
	return -1;
}

/* Sets body_end, body_size and body_lines now that the body ends at p->pos.
 * RFC 2046 5.1.1: the line end before a delimiter belongs to the delimiter,
 * so when stopped at a boundary it is not part of the body. */
static void end_body(struct parser *p, struct mime_part *part, bool at_boundary,
		     size_t lfs0, size_t bare0)
{
	size_t end = p->pos, lfs = p->lfs, bare = p->bare_lfs;
	if (at_boundary && end > part->body_start && p->data[end - 1] == '\n') {
		end--;
		lfs--;
		if (end > part->body_start && p->data[end - 1] == '\r')
			end--;
		else
			bare--;
	}
	part->body_end = end;
	part->body_lines = lfs - lfs0;
	part->body_size = end - part->body_start + (bare - bare0);
}

static void make_leaf(struct parser *p, struct mime_part *part)
{
	part->flags |= MIME_PART_TRUNCATED;
	part->type = mime_pool_strndup(p->pool, "text", 4);
	part->subtype = mime_pool_strndup(p->pool, "plain", 5);
	part->params.v = NULL;
	part->params.count = 0;
}

static int parse_entity(struct parser *p, struct mime_part *part);

static int parse_multipart(struct parser *p, struct mime_part *part,
			   const char *boundary, size_t blen)
{
	unsigned k = p->nbnd++;
	p->bnd[k] = boundary;
	p->bnd_len[k] = blen;
	struct mime_part **tail = &part->children;
	bool closed = false;

	int r = scan_body(p);	/* the preamble, RFC 2046 5.1.1 */
	while (r == (int)k) {
		size_t start = p->pos, eol = line_end(p, start);
		closed = eol - start >= 4 + blen && p->data[start + 2 + blen] == '-' &&
			p->data[start + 3 + blen] == '-';
		advance_line(p, eol);
		if (closed)
			break;
		if (p->part_count >= LIMIT_MIME_PARTS) {
			/* Past the cap further parts are body text of this
			 * multipart: still one pass, no more memory. */
			r = scan_body(p);
			continue;
		}
		struct mime_part *child = new_part(p, part);
		*tail = child;
		tail = &child->next;
		part->child_count++;
		r = parse_entity(p, child);
	}
	/* Pop before the epilogue: a later "--boundary" line there is text. */
	p->nbnd = k;
	if (closed)
		r = scan_body(p);
	else
		part->flags |= MIME_PART_NO_CLOSE;
	return r;
}

/* Parses the entity at p->pos (header, then body and sub-parts). Returns as
 * scan_body() does: the boundary that ended it, or -1 at the end. */
static int parse_entity(struct parser *p, struct mime_part *part)
{
	int r = parse_header(p, part);
	if (r >= 0) {
		part->body_end = part->body_start;
		return r;
	}
	size_t lfs0 = p->lfs, bare0 = p->bare_lfs;
	bool room = part->depth < LIMIT_MIME_DEPTH && p->nbnd < LIMIT_MIME_DEPTH &&
		p->part_count < LIMIT_MIME_PARTS;

	if (strcmp(part->type, "multipart") == 0) {
		const char *b = mime_param_get(&part->params, "boundary");
		size_t blen = b != NULL ? strlen(b) : 0;
		if (blen == 0 || blen > LIMIT_MIME_BOUNDARY_LEN) {
			/* No usable boundary: a multipart without parts; the
			 * BODYSTRUCTURE writer gives it an empty one. */
			r = scan_body(p);
		} else if (!room) {
			make_leaf(p, part);
			r = scan_body(p);
		} else {
			part->flags |= MIME_PART_MULTIPART;
			r = parse_multipart(p, part, b, blen);
		}
	} else if (strcmp(part->type, "message") == 0 &&
		   (strcmp(part->subtype, "rfc822") == 0 ||
		    strcmp(part->subtype, "global") == 0)) {
		/* RFC 2046 5.2.1; message/global is RFC 6532 3.7. */
		if (!room) {
			make_leaf(p, part);
			r = scan_body(p);
		} else {
			part->flags |= MIME_PART_MESSAGE;
			struct mime_part *child = new_part(p, part);
			part->children = child;
			part->child_count = 1;
			r = parse_entity(p, child);
		}
	} else {
		r = scan_body(p);
	}
	end_body(p, part, r >= 0, lfs0, bare0);
	return r;
}

struct mime_part *mime_parse(const char *data, size_t len)
{
	struct parser p;
	memset(&p, 0, sizeof(p));
	p.data = data;
	p.len = len;
	p.pool = xcalloc(1, sizeof(*p.pool));

	struct mime_part *root = new_part(&p, NULL);
	root->pool = p.pool;
	(void)parse_entity(&p, root);
	buf_free(&p.tmp);
	return root;
}

/* ---- queries ---- */

const char *mime_param_get(const struct mime_params *params, const char *name)
{
	for (size_t i = 0; i < params->count; i++) {
		if (strcasecmp(params->v[i].name, name) == 0)
			return params->v[i].value;
	}
	return NULL;
}

const char *mime_part_charset(const struct mime_part *part)
{
	return mime_param_get(&part->params, "charset");
}

int mime_find_section(const struct mime_part *root, const char *section,
		      const struct mime_part **part_r)
{
	const struct mime_part *cur = root;
	/* True while cur is a message (root or encapsulated), where a
	 * non-multipart body is addressed as part 1 (RFC 3501 6.4.5). */
	bool at_message = true;
	const char *s = section;

	while (*s != '\0') {
		if (*s < '1' || *s > '9')
			return -1;
		unsigned long n = 0;
		while (*s >= '0' && *s <= '9') {
			n = n * 10 + (unsigned long)(*s - '0');
			if (n > LIMIT_MIME_PARTS)
				return -1;
			s++;
		}
		if (*s == '.' && s[1] != '\0')
			s++;
		else if (*s != '\0')
			return -1;

		if ((cur->flags & MIME_PART_MULTIPART) != 0) {
			const struct mime_part *c = cur->children;
			for (unsigned long i = 1; c != NULL && i < n; i++)
				c = c->next;
			if (c == NULL)
				return -1;
			cur = c;
		} else if (!at_message || n != 1) {
			return -1;
		}
		at_message = false;
		/* Going deeper into a message/rfc822 part addresses the
		 * parts of the message it encapsulates. */
		if (*s != '\0' && (cur->flags & MIME_PART_MESSAGE) != 0) {
			cur = cur->children;
			at_message = true;
		}
	}
	*part_r = cur;
	return 0;
}
