/* SPDX-License-Identifier: MIT */
/* Field-level encoding and decoding shared by every message (see xfer.h). */
#include <endian.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto/xfer.h"

int xfer_fail(struct xfer *x, int err, const char *fmt, ...)
{
	va_list ap;

	if (x->err)
		return x->err;
	x->err = err;
	if (x->diag) {
		va_start(ap, fmt);
		vsnprintf(x->diag->text, sizeof(x->diag->text), fmt, ap);
		va_end(ap);
	}
	return err;
}

int xfer_invalid(const struct xfer *x)
{
	return x->encode ? -EINVAL : -EPROTO;
}

bool xfer_claim_fail(struct xfer *x, size_t n, const char *name)
{
	if (x->encode)
		xfer_fail(x, -ENOBUFS, "%s does not fit in a %zu-byte buffer (%s)", x->what, x->end,
			  name);
	else
		xfer_fail(x, -EBADMSG, "%s %s (%zu bytes) runs past the end of the payload", x->what,
			  name, n);
	return false;
}

void xfer_reserved_fail(struct xfer *x, const char *name)
{
	if (strpbrk(name, ".>")) /* "w.reserved" -> "reserved" */
		name = strpbrk(name, ".>") + 1;
	xfer_fail(x, -EPROTO, "%s field %s is not zero", x->what, name);
}

size_t text_invalid_at(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i];
		uint32_t cp, min;
		size_t n;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return i;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07, min = 0x10000;
		else
			return i;
		if (n > len - i - 1)
			return i;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return i;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		/* overlong forms, UTF-16 surrogates, beyond Unicode, C1 controls */
		if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff ||
		    (cp >= 0x80 && cp <= 0x9f))
			return i;
		i += n + 1;
	}
	return len;
}

void xfer_text(struct xfer *x, __le16 *wire_len, char *host, size_t max, const char *name)
{
	uint16_t len16 = 0;
	size_t len, place = 0, bad;
	const uint8_t *bytes;

	if (x->err)
		return;
	if (x->encode) {
		len = strnlen(host, max + 1);
		len16 = (uint16_t)len;
	} else {
		memcpy(&len16, wire_len, sizeof(len16));
		len = le16toh(len16);
	}
	if (len > max) {
		xfer_fail(x, -E2BIG, "%s %s is %s%zu bytes, at most %zu", x->what, name,
			  x->encode ? "over " : "", len, max);
		return;
	}
	if (!xfer_claim(x, len, name, &place))
		return;
	bytes = x->encode ? (const uint8_t *)host : x->in + place;
	bad = text_invalid_at(bytes, len);
	if (bad < len) {
		xfer_fail(x, xfer_invalid(x), "%s %s has byte 0x%02x at offset %zu: not UTF-8 text "
			  "without control characters", x->what, name, bytes[bad], bad);
		return;
	}
	if (x->encode) {
		memcpy(x->out + place, host, len);
		len16 = htole16(len16);
		memcpy(wire_len, &len16, sizeof(len16));
	} else {
		memcpy(host, bytes, len);
		host[len] = '\0';
	}
}

bool xfer_count(struct xfer *x, __le32 *wire_count, uint32_t *count, uint32_t max,
		size_t entry_min)
{
	XFER(x, *wire_count, *count);
	if (x->err)
		return false;
	if (*count > max) {
		xfer_fail(x, -E2BIG, "%s has %" PRIu32 " entries, at most %" PRIu32, x->what,
			  *count, max);
		return false;
	}
	if (!x->encode && (uint64_t)*count * entry_min > x->end - x->pos) {
		xfer_fail(x, -EBADMSG, "%s declares %" PRIu32 " entries of at least %zu bytes, "
			  "but only %zu bytes follow", x->what, *count, entry_min, x->end - x->pos);
		return false;
	}
	return true;
}

void *xfer_entries(struct xfer *x, void *entries, uint32_t count, size_t size)
{
	if (x->err || count == 0)
		return NULL;
	if (x->encode) {
		if (!entries)
			xfer_fail(x, -EINVAL, "%s has %" PRIu32 " entries but no array", x->what,
				  count);
		return entries;
	}
	entries = calloc(count, size);
	if (!entries)
		xfer_fail(x, -ENOMEM, "%s: out of memory for %" PRIu32 " entries", x->what, count);
	return entries;
}

void check_flags_fail(struct xfer *x, const char *name, uint64_t flags, uint64_t known)
{
	xfer_fail(x, xfer_invalid(x), "%s %s 0x%" PRIx64 " has unknown bits 0x%" PRIx64, x->what,
		  name, flags, flags & ~known);
}

void check_range_fail(struct xfer *x, const char *name, uint64_t value, uint64_t first,
		      uint64_t last)
{
	xfer_fail(x, xfer_invalid(x), "%s %s %" PRIu64 " is not in %" PRIu64 "..%" PRIu64, x->what,
		  name, value, first, last);
}

void check_image_set(struct xfer *x, uint32_t flags, const struct proto_image *image)
{
	uint32_t n = image->n_planes;

	if (!(flags & PROTO_ALLOC_IMAGE)) {
		xfer_fail(x, xfer_invalid(x), "%s has image metadata without the IMAGE flag", x->what);
		return;
	}
	if (n < 1 || n > PROTO_MAX_PLANES || image->width == 0 || image->height == 0) {
		xfer_fail(x, xfer_invalid(x), "%s image is %" PRIu32 "x%" PRIu32 " with %" PRIu32
			  " planes; needs a non-zero size and 1..%d planes", x->what,
			  image->width, image->height, n, PROTO_MAX_PLANES);
		return;
	}
	for (uint32_t i = 0; i < PROTO_MAX_PLANES; i++) {
		bool used = i < n;

		if (used ? image->strides[i] == 0 : image->strides[i] || image->offsets[i]) {
			xfer_fail(x, xfer_invalid(x), "%s image plane %" PRIu32 " has stride %" PRIu32
				  " and offset %" PRIu32 " (%s)", x->what, i, image->strides[i],
				  image->offsets[i], used ? "stride must not be 0" : "unused, must be 0");
			return;
		}
	}
}
