/*
 * imap_msgutil.c - pure helpers of the IMAP message commands: partial
 * slicing and piece splitting for BODY[...]<start.count>, the FETCH
 * section conversion, the date-time format and sequence-set writing.  No I/O; see imap_msgutil.h.
 */
#include "imap_msgutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "imap_body.h"

void imap_partial_slice(uint64_t len, bool partial, uint32_t start, uint32_t count,
			uint64_t *skip_r, uint64_t *n_r)
{
	if (!partial) {
		*skip_r = 0;
		*n_r = len;
		return;
	}
	if (start >= len) {
		*skip_r = len;
		*n_r = 0;
		return;
	}
	*skip_r = start;
	*n_r = len - start < count ? len - start : count;
}

bool imap_msg_pieces(const char *prefix, size_t prefix_len, const char *body, size_t body_len,
		     uint64_t off, uint64_t n, const char *p_r[2], size_t len_r[2])
{
	uint64_t total = (uint64_t)prefix_len + body_len;
	size_t k = 0;

	p_r[0] = p_r[1] = NULL;
	len_r[0] = len_r[1] = 0;
	if (off > total || n > total - off)
		return false;
	if (n == 0)
		return true;
	if (off < prefix_len) {
		uint64_t take = prefix_len - off < n ? prefix_len - off : n;
		p_r[k] = prefix + off;
		len_r[k++] = (size_t)take;
		off += take;
		n -= take;
	}
	if (n > 0) {
		p_r[k] = body + (off - prefix_len);
		len_r[k] = (size_t)n;
	}
	return true;
}

int imap_fetch_section(const struct imap_fetch_body *b, struct imap_section *sec_r,
		       const char **error_r)
{
	memset(sec_r, 0, sizeof(*sec_r));
	if (b->n_part > IMAP_SECTION_PARTS_MAX) {
		*error_r = "Section part number too deep";
		return -1;
	}
	for (size_t i = 0; i < b->n_part; i++)
		sec_r->part[i] = b->part[i];
	sec_r->n_part = b->n_part;
	switch (b->kind) {
	case IMAP_SECTION_ALL:
		sec_r->kind = IMAP_SECT_BODY;
		break;
	case IMAP_SECTION_HEADER:
		sec_r->kind = IMAP_SECT_HEADER;
		break;
	case IMAP_SECTION_TEXT:
		sec_r->kind = IMAP_SECT_TEXT;
		break;
	case IMAP_SECTION_MIME:
		sec_r->kind = IMAP_SECT_MIME;
		break;
	case IMAP_SECTION_HEADER_FIELDS:
	case IMAP_SECTION_HEADER_FIELDS_NOT:
		sec_r->kind = b->kind == IMAP_SECTION_HEADER_FIELDS ? IMAP_SECT_FIELDS
								     : IMAP_SECT_FIELDS_NOT;
		if (b->n_fields == 0 || b->n_fields > IMAP_SECTION_FIELDS_MAX) {
			*error_r = b->n_fields == 0 ? "Empty header field list"
						    : "Too many header field names";
			return -1;
		}
		for (size_t i = 0; i < b->n_fields; i++) {
			sec_r->fields[i].p = b->fields[i].s;
			sec_r->fields[i].len = b->fields[i].len;
		}
		sec_r->n_fields = b->n_fields;
		break;
	default:
		*error_r = "Invalid section";
		return -1;
	}
	return 0;
}

/* H. Hinnant's civil_from_days. */
static void civil_from_days(int64_t z, int *y_r, unsigned *m_r, unsigned *d_r)
{
	z += 719468;
	const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	const unsigned doe = (unsigned)(z - era * 146097);
	const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	const int64_t y = (int64_t)yoe + era * 400;
	const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	const unsigned mp = (5 * doy + 2) / 153;
	const unsigned d = doy - (153 * mp + 2) / 5 + 1;
	const unsigned m = mp < 10 ? mp + 3 : mp - 9;

	*y_r = (int)(y + (m <= 2));
	*m_r = m;
	*d_r = d;
}

void imap_format_date_time(int64_t t, int32_t tz, char buf[IMAP_DATE_TIME_LEN + 1])
{
	static const char mon[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	int64_t lt = t + tz;
	int64_t days = lt >= 0 ? lt / 86400 : -((-lt + 86399) / 86400);
	int64_t secs = lt - days * 86400;
	int y;
	unsigned m, d;
	int32_t atz = tz < 0 ? -tz : tz;

	civil_from_days(days, &y, &m, &d);
	if (y < 0)
		y = 0;
	if (y > 9999)
		y = 9999;
	snprintf(buf, IMAP_DATE_TIME_LEN + 1, "%2u-%s-%04d %02u:%02u:%02u %c%02u%02u", d,
		 mon[m - 1], y, (unsigned)(secs / 3600), (unsigned)(secs / 60 % 60),
		 (unsigned)(secs % 60), tz < 0 ? '-' : '+', (unsigned)(atz / 3600 % 100),
		 (unsigned)(atz / 60 % 60));
}

int32_t imap_tz_offset(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL)
		return 0;
	if (tm.tm_gmtoff < -14 * 3600 || tm.tm_gmtoff > 14 * 3600)
		return 0;
	return (int32_t)tm.tm_gmtoff;
}

static int write_range(struct imap_buf *out, bool first, uint32_t lo, uint32_t hi)
{
	char tmp[32];
	int k;

	if (lo == hi)
		k = snprintf(tmp, sizeof(tmp), "%s%" PRIu32, first ? "" : ",", lo);
	else
		k = snprintf(tmp, sizeof(tmp), "%s%" PRIu32 ":%" PRIu32, first ? "" : ",", lo, hi);
	return imap_buf_add(out, tmp, (size_t)k);
}

int imap_setbuilder_add(struct imap_setbuilder *sb, struct imap_buf *out, uint32_t x)
{
	if (sb->have) {
		if (x >= sb->lo && x <= sb->hi)
			return out->failed ? -1 : 0;
		if (x == sb->hi + 1 && sb->hi != UINT32_MAX) {
			sb->hi = x;
			sb->count++;
			return out->failed ? -1 : 0;
		}
		if (write_range(out, !sb->written, sb->lo, sb->hi) < 0)
			return -1;
		sb->written = true;
	}
	sb->have = true;
	sb->lo = sb->hi = x;
	sb->count++;
	return out->failed ? -1 : 0;
}

int imap_setbuilder_finish(struct imap_setbuilder *sb, struct imap_buf *out)
{
	if (sb->have) {
		if (write_range(out, !sb->written, sb->lo, sb->hi) < 0)
			return -1;
		sb->have = false;
		sb->written = true;
	}
	return out->failed ? -1 : 0;
}

int imap_write_uid_pairs(struct imap_buf *out, const uint32_t *src, const uint32_t *dst,
			 size_t n)
{
	bool ascending = true;

	for (size_t i = 1; i < n && ascending; i++)
		ascending = src[i] > src[i - 1] && dst[i] > dst[i - 1];
	for (int pass = 0; pass < 2; pass++) {
		const uint32_t *v = pass == 0 ? src : dst;

		if (pass == 1 && imap_buf_add(out, " ", 1) < 0)
			return -1;
		if (ascending) {
			struct imap_setbuilder sb = { 0 };

			for (size_t i = 0; i < n; i++)
				if (imap_setbuilder_add(&sb, out, v[i]) < 0)
					return -1;
			if (imap_setbuilder_finish(&sb, out) < 0)
				return -1;
		} else {
			for (size_t i = 0; i < n; i++)
				if (write_range(out, i == 0, v[i], v[i]) < 0)
					return -1;
		}
	}
	return 0;
}
