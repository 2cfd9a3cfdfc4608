/* SPDX-License-Identifier: MIT */
/*
 * The JSON writer of every --json output (jsonw.c), over json-c: a
 * document is built as a tree of json-c objects, members in the order
 * they are added, and printed on one line without spaces.  NULL stands
 * for null.  Running out of memory while building is remembered and
 * reported by jw_print() instead of the document.
 */
#ifndef PMTRACK_TOOLS_JSONW_H
#define PMTRACK_TOOLS_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

struct json_object *jw_obj(void);
struct json_object *jw_arr(void);
/* Add @v (NULL: null) as member @key of object @o. */
void jw_set(struct json_object *o, const char *key, struct json_object *v);
/* Add @v (NULL: null) at the end of array @a. */
void jw_push(struct json_object *a, struct json_object *v);

struct json_object *jw_u64(uint64_t v);
struct json_object *jw_i64(int64_t v);
struct json_object *jw_bool(bool v);
/* a string; NULL for NULL.  Bytes that are not UTF-8 become the characters
   U+0080..U+00FF, so that the document is UTF-8 whatever @s holds. */
struct json_object *jw_str(const char *s);
/* @n bytes as a lower-case hex string; NULL for NULL */
struct json_object *jw_hex(const uint8_t *b, size_t n);
/* an address as a hex string, "0x7f12a000" */
struct json_object *jw_addr(uint64_t v);
/* a number printed with @decimals digits after the point ("%.3f"); null
   (NULL) for NaN and infinities, which JSON cannot write */
struct json_object *jw_fixed(double v, int decimals);

/* a new object whose first members are "cmd": @cmd and "type": @type
   ("status" or "result") */
struct json_object *jw_head(const char *cmd, const char *type);
/* nanoseconds as milliseconds with three decimals (keys ending in _ms) */
struct json_object *jw_ms(uint64_t ns);
/* a result's outcome: "ok" (@ret == 0, CLI_OK) and "error" (the first
   message printed, or null) */
void jw_outcome(struct json_object *o, int ret);

/* Move the members of @src (NULL: none) to the end of @dst, in their
   order, and free @src: a result built before its outcome was known. */
void jw_merge(struct json_object *dst, struct json_object *src);

/* Print @doc and a newline on @f and free @doc: CLI_OK, or CLI_ERROR after
   a message if building it ran out of memory. */
int jw_print(const char *cmd, FILE *f, struct json_object *doc);

#endif /* PMTRACK_TOOLS_JSONW_H */
