/* genmail: deterministic, realistic-looking messages for the benchmarks.
 *
 * Message i of seed s is built from a generator seeded with mix(s, i) alone,
 * so any message can be made again without the ones before it, and the
 * traits that searches look for (a From word, a body phrase) come from
 * their own hashes so a run can know how many messages match without
 * generating them.
 *
 * The mix, roughly like a mailbox of personal and work mail:
 *   50% text/plain (us-ascii 7bit, utf-8 8bit, utf-8 or iso-8859-1
 *       quoted-printable), 0.5 to 6 KB, one in ten up to ten times longer
 *   25% multipart/alternative: text/plain + text/html
 *   17% multipart/mixed: text + a base64 attachment of 2 to 60 KB
 *    8% multipart/mixed: text + a forwarded message/rfc822
 * Subjects are plain or RFC 2047 encoded words (B and Q). The search
 * phrase only ever stands in a 7bit, 8bit or quoted-printable text part,
 * on a line of its own, so every server finds it without decoding base64. */
#include "il.h"

#include <stdio.h>
#include <string.h>

static const char *const ascii_words[] = {
	"the", "meeting", "project", "report", "schedule", "budget", "review", "please", "thanks",
	"attached", "update", "notes", "tomorrow", "team", "draft", "final", "version", "server",
	"release", "customer", "invoice", "contract", "weekend", "dinner", "holiday", "photos",
	"question", "answer", "issue", "deadline", "agenda", "minutes", "about", "with", "from",
	"today", "call", "later", "office", "travel", "garden", "coffee", "quarterly", "results",
	"inventory", "sales", "numbers", "plan", "monday", "friday", "and", "for", "to", "of",
	"a", "in", "is", "we", "you", "it", "this", "that", "on", "be", "are", "will", "can",
};
/* UTF-8 words for utf-8 parts and subjects. */
static const char *const utf8_words[] = {
	"caf\xc3\xa9", "na\xc3\xafve", "\xc3\xbc" "ber", "Stra\xc3\x9f" "e", "r\xc3\xa9sum\xc3\xa9",
	"\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	"\xc3\xa5r", "se\xc3\xb1or", "\xce\xba\xce\xb1\xce\xbb\xce\xb7\xce\xbc\xce\xad\xcf\x81\xce\xb1",
};
/* ISO-8859-1 words for latin-1 parts. */
static const char *const latin1_words[] = {
	"caf\xe9", "na\xefve", "\xfc" "ber", "Stra\xdf" "e", "r\xe9sum\xe9", "se\xf1or", "\xe5r",
	"gar\xe7on", "fa\xe7" "ade",
};
static const char *const people[] = {
	"Alice Martin <alice.martin@example.com>", "Bob Chen <bob@example.net>",
	"\"Dupont, Claire\" <claire.dupont@example.fr>", "Dmitri Ivanov <dmitri@example.ru>",
	"Emma Schmidt <emma.schmidt@example.de>", "newsletter@shop.example",
	"Fatima Zahra <fz@example.org>", "Gustavo Silva <gustavo@example.com.br>",
	"Hiro Tanaka <hiro.tanaka@example.jp>", "Support Team <support@service.example>",
	"=?UTF-8?B?Sm9zw6kgR2FyY8OtYQ==?= <jose@example.es>",
	"=?ISO-8859-1?Q?J=FCrgen_M=FCller?= <juergen@example.de>",
};
#define NPEOPLE (sizeof(people) / sizeof(people[0]))
#define WALRUS_FROM "Wally " GENMAIL_FROM_WORD " <wally." GENMAIL_FROM_WORD "@example.org>"

enum charset { CS_ASCII, CS_UTF8, CS_LATIN1 };
enum cte { CTE_7BIT, CTE_8BIT, CTE_QP };

void genmail_traits(uint64_t seed, uint64_t i, struct genmail_traits *t_r)
{
	t_r->from_walrus = il_mix(seed ^ 0x5157u, i) % 40 == 0;
	t_r->phrase = il_mix(seed ^ 0x7a11u, i) % 50 == 0;
}

static const char *pick(struct il_rng *r, const char *const *list, size_t n)
{
	return list[il_rng_below(r, (uint32_t)n)];
}
#define PICK(r, list) pick(r, list, sizeof(list) / sizeof(list[0]))

/* Text of about n bytes in lines under 72 bytes, in the given charset,
 * with the phrase as a line of its own when asked. */
static void gen_text(struct il_rng *r, struct il_buf *out, size_t n, enum charset cs, bool phrase)
{
	size_t start = out->len, line = 0;
	size_t phrase_at = phrase ? il_rng_below(r, (uint32_t)(n / 2 + 1)) : (size_t)-1;
	while (out->len - start < n) {
		if (phrase && out->len - start >= phrase_at) {
			if (line > 0)
				il_buf_append(out, "\r\n", 2);
			il_buf_printf(out, "Re the %s: see below.\r\n", GENMAIL_PHRASE);
			phrase = false;
			line = 0;
			continue;
		}
		const char *w;
		uint32_t k = il_rng_below(r, 100);
		if (k < 8 && cs == CS_UTF8)
			w = PICK(r, utf8_words);
		else if (k < 8 && cs == CS_LATIN1)
			w = PICK(r, latin1_words);
		else
			w = PICK(r, ascii_words);
		size_t wl = strlen(w);
		if (line + wl + 1 > 70) {
			il_buf_append(out, ".\r\n", 3);
			line = 0;
			if (il_rng_below(r, 6) == 0)
				il_buf_append(out, "\r\n", 2);
		}
		if (line > 0)
			il_buf_append(out, " ", 1);
		il_buf_append(out, w, wl);
		line += wl + 1;
	}
	if (phrase)
		il_buf_printf(out, "\r\nRe the %s: see below.", GENMAIL_PHRASE);
	il_buf_append(out, ".\r\n", 3);
}

/* Quoted-printable (RFC 2045 6.7) of CRLF text: bytes >= 128 and '=' as
 * =XX, lines soft-broken before 76. */
static void qp_encode(struct il_buf *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '\r' && i + 1 < n && s[i + 1] == '\n') {
			il_buf_append(out, "\r\n", 2);
			i++;
			col = 0;
			continue;
		}
		char enc[3];
		size_t el = 1;
		if (ch >= 128 || ch == '=' || (ch == ' ' && i + 1 < n && s[i + 1] == '\r')) {
			enc[0] = '=';
			enc[1] = hex[ch >> 4];
			enc[2] = hex[ch & 15];
			el = 3;
		} else {
			enc[0] = (char)ch;
		}
		if (col + el > 75) {
			il_buf_append(out, "=\r\n", 3);
			col = 0;
		}
		il_buf_append(out, enc, el);
		col += el;
	}
}

static void base64_lines(struct il_rng *r, struct il_buf *out, size_t raw)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t chars = (raw + 2) / 3 * 4;
	for (size_t done = 0; done < chars;) {
		size_t take = chars - done < 76 ? chars - done : 76;
		char *w = il_buf_space(out, take + 2);
		for (size_t k = 0; k < take; k++)
			w[k] = b64[il_rng_next(r) >> 58];
		w[take] = '\r';
		w[take + 1] = '\n';
		out->len += take + 2;
		done += take;
	}
}

static size_t body_size(struct il_rng *r)
{
	size_t n = 500 + il_rng_below(r, 5500);
	if (il_rng_below(r, 10) == 0)
		n *= 1 + il_rng_below(r, 10);
	return n;
}

/* A text/plain part: headers (unless bare) and body. */
static void text_part(struct il_rng *r, struct il_buf *out, bool phrase, bool headers)
{
	static const enum charset css[] = { CS_ASCII, CS_UTF8, CS_UTF8, CS_LATIN1 };
	enum charset cs = css[il_rng_below(r, 4)];
	enum cte cte = cs == CS_ASCII ? CTE_7BIT : cs == CS_LATIN1 ? CTE_QP : il_rng_below(r, 2) ? CTE_QP : CTE_8BIT;
	static const char *const csname[] = { "us-ascii", "utf-8", "iso-8859-1" };
	static const char *const ctename[] = { "7bit", "8bit", "quoted-printable" };
	if (headers)
		il_buf_printf(out, "Content-Type: text/plain; charset=%s\r\nContent-Transfer-Encoding: %s\r\n\r\n",
			      csname[cs], ctename[cte]);
	struct il_buf text = { 0 };
	gen_text(r, &text, body_size(r), cs, phrase);
	if (cte == CTE_QP)
		qp_encode(out, text.data, text.len);
	else
		il_buf_append(out, text.data, text.len);
	il_buf_free(&text);
}

static void html_part(struct il_rng *r, struct il_buf *out)
{
	il_buf_printf(out, "Content-Type: text/html; charset=utf-8\r\n"
			   "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
	struct il_buf text = { 0 };
	il_buf_printf(&text, "<html><head><meta charset=\"utf-8\"></head><body>\r\n<p>");
	gen_text(r, &text, body_size(r), CS_UTF8, false);
	il_buf_printf(&text, "</p>\r\n</body></html>\r\n");
	qp_encode(out, text.data, text.len);
	il_buf_free(&text);
}

static void subject(struct il_rng *r, struct il_buf *out)
{
	uint32_t k = il_rng_below(r, 10);
	int words = 2 + (int)il_rng_below(r, 6);
	il_buf_printf(out, "Subject: ");
	if (k == 0) {
		/* RFC 2047 B: base64 of UTF-8 words, made by hand. */
		struct il_buf raw = { 0 };
		for (int w = 0; w < words; w++)
			il_buf_printf(&raw, "%s%s", w ? " " : "", w % 2 ? PICK(r, utf8_words) : PICK(r, ascii_words));
		static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		il_buf_printf(out, "=?UTF-8?B?");
		const unsigned char *s = (const unsigned char *)raw.data;
		for (size_t i = 0; i < raw.len; i += 3) {
			uint32_t v = (uint32_t)s[i] << 16;
			if (i + 1 < raw.len)
				v |= (uint32_t)s[i + 1] << 8;
			if (i + 2 < raw.len)
				v |= s[i + 2];
			char q[4] = { b64[v >> 18], b64[(v >> 12) & 63], i + 1 < raw.len ? b64[(v >> 6) & 63] : '=',
				      i + 2 < raw.len ? b64[v & 63] : '=' };
			il_buf_append(out, q, 4);
		}
		il_buf_printf(out, "?=");
		il_buf_free(&raw);
	} else if (k == 1) {
		il_buf_printf(out, "=?ISO-8859-1?Q?");
		for (int w = 0; w < words; w++) {
			const char *word = w % 2 ? PICK(r, latin1_words) : PICK(r, ascii_words);
			if (w)
				il_buf_append(out, "_", 1);
			for (const unsigned char *c = (const unsigned char *)word; *c; c++) {
				if (*c >= 128)
					il_buf_printf(out, "=%02X", *c);
				else
					il_buf_append(out, c, 1);
			}
		}
		il_buf_printf(out, "?=");
	} else {
		if (k == 2)
			il_buf_printf(out, "Re: ");
		for (int w = 0; w < words; w++)
			il_buf_printf(out, "%s%s", w ? " " : "", PICK(r, ascii_words));
	}
	il_buf_append(out, "\r\n", 2);
}

static void headers(struct il_rng *r, uint64_t seed, uint64_t i, struct il_buf *out, bool walrus)
{
	static const char *const days[] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	uint64_t t = i * 613 + il_rng_below(r, 600);
	unsigned day = (unsigned)(t / 86400 % 28) + 1, month = (unsigned)(t / 86400 / 28 % 12);
	il_buf_printf(out, "Return-Path: <bounce-%llu@example.net>\r\n", (unsigned long long)i);
	il_buf_printf(out, "Received: from mx.example.net (mx.example.net [192.0.2.%u])\r\n"
			   "\tby mail.bench.example with ESMTPS id %016llx\r\n"
			   "\tfor <user@bench.example>; %s, %u %s 2024 %02u:%02u:%02u +0000\r\n",
		      1 + il_rng_below(r, 250), (unsigned long long)il_rng_next(r), days[(day + month) % 7],
		      day, months[month], (unsigned)(t / 3600 % 24), (unsigned)(t / 60 % 60), (unsigned)(t % 60));
	il_buf_printf(out, "Date: %s, %u %s 2024 %02u:%02u:%02u +0000\r\n", days[(day + month) % 7], day,
		      months[month], (unsigned)(t / 3600 % 24), (unsigned)(t / 60 % 60), (unsigned)(t % 60));
	il_buf_printf(out, "From: %s\r\n", walrus ? WALRUS_FROM : pick(r, people, NPEOPLE));
	il_buf_printf(out, "To: %s", pick(r, people, NPEOPLE));
	for (uint32_t k = il_rng_below(r, 3); k > 0; k--)
		il_buf_printf(out, ",\r\n %s", pick(r, people, NPEOPLE));
	il_buf_append(out, "\r\n", 2);
	if (il_rng_below(r, 4) == 0)
		il_buf_printf(out, "Cc: %s\r\n", pick(r, people, NPEOPLE));
	subject(r, out);
	il_buf_printf(out, "Message-ID: <%llu.%llx@bench.example>\r\n", (unsigned long long)i,
		      (unsigned long long)seed);
	if (il_rng_below(r, 3) == 0)
		il_buf_printf(out, "In-Reply-To: <%llu.%llx@bench.example>\r\n",
			      (unsigned long long)(i ? i - 1 : 0), (unsigned long long)seed);
	il_buf_printf(out, "MIME-Version: 1.0\r\n");
}

void genmail_message(uint64_t seed, uint64_t i, struct il_buf *out, struct genmail_traits *t_r)
{
	struct genmail_traits t;
	genmail_traits(seed, i, &t);
	if (t_r != NULL)
		*t_r = t;
	struct il_rng rng, *r = &rng;
	il_rng_seed(r, il_mix(seed, i));
	headers(r, seed, i, out, t.from_walrus);
	uint32_t kind = il_rng_below(r, 100);
	char boundary[48];
	snprintf(boundary, sizeof(boundary), "=_b%016llx", (unsigned long long)il_rng_next(r));
	if (kind < 50) {
		text_part(r, out, t.phrase, true);
	} else if (kind < 75) {
		il_buf_printf(out, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n", boundary);
		il_buf_printf(out, "This is a multi-part message in MIME format.\r\n\r\n--%s\r\n", boundary);
		text_part(r, out, t.phrase, true);
		il_buf_printf(out, "\r\n--%s\r\n", boundary);
		html_part(r, out);
		il_buf_printf(out, "\r\n--%s--\r\n", boundary);
	} else if (kind < 92) {
		static const char *const types[] = { "application/pdf", "image/jpeg", "image/png",
						     "application/zip", "text/calendar" };
		static const char *const names[] = { "report.pdf", "photo.jpg", "diagram.png", "archive.zip",
						     "invite.ics" };
		uint32_t a = il_rng_below(r, 5);
		il_buf_printf(out, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n--%s\r\n", boundary,
			      boundary);
		text_part(r, out, t.phrase, true);
		il_buf_printf(out, "\r\n--%s\r\nContent-Type: %s; name=\"%s\"\r\n"
				   "Content-Disposition: attachment; filename=\"%s\"\r\n"
				   "Content-Transfer-Encoding: base64\r\n\r\n",
			      boundary, types[a], names[a], names[a]);
		base64_lines(r, out, 2000 + il_rng_below(r, 58000));
		il_buf_printf(out, "\r\n--%s--\r\n", boundary);
	} else {
		il_buf_printf(out, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n--%s\r\n", boundary,
			      boundary);
		text_part(r, out, t.phrase, true);
		il_buf_printf(out, "\r\n--%s\r\nContent-Type: message/rfc822\r\n\r\n", boundary);
		/* The forwarded message never holds the phrase or the From
		 * word, so the counts stay exact. */
		headers(r, seed, i + 1000000007u, out, false);
		text_part(r, out, false, true);
		il_buf_printf(out, "\r\n--%s--\r\n", boundary);
	}
}
