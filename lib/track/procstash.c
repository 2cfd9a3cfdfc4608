// SPDX-License-Identifier: MIT
/*
 * Reports kept for a later collect: what a process had written when it
 * exited (procmon.c scans it at its exit stop), delivered first by the
 * next pmtrack_proc_collect().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "procint.h"

struct pp_stash {
	struct pp_stash *next;
	struct pmtrack_proc_report r;
	struct pmtrack_mapping map;
	char *name;
	struct pmtrack_page_run runs[];
};

int pp_stash_add(struct pp_stash **head, const struct pmtrack_proc_report *r)
{
	struct pp_stash *s, **tail = head;

	s = malloc(sizeof(*s) + r->nruns * sizeof(s->runs[0]));
	if (!s)
		return -ENOMEM;
	s->next = NULL;
	s->map = *r->map;
	s->name = strdup(r->map->name ? r->map->name : "");
	if (!s->name) {
		free(s);
		return -ENOMEM;
	}
	s->map.name = s->name;
	memcpy(s->runs, r->runs, r->nruns * sizeof(s->runs[0]));
	s->r = *r;
	s->r.flags |= PMTRACK_PROC_EXITED;
	s->r.map = &s->map;
	s->r.runs = s->runs;
	while (*tail)
		tail = &(*tail)->next;
	*tail = s;
	return 0;
}

int pp_stash_deliver(struct pmtrack_proc *p, pmtrack_proc_fn fn, void *arg)
{
	while (p->exited) {
		struct pp_stash *s = p->exited;
		int ret = fn(arg, &s->r);

		if (ret)
			return ret; /* kept: delivered again next time */
		p->exited = s->next;
		free(s->name);
		free(s);
	}
	return 0;
}

void pp_stash_free(struct pp_stash *s)
{
	while (s) {
		struct pp_stash *n = s->next;

		free(s->name);
		free(s);
		s = n;
	}
}
