/* SPDX-License-Identifier: MIT */
/*
 * What every libpmtrack header shares: the export attribute and the
 * options-struct conventions.
 *
 * Options and statistics structs start with `size_t sz`, the size of the
 * struct the caller was compiled with, and end with `size_t : 0` so that
 * their size covers their last field and nothing a later version adds.
 * A later version adds fields only past the end of the struct (never in
 * its tail padding), and the library never reads that padding.
 *  - Options: a NULL pointer means "all defaults".  A struct from a newer
 *    header whose extra fields are all zero is accepted; non-zero unknown
 *    fields give -EINVAL; a struct from an older header gets the defaults
 *    for the fields it lacks.
 *  - Statistics: the library writes the fields both sides know, never a
 *    byte past the caller's sz, and zeroes the rest of a larger (newer)
 *    caller's struct; sz is left as the caller set it.  An sz smaller than
 *    a size_t gives -EINVAL.
 */
#ifndef PMTRACK_COMMON_H
#define PMTRACK_COMMON_H

#include <pmtrack/version.h>

#ifndef PMTRACK_API
#define PMTRACK_API __attribute__((visibility("default")))
#endif

/**
 * PMTRACK_OPTS() - declare and initialise an options struct.
 * @TYPE: struct tag without "struct", e.g. pmtrack_opts
 * @NAME: variable name
 * @...: designated initialisers, e.g. .backend = PMTRACK_BACKEND_PAGEMAP_SCAN
 *
 * Zeroes every field, then sets sz and the given fields.  (Padding bytes
 * may hold anything: the compiler may copy the initialiser with them.)
 * Use it for statistics structs too, so that sz is set.
 */
#define PMTRACK_OPTS(TYPE, NAME, ...)                                          \
	struct TYPE NAME = ({                                                  \
		struct TYPE __pmt_##NAME;                                      \
		__builtin_memset(&__pmt_##NAME, 0, sizeof(__pmt_##NAME));      \
		__pmt_##NAME = (struct TYPE){ .sz = sizeof(struct TYPE),       \
					      __VA_ARGS__ };                   \
		__pmt_##NAME;                                                  \
	})

#endif /* PMTRACK_COMMON_H */
