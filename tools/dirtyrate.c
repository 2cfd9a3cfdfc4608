// SPDX-License-Identifier: MIT
/* The dirty rate and working set of pmtrack track (dirtyrate.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bits.h"
#include "dirtyrate.h"

static size_t slot(const struct dr *d)
{
	return (size_t)(d->interval % DR_WINDOW);
}

void dr_begin(struct dr *d)
{
	d->interval++;
	d->pages = d->full_pages = d->ws = 0;
	for (size_t i = 0; i < d->n; i++) {
		struct dr_map *m = &d->m[i];

		m->pages = 0;
		memset(m->ring[slot(d)], 0,
		       bits_words(m->npages) * sizeof(uint64_t));
	}
}

/* the index of (@pid, @start), or where it would go */
static size_t find(const struct dr *d, int pid, uint64_t start)
{
	size_t lo = 0, hi = d->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct dr_map *m = &d->m[mid];

		if (m->pid < pid || (m->pid == pid && m->start < start))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void map_free(struct dr_map *m)
{
	free(m->name);
	for (int k = 0; k < DR_WINDOW; k++)
		free(m->ring[k]);
}

/* the bitmaps of @m for @npages pages (the pages past the old size
   cleared) */
static int map_size(struct dr_map *m, uint64_t npages)
{
	size_t ow = bits_words(m->npages), nw = bits_words(npages);

	for (int k = 0; k < DR_WINDOW; k++) {
		uint64_t *p = realloc(m->ring[k], (nw ? nw : 1) * 8);

		if (!p)
			return -ENOMEM;
		m->ring[k] = p;
		if (nw > ow)
			memset(p + ow, 0, (nw - ow) * 8);
		if (npages < m->npages && npages % 64)
			p[npages / 64] &= bits_mask(0, npages % 64);
	}
	m->npages = npages;
	return 0;
}

/* the entry of @r's mapping, made or resized as needed */
static struct dr_map *map_get(struct dr *d, const struct pmtrack_proc_report *r)
{
	const struct pmtrack_mapping *pm = r->map;
	size_t i = find(d, r->pid, pm->start);
	struct dr_map *m = &d->m[i];
	char *name;

	if (i == d->n || m->pid != r->pid || m->start != pm->start) {
		if (d->n == d->cap) {
			size_t c = d->cap ? 2 * d->cap : 64;
			struct dr_map *v = realloc(d->m, c * sizeof(*v));

			if (!v)
				return NULL;
			d->m = v;
			d->cap = c;
		}
		m = &d->m[i];
		memmove(m + 1, m, (d->n - i) * sizeof(*m));
		memset(m, 0, sizeof(*m));
		m->pid = r->pid;
		m->start = pm->start;
		d->n++;
	}
	name = strdup(pm->name ? pm->name : "");
	if (!name || map_size(m, (pm->end - pm->start) / d->pgsz)) {
		free(name);
		return NULL;
	}
	free(m->name);
	m->name = name;
	m->end = pm->end;
	return m;
}

int dr_report(void *arg, const struct pmtrack_proc_report *r)
{
	struct dr *d = arg;
	struct dr_map *m;

	if (r->flags & PMTRACK_PROC_FULL) {
		d->full_pages += (r->map->end - r->map->start) / d->pgsz;
		return 0;
	}
	m = map_get(d, r);
	if (!m)
		return -ENOMEM;
	for (size_t i = 0; i < r->nruns; i++) {
		uint64_t a = (r->runs[i].start - m->start) / d->pgsz;
		uint64_t b = (r->runs[i].end - m->start) / d->pgsz;

		bits_set(m->ring[slot(d)], a, b);
		m->pages += b - a;
	}
	return 0;
}

void dr_end(struct dr *d)
{
	size_t k = 0;

	for (size_t i = 0; i < d->n; i++) {
		struct dr_map *m = &d->m[i];

		m->ws = 0;
		for (size_t w = 0; w < bits_words(m->npages); w++) {
			uint64_t v = 0;

			for (int j = 0; j < DR_WINDOW; j++)
				v |= m->ring[j][w];
			m->ws += (uint64_t)__builtin_popcountll(v);
		}
		d->pages += m->pages;
		d->ws += m->ws;
		if (m->ws)
			d->m[k++] = *m;
		else
			map_free(m);
	}
	d->n = k;
}

void dr_free(struct dr *d)
{
	for (size_t i = 0; i < d->n; i++)
		map_free(&d->m[i]);
	free(d->m);
	d->m = NULL;
	d->n = d->cap = 0;
}
