/* SPDX-License-Identifier: MIT */
/*
 * Kernel uapi definitions that newer kernels have and older system headers
 * lack.  The library is built against Linux 6.1 headers (Debian 12) but runs
 * on kernels that have PAGEMAP_SCAN (6.7+).  Each definition is used only
 * when the system header does not provide it, so newer headers win.
 *
 * Values are those of include/uapi/linux/fs.h and userfaultfd.h upstream.
 * Private to the library: never installed.
 */
#ifndef PMTRACK_UAPI_COMPAT_H
#define PMTRACK_UAPI_COMPAT_H

#include <linux/fs.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

/* ---- PAGEMAP_SCAN (Linux 6.7) ------------------------------------------ */
#ifndef PAGEMAP_SCAN
struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

#ifndef PM_SCAN_WP_MATCHING
#define PM_SCAN_WP_MATCHING (1 << 0)
#endif
#ifndef PM_SCAN_CHECK_WPASYNC
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#endif

#ifndef PAGE_IS_WPALLOWED
#define PAGE_IS_WPALLOWED (1 << 0)
#endif
#ifndef PAGE_IS_WRITTEN
#define PAGE_IS_WRITTEN (1 << 1)
#endif
#ifndef PAGE_IS_FILE
#define PAGE_IS_FILE (1 << 2)
#endif
#ifndef PAGE_IS_PRESENT
#define PAGE_IS_PRESENT (1 << 3)
#endif
#ifndef PAGE_IS_SWAPPED
#define PAGE_IS_SWAPPED (1 << 4)
#endif
#ifndef PAGE_IS_PFNZERO
#define PAGE_IS_PFNZERO (1 << 5)
#endif
#ifndef PAGE_IS_HUGE
#define PAGE_IS_HUGE (1 << 6)
#endif
#ifndef PAGE_IS_SOFT_DIRTY
#define PAGE_IS_SOFT_DIRTY (1 << 7)
#endif
#ifndef PAGE_IS_GUARD
#define PAGE_IS_GUARD (1 << 8)
#endif

/* ---- userfaultfd -------------------------------------------------------- */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

/* ---- PROCMAP_QUERY (Linux 6.11): one mapping of /proc/PID/maps by ioctl */
#ifndef PROCMAP_QUERY
struct procmap_query {
	__u64 size;
	__u64 query_flags;
	__u64 query_addr;
	__u64 vma_start;
	__u64 vma_end;
	__u64 vma_flags;
	__u64 vma_page_size;
	__u64 vma_offset;
	__u64 inode;
	__u32 dev_major;
	__u32 dev_minor;
	__u32 vma_name_size;
	__u32 build_id_size;
	__u64 vma_name_addr;
	__u64 build_id_addr;
};
#define PROCMAP_QUERY _IOWR('f', 17, struct procmap_query)
#define PROCMAP_QUERY_COVERING_OR_NEXT_VMA 0x10
#define PROCMAP_QUERY_VMA_READABLE 0x01
#define PROCMAP_QUERY_VMA_WRITABLE 0x02
#define PROCMAP_QUERY_VMA_EXECUTABLE 0x04
#define PROCMAP_QUERY_VMA_SHARED 0x08
#endif

/* ---- /proc/PID/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst)
 */
#define PMT_PM_SOFT_DIRTY (1ULL << 55)
#define PMT_PM_EXCLUSIVE (1ULL << 56)
#define PMT_PM_UFFD_WP (1ULL << 57)
#define PMT_PM_FILE (1ULL << 61)
#define PMT_PM_SWAP (1ULL << 62)
#define PMT_PM_PRESENT (1ULL << 63)
#define PMT_PM_GUARD (1ULL << 58) /* MADV_GUARD_INSTALL (6.13) */
#define PMT_PM_PFN_MASK ((1ULL << 55) - 1)
/* the swap type the kernel gives every PTE marker (uffd-wp, guard,
 * poison): the last of the 5-bit types */
#define PMT_PM_SWP_TYPE_MARKER 31u

/* ---- cachestat(2) (Linux 6.5) ------------------------------------------ */
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
/* struct cachestat_range and struct cachestat of linux/mman.h, under
 * names of our own so that newer headers do not clash */
struct pmt_cachestat_range {
	__u64 off, len;
};
struct pmt_cachestat {
	__u64 nr_cache, nr_dirty, nr_writeback, nr_evicted,
		nr_recently_evicted;
};

/* ---- statfs(2) f_type values (linux/magic.h) --------------------------- */
#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

#endif /* PMTRACK_UAPI_COMPAT_H */
