/*
 * imap_decode.c - streaming base64 / quoted-printable decoders, single-byte
 * charsets to UTF-8 and a caseless UTF-8 fold, for SEARCH (see
 * imap_decode.h).
 *
 * The decoders are byte-at-a-time state machines whose state survives
 * between calls, so a chunk boundary may fall anywhere.  Charsets are
 * table-driven: one 128-entry table of code points per charset for the
 * bytes 0x80-0xff (ISO-8859-1 shares Windows-1252's, see the header);
 * adding a single-byte charset is a table and a name.  The fold handles
 * only two-byte UTF-8 sequences whose folded form is also two bytes, so
 * its state is at most one pending lead byte.
 */
#include <string.h>

#include "imap_decode.h"

/* ---- base64 ------------------------------------------------------------- */

/* 0-63: value; 64: white space / line end (skipped); 65: '='; 66: junk */
enum { B64_WS = 64, B64_PAD = 65, B64_BAD = 66 };

static uint8_t b64_class(uint8_t ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return (uint8_t)(ch - 'A');
	if (ch >= 'a' && ch <= 'z')
		return (uint8_t)(ch - 'a' + 26);
	if (ch >= '0' && ch <= '9')
		return (uint8_t)(ch - '0' + 52);
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	if (ch == '=')
		return B64_PAD;
	if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\f' || ch == '\v')
		return B64_WS;
	return B64_BAD;
}

void imap_b64_init(struct imap_b64 *d)
{
	memset(d, 0, sizeof(*d));
}

size_t imap_b64_decode(struct imap_b64 *d, const void *in, size_t n, void *out)
{
	const uint8_t *s = in;
	uint8_t *o = out;
	uint32_t bits = d->bits;
	unsigned nbits = d->nbits;
	size_t w = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t v = b64_class(s[i]);
		if (v < 64) {
			bits = (bits << 6) | v;
			nbits += 6;
			if (nbits >= 8) {
				nbits -= 8;
				o[w++] = (uint8_t)(bits >> nbits);
				bits &= (1u << nbits) - 1;
			}
		} else if (v == B64_PAD) {
			bits = 0;	/* the rest of the quantum is padding */
			nbits = 0;
		} else if (v == B64_BAD) {
			d->bad++;
		}
	}
	d->bits = bits;
	d->nbits = nbits;
	return w;
}

/* ---- quoted-printable --------------------------------------------------- */

enum {
	QP_TEXT,	/* ordinary text */
	QP_EQ,		/* after "=" */
	QP_HEX,		/* after "=X", X a hex digit (in hex) */
	QP_WS,		/* after "=" and white space */
	QP_CR,		/* after "=" [white space] CR */
};

static int hexval(uint8_t ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

void imap_qp_init(struct imap_qp *d)
{
	memset(d, 0, sizeof(*d));
}

/* Write what the pending "=" sequence held, as it was. */
static size_t qp_pending(struct imap_qp *d, uint8_t *o)
{
	size_t w = 0;

	switch (d->state) {
	case QP_EQ:
		o[w++] = '=';
		break;
	case QP_HEX:
		o[w++] = '=';
		o[w++] = d->hex;
		break;
	case QP_WS:
		o[w++] = '=';
		memcpy(o + w, d->ws, d->nws);
		w += d->nws;
		break;
	default:
		break;
	}
	d->state = QP_TEXT;
	d->nws = 0;
	return w;
}

size_t imap_qp_decode(struct imap_qp *d, const void *in, size_t n, void *out)
{
	const uint8_t *s = in;
	uint8_t *o = out;
	size_t w = 0;
	size_t i = 0;

	while (i < n) {
		uint8_t ch = s[i];
		int h;

		switch (d->state) {
		case QP_TEXT:
			if (ch == '=') {
				d->state = QP_EQ;
				i++;
			} else {
				/* copy the run up to the next "=" in one go */
				const uint8_t *eq = memchr(s + i, '=', n - i);
				size_t k = eq != NULL ? (size_t)(eq - s) : n;
				memcpy(o + w, s + i, k - i);
				w += k - i;
				i = k;
			}
			continue;
		case QP_EQ:
			if (hexval(ch) >= 0) {
				d->hex = ch;
				d->state = QP_HEX;
			} else if (ch == '\r') {
				d->state = QP_CR;
			} else if (ch == '\n') {
				d->state = QP_TEXT;	/* soft line break */
			} else if (ch == ' ' || ch == '\t') {
				d->ws[0] = (char)ch;
				d->nws = 1;
				d->state = QP_WS;
			} else {
				break;	/* not an escape */
			}
			i++;
			continue;
		case QP_HEX:
			if ((h = hexval(ch)) >= 0) {
				o[w++] = (uint8_t)(hexval(d->hex) << 4 | h);
				d->state = QP_TEXT;
				i++;
				continue;
			}
			break;
		case QP_WS:
			if (ch == ' ' || ch == '\t') {
				if (d->nws < IMAP_QP_WS_MAX)
					d->ws[d->nws++] = (char)ch;
			} else if (ch == '\r') {
				d->nws = 0;
				d->state = QP_CR;
			} else if (ch == '\n') {
				d->nws = 0;
				d->state = QP_TEXT;
			} else {
				break;
			}
			i++;
			continue;
		case QP_CR:
			/* "=" CR LF; "=" and a bare CR too (ch is then text) */
			d->state = QP_TEXT;
			if (ch == '\n')
				i++;
			continue;
		}
		/* a broken "=" sequence: keep it as it is; ch is read again as
		 * text */
		d->bad++;
		w += qp_pending(d, o + w);
	}
	return w;
}

size_t imap_qp_finish(struct imap_qp *d, void *out)
{
	size_t w = 0;

	if (d->state == QP_HEX) {
		d->bad++;
		w = qp_pending(d, out);
	}
	/* "=" [ws] [CR] at the very end: a soft line break whose line end
	 * went to the boundary that follows the part */
	d->state = QP_TEXT;
	d->nws = 0;
	return w;
}

/* ---- charsets ----------------------------------------------------------- */

/* Code points of the bytes 0x80-0xff. */
static const uint16_t cp1252_hi[128] = {
	0x20ac, 0x0081, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
	0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008d, 0x017d, 0x008f,
	0x0090, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
	0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x009d, 0x017e, 0x0178,
	0x00a0, 0x00a1, 0x00a2, 0x00a3, 0x00a4, 0x00a5, 0x00a6, 0x00a7,
	0x00a8, 0x00a9, 0x00aa, 0x00ab, 0x00ac, 0x00ad, 0x00ae, 0x00af,
	0x00b0, 0x00b1, 0x00b2, 0x00b3, 0x00b4, 0x00b5, 0x00b6, 0x00b7,
	0x00b8, 0x00b9, 0x00ba, 0x00bb, 0x00bc, 0x00bd, 0x00be, 0x00bf,
	0x00c0, 0x00c1, 0x00c2, 0x00c3, 0x00c4, 0x00c5, 0x00c6, 0x00c7,
	0x00c8, 0x00c9, 0x00ca, 0x00cb, 0x00cc, 0x00cd, 0x00ce, 0x00cf,
	0x00d0, 0x00d1, 0x00d2, 0x00d3, 0x00d4, 0x00d5, 0x00d6, 0x00d7,
	0x00d8, 0x00d9, 0x00da, 0x00db, 0x00dc, 0x00dd, 0x00de, 0x00df,
	0x00e0, 0x00e1, 0x00e2, 0x00e3, 0x00e4, 0x00e5, 0x00e6, 0x00e7,
	0x00e8, 0x00e9, 0x00ea, 0x00eb, 0x00ec, 0x00ed, 0x00ee, 0x00ef,
	0x00f0, 0x00f1, 0x00f2, 0x00f3, 0x00f4, 0x00f5, 0x00f6, 0x00f7,
	0x00f8, 0x00f9, 0x00fa, 0x00fb, 0x00fc, 0x00fd, 0x00fe, 0x00ff,
};

static const uint16_t latin9_hi[128] = {
	0x0080, 0x0081, 0x0082, 0x0083, 0x0084, 0x0085, 0x0086, 0x0087,
	0x0088, 0x0089, 0x008a, 0x008b, 0x008c, 0x008d, 0x008e, 0x008f,
	0x0090, 0x0091, 0x0092, 0x0093, 0x0094, 0x0095, 0x0096, 0x0097,
	0x0098, 0x0099, 0x009a, 0x009b, 0x009c, 0x009d, 0x009e, 0x009f,
	0x00a0, 0x00a1, 0x00a2, 0x00a3, 0x20ac, 0x00a5, 0x0160, 0x00a7,
	0x0161, 0x00a9, 0x00aa, 0x00ab, 0x00ac, 0x00ad, 0x00ae, 0x00af,
	0x00b0, 0x00b1, 0x00b2, 0x00b3, 0x017d, 0x00b5, 0x00b6, 0x00b7,
	0x017e, 0x00b9, 0x00ba, 0x00bb, 0x0152, 0x0153, 0x0178, 0x00bf,
	0x00c0, 0x00c1, 0x00c2, 0x00c3, 0x00c4, 0x00c5, 0x00c6, 0x00c7,
	0x00c8, 0x00c9, 0x00ca, 0x00cb, 0x00cc, 0x00cd, 0x00ce, 0x00cf,
	0x00d0, 0x00d1, 0x00d2, 0x00d3, 0x00d4, 0x00d5, 0x00d6, 0x00d7,
	0x00d8, 0x00d9, 0x00da, 0x00db, 0x00dc, 0x00dd, 0x00de, 0x00df,
	0x00e0, 0x00e1, 0x00e2, 0x00e3, 0x00e4, 0x00e5, 0x00e6, 0x00e7,
	0x00e8, 0x00e9, 0x00ea, 0x00eb, 0x00ec, 0x00ed, 0x00ee, 0x00ef,
	0x00f0, 0x00f1, 0x00f2, 0x00f3, 0x00f4, 0x00f5, 0x00f6, 0x00f7,
	0x00f8, 0x00f9, 0x00fa, 0x00fb, 0x00fc, 0x00fd, 0x00fe, 0x00ff,
};

static const struct {
	const char *name;
	enum imap_charset cs;
} cs_names[] = {
	{ "utf-8", IMAP_CS_UTF8 },		{ "utf8", IMAP_CS_UTF8 },
	{ "us-ascii", IMAP_CS_UTF8 },		{ "ascii", IMAP_CS_UTF8 },
	{ "us", IMAP_CS_UTF8 },			{ "ansi_x3.4-1968", IMAP_CS_UTF8 },
	{ "iso-8859-1", IMAP_CS_LATIN1 },	{ "iso8859-1", IMAP_CS_LATIN1 },
	{ "iso_8859-1", IMAP_CS_LATIN1 },	{ "latin1", IMAP_CS_LATIN1 },
	{ "latin-1", IMAP_CS_LATIN1 },		{ "l1", IMAP_CS_LATIN1 },
	{ "cp819", IMAP_CS_LATIN1 },
	{ "iso-8859-15", IMAP_CS_LATIN9 },	{ "iso8859-15", IMAP_CS_LATIN9 },
	{ "iso_8859-15", IMAP_CS_LATIN9 },	{ "latin9", IMAP_CS_LATIN9 },
	{ "latin-9", IMAP_CS_LATIN9 },		{ "l9", IMAP_CS_LATIN9 },
	{ "windows-1252", IMAP_CS_CP1252 },	{ "cp1252", IMAP_CS_CP1252 },
	{ "x-cp1252", IMAP_CS_CP1252 },
};

enum imap_charset imap_charset_lookup(const char *name, size_t len)
{
	const char *star = name != NULL ? memchr(name, '*', len) : NULL;

	if (name == NULL)
		return IMAP_CS_UNKNOWN;
	if (star != NULL)
		len = (size_t)(star - name);
	for (size_t k = 0; k < sizeof(cs_names) / sizeof(cs_names[0]); k++) {
		const char *c = cs_names[k].name;
		size_t i;
		for (i = 0; i < len && c[i] != '\0'; i++) {
			char ch = name[i];
			if (ch >= 'A' && ch <= 'Z')
				ch = (char)(ch + 32);
			if (ch != c[i])
				break;
		}
		if (i == len && c[i] == '\0')
			return cs_names[k].cs;
	}
	return IMAP_CS_UNKNOWN;
}

bool imap_charset_is_raw(enum imap_charset cs)
{
	return cs == IMAP_CS_UTF8 || cs == IMAP_CS_UNKNOWN;
}

size_t imap_charset_to_utf8(enum imap_charset cs, const void *in, size_t n, void *out)
{
	const uint8_t *s = in;
	uint8_t *o = out;
	const uint16_t *hi;
	size_t w = 0;

	switch (cs) {
	case IMAP_CS_LATIN1:
	case IMAP_CS_CP1252:
		hi = cp1252_hi;
		break;
	case IMAP_CS_LATIN9:
		hi = latin9_hi;
		break;
	default:
		memcpy(o, s, n);
		return n;
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t b = s[i];
		if (b < 0x80) {
			o[w++] = b;
			continue;
		}
		uint16_t cp = hi[b - 0x80];
		if (cp < 0x800) {
			o[w++] = (uint8_t)(0xc0 | (cp >> 6));
			o[w++] = (uint8_t)(0x80 | (cp & 0x3f));
		} else {
			o[w++] = (uint8_t)(0xe0 | (cp >> 12));
			o[w++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
			o[w++] = (uint8_t)(0x80 | (cp & 0x3f));
		}
	}
	return w;
}

/* ---- caseless fold ------------------------------------------------------- */

uint32_t imap_fold_cp(uint32_t cp)
{
	if (cp < 0x80)
		return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
	if (cp >= 0xc0 && cp <= 0xde && cp != 0xd7)
		return cp + 0x20;			/* Latin-1 */
	if (cp >= 0x100 && cp <= 0x17f) {		/* Latin Extended-A */
		if ((cp <= 0x12f || (cp >= 0x132 && cp <= 0x137) ||
		     (cp >= 0x14a && cp <= 0x177)) && (cp & 1) == 0)
			return cp + 1;
		if (((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17e)) &&
		    (cp & 1) == 1)
			return cp + 1;
		if (cp == 0x178)
			return 0xff;			/* Y diaeresis */
		return cp;
	}
	if (cp >= 0x386 && cp <= 0x3ab) {		/* Greek */
		if (cp == 0x386)
			return 0x3ac;
		if (cp >= 0x388 && cp <= 0x38a)
			return cp + 0x25;
		if (cp == 0x38c)
			return 0x3cc;
		if (cp == 0x38e || cp == 0x38f)
			return cp + 0x3f;
		if (cp >= 0x391 && cp != 0x3a2)
			return cp + 0x20;
		return cp;
	}
	if (cp == 0x3c2)
		return 0x3c3;				/* final sigma */
	if (cp >= 0x400 && cp <= 0x40f)
		return cp + 0x50;			/* Cyrillic */
	if (cp >= 0x410 && cp <= 0x42f)
		return cp + 0x20;
	if (cp >= 0x460 && cp <= 0x47f && (cp & 1) == 0)
		return cp + 1;
	return cp;
}

void imap_fold_init(struct imap_fold *f)
{
	f->lead = 0;
}

/* Lead bytes of U+00C0-U+047F, the only sequences folded. */
static bool fold_lead(uint8_t b)
{
	return b >= 0xc3 && b <= 0xd1;
}

size_t imap_fold_utf8(struct imap_fold *f, const void *in, size_t n, void *out)
{
	const uint8_t *s = in;
	uint8_t *o = out;
	size_t w = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t b = s[i];
		if (f->lead != 0) {
			uint8_t lead = f->lead;
			f->lead = 0;
			if ((b & 0xc0) == 0x80) {
				uint32_t cp = imap_fold_cp((uint32_t)(lead & 0x1f) << 6 | (b & 0x3f));
				o[w++] = (uint8_t)(0xc0 | (cp >> 6));
				o[w++] = (uint8_t)(0x80 | (cp & 0x3f));
				continue;
			}
			o[w++] = lead;
		}
		if (b < 0x80)
			o[w++] = b >= 'A' && b <= 'Z' ? (uint8_t)(b + 32) : b;
		else if (fold_lead(b))
			f->lead = b;
		else
			o[w++] = b;
	}
	return w;
}

size_t imap_fold_finish(struct imap_fold *f, void *out)
{
	if (f->lead == 0)
		return 0;
	*(uint8_t *)out = f->lead;
	f->lead = 0;
	return 1;
}
