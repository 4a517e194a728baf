// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Migration compatibility from two device descriptions, without starting a
 * migration (Documentation/compatibility.rst).
 *
 * A description ("migration_info") is text, one item a line:
 *
 *	model <model string>
 *	param <name> <uint|bool> allowed=<v|lo-hi>[,...] off=<v>
 *
 * The source's parameter list is "name=value ..." (an instance's
 * migration_params).  Migration is possible when the models match; when
 * every source parameter is known to the destination with the source's
 * value allowed, except a parameter at its off value, which a destination
 * that predates it may lack; and when every destination parameter the
 * source lacks accepts its off value, which the destination then takes.
 * The destination is created with the source's values, so a parameter such
 * as chunk_size, whose every value has an effect, must match as a value,
 * not as "off".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_PARAMS	32
#define NAME_LEN	64
#define LIST_LEN	512

struct param {
	char name[NAME_LEN];
	char allowed[LIST_LEN];
	uint64_t off;
};

struct desc {
	char model[NAME_LEN];
	struct param p[MAX_PARAMS];
	unsigned int n;
};

static int parse_u64(const char *s, const char *end, uint64_t *v)
{
	char *e;

	if (s == end)
		return -EINVAL;
	errno = 0;
	*v = strtoull(s, &e, 0);
	return errno || e != end ? -EINVAL : 0;
}

static int parse_desc(const char *text, struct desc *d)
{
	const char *line = text, *nl;
	char buf[LIST_LEN + 2 * NAME_LEN + 64];
	char name[NAME_LEN], type[16], allowed[LIST_LEN], off[32];

	memset(d, 0, sizeof(*d));
	for (; *line; line = nl ? nl + 1 : line + strlen(line)) {
		size_t len;

		nl = strchr(line, '\n');
		len = nl ? (size_t)(nl - line) : strlen(line);
		if (!len)
			continue;
		if (len >= sizeof(buf))
			return -EINVAL;
		memcpy(buf, line, len);
		buf[len] = '\0';
		if (sscanf(buf, "model %63s", d->model) == 1)
			continue;
		if (sscanf(buf, "param %63s %15s allowed=%511s off=%31s", name,
			   type, allowed, off) != 4 || d->n == MAX_PARAMS)
			return -EINVAL;
		strcpy(d->p[d->n].name, name);
		strcpy(d->p[d->n].allowed, allowed);
		if (parse_u64(off, off + strlen(off), &d->p[d->n].off))
			return -EINVAL;
		d->n++;
	}
	return d->model[0] ? 0 : -EINVAL;
}

static const struct param *find_param(const struct desc *d, const char *name)
{
	unsigned int i;

	for (i = 0; i < d->n; i++)
		if (!strcmp(d->p[i].name, name))
			return &d->p[i];
	return NULL;
}

/* Is v in an "a,b,lo-hi,..." list? */
static bool allowed(const char *list, uint64_t v)
{
	const char *item = list;

	while (*item) {
		const char *comma = strchr(item, ',');
		const char *end = comma ? comma : item + strlen(item);
		const char *dash = memchr(item, '-', end - item);
		uint64_t lo, hi;

		if (dash) {
			if (!parse_u64(item, dash, &lo) &&
			    !parse_u64(dash + 1, end, &hi) && v >= lo && v <= hi)
				return true;
		} else if (!parse_u64(item, end, &lo) && v == lo) {
			return true;
		}
		item = comma ? comma + 1 : end;
	}
	return false;
}

static int fail(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	if (why && why_len) {
		va_start(ap, fmt);
		vsnprintf(why, why_len, fmt, ap);
		va_end(ap);
	}
	return -EMEDIUMTYPE;
}

VMIG_EXPORT int vmig_compat_check(const char *src_info, const char *src_params,
				  const char *dst_info, char *why,
				  size_t why_len)
{
	struct desc *src, *dst;
	char name[NAME_LEN], val[32];
	const char *cur;
	bool seen[MAX_PARAMS] = { false };
	unsigned int i;
	int ret = 0, n;

	if (!src_info || !src_params || !dst_info)
		return -EINVAL;
	src = calloc(1, sizeof(*src));
	dst = calloc(1, sizeof(*dst));
	if (!src || !dst) {
		ret = -ENOMEM;
		goto out;
	}
	if (parse_desc(src_info, src) || parse_desc(dst_info, dst)) {
		ret = -EINVAL;
		goto out;
	}
	if (strcmp(src->model, dst->model)) {
		ret = fail(why, why_len, "device model %s is not %s",
			   src->model, dst->model);
		goto out;
	}
	for (cur = src_params; *cur; cur += n) {
		const struct param *sp, *dp;
		uint64_t v;

		if (sscanf(cur, " %63[^= ]=%31s%n", name, val, &n) != 2)
			break;
		sp = find_param(src, name);
		if (!sp || parse_u64(val, val + strlen(val), &v)) {
			ret = -EINVAL;
			goto out;
		}
		dp = find_param(dst, name);
		if (dp)
			seen[dp - dst->p] = true;
		if (!dp && v == sp->off)
			continue;	/* a feature the destination predates */
		if (!dp) {
			ret = fail(why, why_len,
				   "destination has no parameter %s (source: %s=%s)",
				   name, name, val);
			goto out;
		}
		if (!allowed(dp->allowed, v)) {
			ret = fail(why, why_len,
				   "destination does not allow %s=%s (allowed: %s)",
				   name, val, dp->allowed);
			goto out;
		}
	}
	/* destination parameters the source list leaves out get their off value */
	for (i = 0; i < dst->n; i++) {
		if (!seen[i] && !find_param(src, dst->p[i].name) &&
		    !allowed(dst->p[i].allowed, dst->p[i].off)) {
			ret = fail(why, why_len,
				   "destination parameter %s cannot be off",
				   dst->p[i].name);
			goto out;
		}
	}
out:
	free(src);
	free(dst);
	return ret;
}
