/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shapes shared by the kernel program (ngram.bpf.c) and user space (src/maps.rs mirrors these
 * numbers; a unit test there checks them against the skeleton's types).
 */
#ifndef NGRAM_H
#define NGRAM_H

/* Largest n supported (the key is NGRAM_MAX_N u16 numbers, zero-padded after the first n). */
#define NGRAM_MAX_N 8
/* System-call numbers counted in the per-call array; x86_64 numbers are all below it. */
#define NGRAM_NR_SLOTS 512
/* Distinct numbers >= NGRAM_NR_SLOTS counted (each an ENOSYS call). */
#define NGRAM_RARE_SLOTS 1024
/* Default capacity of the n-gram map (user space may change it before load). */
#define NGRAM_DEFAULT_MAX_GRAMS 262144

/* Slots of the ng_stats per-CPU array. */
#define NGRAM_STAT_CALLS 0        /* calls counted (in the window) */
#define NGRAM_STAT_NGRAMS 1       /* n-grams counted */
#define NGRAM_STAT_NOISE 2        /* noise calls skipped */
#define NGRAM_STAT_OTHER_ARCH 3   /* not x86_64 calls, skipped */
#define NGRAM_STAT_LOST_NGRAMS 4  /* n-grams the map refused (full, no memory) */
#define NGRAM_STAT_LOST_WINDOW 5  /* calls without a window (no task storage) */
#define NGRAM_STAT_LOST_CALLS 6   /* per-call counts the map refused */
#define NGRAM_STAT_BEFORE_EXEC 7  /* calls before the cgroup's first execve, not counted */
#define NGRAM_STAT_COLLAPSED 8    /* calls equal to the thread's previous one: no n-gram */
#define NGRAM_STATS 9

struct ngram_window {
	__u16 nr[NGRAM_MAX_N];
	__u32 len;
	/* The thread's previous counted call (valid once len > 0), for collapsed runs. */
	__u16 last;
	__u16 pad;
};

struct ngram_key {
	__u16 nr[NGRAM_MAX_N];
};

#endif
