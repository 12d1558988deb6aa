/*
 * imap_date.c - the dates IMAP deals in: date-time ("17-Jul-1996 02:44:25
 * -0700", APPEND and INTERNALDATE), date ("1-Feb-1994", SEARCH) and the
 * date part of an RFC 5322 Date: header (SENTBEFORE/SENTON/SENTSINCE).
 * Calendar arithmetic is proleptic Gregorian on day numbers (days since
 * 1970-01-01), no libc time functions, so no time zone state is touched.
 */
#include <stdint.h>
#include <string.h>

#include "imap_parse.h"
#include "imap_search.h"

static const char months[12][4] = { "jan", "feb", "mar", "apr", "may", "jun",
				    "jul", "aug", "sep", "oct", "nov", "dec" };

int32_t imap_days_from_civil(int y, unsigned m, unsigned d)
{
	/* H. Hinnant's days_from_civil */
	y -= m <= 2;
	const int era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (int32_t)(era * 146097 + (int)doe - 719468);
}

static unsigned days_in_month(int y, unsigned m)
{
	static const unsigned char dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dim[m - 1];
}

static int lc(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Month from 3 letters (case-insensitive) at p: 1..12 or 0. */
static unsigned month_of(const char *p)
{
	for (unsigned i = 0; i < 12; i++)
		if (lc((unsigned char)p[0]) == months[i][0] && lc((unsigned char)p[1]) == months[i][1] &&
		    lc((unsigned char)p[2]) == months[i][2])
			return i + 1;
	return 0;
}

static bool isdig(char c)
{
	return c >= '0' && c <= '9';
}

/* n digits at p[*i]; -1 if not all digits. */
static int digits(const char *p, size_t len, size_t *i, unsigned n)
{
	int v = 0;

	if (len - *i < n)
		return -1;
	for (unsigned k = 0; k < n; k++) {
		if (!isdig(p[*i + k]))
			return -1;
		v = v * 10 + (p[*i + k] - '0');
	}
	*i += n;
	return v;
}

/* "d-Mon-yyyy" or "dd-Mon-yyyy" or " d-Mon-yyyy" (fixed); *i advanced. */
static int parse_dmy(const char *p, size_t len, size_t *i, bool fixed, int *y_r,
		     unsigned *m_r, unsigned *d_r)
{
	int d;

	if (fixed && *i < len && p[*i] == ' ') {
		(*i)++;
		d = digits(p, len, i, 1);
	} else if (len - *i >= 2 && isdig(p[*i]) && isdig(p[*i + 1])) {
		d = digits(p, len, i, 2);
	} else {
		d = digits(p, len, i, 1);
	}
	if (d < 1 || *i >= len || p[*i] != '-' || len - *i < 5)
		return -1;
	unsigned m = month_of(p + *i + 1);
	if (m == 0 || p[*i + 4] != '-')
		return -1;
	*i += 5;
	int y = digits(p, len, i, 4);
	if (y < 0 || (unsigned)d > days_in_month(y, m))
		return -1;
	*y_r = y;
	*m_r = m;
	*d_r = (unsigned)d;
	return 0;
}

int imap_parse_date(const char *p, size_t len, int32_t *day_r)
{
	size_t i = 0;
	int y;
	unsigned m, d;

	if (parse_dmy(p, len, &i, false, &y, &m, &d) < 0 || i != len)
		return -1;
	*day_r = imap_days_from_civil(y, m, d);
	return 0;
}

int imap_parse_date_time(const char *p, size_t len, int64_t *t_r, int32_t *tz_r)
{
	size_t i = 0;
	int y;
	unsigned m, d;

	if (parse_dmy(p, len, &i, true, &y, &m, &d) < 0 || i >= len || p[i++] != ' ')
		return -1;
	int hh = digits(p, len, &i, 2);
	if (hh < 0 || i >= len || p[i++] != ':')
		return -1;
	int mm = digits(p, len, &i, 2);
	if (mm < 0 || i >= len || p[i++] != ':')
		return -1;
	int ss = digits(p, len, &i, 2);
	if (ss < 0 || i >= len || p[i++] != ' ' || i >= len || (p[i] != '+' && p[i] != '-'))
		return -1;
	int sign = p[i++] == '-' ? -1 : 1;
	int zh = digits(p, len, &i, 2);
	int zm = zh < 0 ? -1 : digits(p, len, &i, 2);
	if (zm < 0 || i != len || hh > 23 || mm > 59 || ss > 60 || zm > 59)
		return -1;
	int32_t tz = sign * (zh * 3600 + zm * 60);
	*t_r = (int64_t)imap_days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss - tz;
	*tz_r = tz;
	return 0;
}

static bool iswsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Skip folding white space and RFC 5322 comments (nesting bounded). */
static void skip_cfws(const char *p, size_t len, size_t *i)
{
	for (;;) {
		while (*i < len && iswsp(p[*i]))
			(*i)++;
		if (*i >= len || p[*i] != '(')
			return;
		unsigned depth = 0;
		while (*i < len) {
			char c = p[(*i)++];
			if (c == '\\' && *i < len)
				(*i)++;
			else if (c == '(')
				depth++;
			else if (c == ')' && --depth == 0)
				break;
		}
	}
}

int imap_parse_rfc5322_day(const char *p, size_t len, int32_t *day_r)
{
	size_t i = 0;

	skip_cfws(p, len, &i);
	if (i < len && !isdig(p[i])) {
		/* day-of-week, optionally followed by ',' */
		while (i < len && ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')))
			i++;
		skip_cfws(p, len, &i);
		if (i < len && p[i] == ',')
			i++;
		skip_cfws(p, len, &i);
	}
	int d = 0;
	unsigned nd = 0;
	while (i < len && isdig(p[i]) && nd < 3) {
		d = d * 10 + (p[i++] - '0');
		nd++;
	}
	if (nd == 0 || nd > 2 || d < 1)
		return -1;
	skip_cfws(p, len, &i);
	if (i < len && p[i] == '-')	/* "01-Jul-2003" seen in the wild */
		i++;
	if (len - i < 3)
		return -1;
	unsigned m = month_of(p + i);
	if (m == 0)
		return -1;
	while (i < len && ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')))
		i++;
	skip_cfws(p, len, &i);
	if (i < len && p[i] == '-')
		i++;
	int y = 0;
	nd = 0;
	while (i < len && isdig(p[i]) && nd < 5)
		y = y * 10 + (p[i++] - '0'), nd++;
	if (nd < 2 || nd > 4 || (i < len && isdig(p[i])))
		return -1;
	if (nd == 2)
		y += y < 50 ? 2000 : 1900;	/* RFC 5322 4.3 */
	else if (nd == 3)
		y += 1900;
	if ((unsigned)d > days_in_month(y, m))
		return -1;
	*day_r = imap_days_from_civil(y, m, (unsigned)d);
	return 0;
}
