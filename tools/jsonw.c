// SPDX-License-Identifier: MIT
/* The JSON writer of every --json output, over json-c (jsonw.h). */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "jsonw.h"

/* compact, and paths keep their '/' */
#define JW_FORMAT (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* a value or member could not be made: out of memory */
static bool jw_failed;

static struct json_object *made(struct json_object *v)
{
	if (!v)
		jw_failed = true;
	return v;
}

struct json_object *jw_obj(void)
{
	return made(json_object_new_object());
}

struct json_object *jw_arr(void)
{
	return made(json_object_new_array());
}

void jw_set(struct json_object *o, const char *key, struct json_object *v)
{
	if (!o || json_object_object_add(o, key, v)) {
		jw_failed = true;
		json_object_put(v);
	}
}

void jw_push(struct json_object *a, struct json_object *v)
{
	if (!a || json_object_array_add(a, v)) {
		jw_failed = true;
		json_object_put(v);
	}
}

struct json_object *jw_u64(uint64_t v)
{
	return made(json_object_new_uint64(v));
}

struct json_object *jw_i64(int64_t v)
{
	return made(json_object_new_int64(v));
}

struct json_object *jw_bool(bool v)
{
	return made(json_object_new_boolean(v));
}

static bool utf8_valid(const char *s)
{
	size_t n;

	for (; *s; s += n) {
		n = utf8_char_len(s);
		if (!n)
			return false;
	}
	return true;
}

/* @s with each byte that starts no UTF-8 character as U+0080..U+00FF */
static char *utf8_clean(const char *s)
{
	char *d = malloc(2 * strlen(s) + 1), *q = d;
	size_t n;

	if (!d)
		return NULL;
	for (; *s; s += n) {
		unsigned char c = (unsigned char)*s;

		n = utf8_char_len(s);
		if (n) {
			memcpy(q, s, n);
			q += n;
			continue;
		}
		*q++ = (char)(0xc0 | c >> 6);
		*q++ = (char)(0x80 | (c & 0x3f));
		n = 1;
	}
	*q = 0;
	return d;
}

struct json_object *jw_str(const char *s)
{
	char *clean;
	struct json_object *v;

	if (!s)
		return NULL;
	if (utf8_valid(s))
		return made(json_object_new_string(s));
	clean = utf8_clean(s);
	v = clean ? json_object_new_string(clean) : NULL;
	free(clean);
	return made(v);
}

struct json_object *jw_hex(const uint8_t *b, size_t n)
{
	char *s;
	struct json_object *v;

	if (!b)
		return NULL;
	s = malloc(2 * n + 1);
	if (!s)
		return made(NULL);
	for (size_t i = 0; i < n; i++)
		snprintf(s + 2 * i, 3, "%02x", b[i]);
	s[2 * n] = 0;
	v = json_object_new_string(s);
	free(s);
	return made(v);
}

struct json_object *jw_addr(uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
	return made(json_object_new_string(buf));
}

struct json_object *jw_fixed(double v, int decimals)
{
	char buf[512]; /* %f of the largest double */

	if (!isfinite(v))
		return NULL; /* JSON has no NaN or infinity: null */
	snprintf(buf, sizeof(buf), "%.*f", decimals, v);
	return made(json_object_new_double_s(v, buf));
}

struct json_object *jw_head(const char *cmd, const char *type)
{
	struct json_object *o = jw_obj();

	jw_set(o, "cmd", jw_str(cmd));
	jw_set(o, "type", jw_str(type));
	return o;
}

struct json_object *jw_ms(uint64_t ns)
{
	return jw_fixed((double)ns / 1e6, 3);
}

void jw_outcome(struct json_object *o, int ret)
{
	const char *e = cli_last_error();

	jw_set(o, "ok", jw_bool(ret == CLI_OK));
	jw_set(o, "error", jw_str(ret == CLI_OK ? NULL
				    : e	       ? e
						       : "failed"));
}

void jw_merge(struct json_object *dst, struct json_object *src)
{
	if (!src)
		return;
	json_object_object_foreach(src, key, val)
	{
		json_object_get(val);
		jw_set(dst, key, val);
	}
	json_object_put(src);
}

int jw_print(const char *cmd, FILE *f, struct json_object *doc)
{
	const char *s =
		jw_failed ? NULL
			  : json_object_to_json_string_ext(doc, JW_FORMAT);
	int ret = CLI_OK;

	if (s) {
		fputs(s, f);
		fputc('\n', f);
		fflush(f); /* JSON Lines: each as it happens */
	} else {
		cli_err(cmd, "out of memory for the JSON document");
		ret = CLI_ERROR;
	}
	json_object_put(doc);
	jw_failed = false;
	return ret;
}
