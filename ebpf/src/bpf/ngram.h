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
#define NGRAM_STAT_ANOMALIES 9    /* alert: anomalous calls */
#define NGRAM_STAT_EVENTS 10      /* alert: records sent to user space */
#define NGRAM_STAT_LOST_EVENTS 11 /* alert: records the ring buffer had no room for */
#define NGRAM_STATS 12

/* Alert: calls of a thread kept for the n-grams, the back-off and the report (a power of 2). */
#define NGRAM_RAW 16
/* Alert: the largest window (n-grams) of the live rule. */
#define NGRAM_MAX_WINDOW 16

/* Alert: the rules (profiler's alert::Rule, in user space by these numbers). */
#define NGRAM_RULE_NONE 0
#define NGRAM_RULE_SEQUENCE 1
#define NGRAM_RULE_HARMFUL_CALL 2
#define NGRAM_RULE_BYPASS 3

/* Alert: the flags of a record. */
#define NGRAM_EV_ANOMALOUS 0x1  /* the call is anomalous */
#define NGRAM_EV_FIRST 0x2      /* and starts the thread's anomalous stretch (an alert) */
#define NGRAM_EV_YOUNG 0x4      /* the thread is in its first calls after execve */
#define NGRAM_EV_COLLAPSED 0x8  /* the call repeats the thread's previous one: no n-gram */
#define NGRAM_EV_NOISE 0x10     /* a noise call: not judged (trace records only) */
#define NGRAM_EV_SETTLED_RULE 0x20 /* judged by the settled rule */
#define NGRAM_EV_OTHER_ARCH 0x40   /* not an x86_64 call: not judged (trace records only) */
#define NGRAM_EV_HAS_NGRAM 0x80    /* the thread has an n-gram (n calls or more) */

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

/* Alert: a k-gram of the model (order k = 1..n) or a context of order k (its k-1 calls). */
struct ngram_okey {
	__u16 nr[NGRAM_MAX_N];
	__u32 order;
};

/* Alert: the live rule's state of one thread (the user-space Scorer's and ThreadState's). */
struct ngram_thread {
	/* Calls that entered the stream (not noise, not collapsed). */
	__u64 calls;
	/* calls at the thread's last execve, plus 1 (0: it never ran execve). */
	__u64 exec_at;
	/* Bit i: the (i+1)-th newest n-gram of the window was never seen / is improbable. */
	__u32 unseen;
	__u32 improbable;
	/* The newest n-gram was never seen; and its back-off probability is below max_p. */
	__u8 last_unseen;
	__u8 last_harm;
	/* In an anomalous stretch that was reported. */
	__u8 alerted;
	__u8 pad;
	/* The last NGRAM_RAW calls of the stream, at calls % NGRAM_RAW. */
	__u16 raw[NGRAM_RAW];
};

/* Alert: one record to user space (an alert, or with cfg_trace every call). */
struct ngram_event {
	__u64 ts_ns;    /* bpf_ktime_get_ns() at the call */
	__u64 calls;    /* the thread's stream length after the call */
	__u64 args[3];  /* the call's first three arguments */
	__u32 tid;
	__u32 pid;
	__u32 nr;
	__u8 flags;     /* NGRAM_EV_* */
	__u8 rule;      /* NGRAM_RULE_* */
	__u8 unseen;    /* unseen n-grams in the window */
	__u8 improbable; /* unseen and improbable n-grams in the window */
	__u16 raw[NGRAM_RAW]; /* the stream's last calls, oldest first; the last min(calls, 16) */
	char comm[16];
};

#endif
