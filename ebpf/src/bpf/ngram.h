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
#define NGRAM_STAT_DENIED 12      /* enforce: calls judged to be refused */
#define NGRAM_STAT_REFUSED 13     /* enforce: refusals by an LSM hook (a call may reach several) */
#define NGRAM_STAT_SPARED 14      /* enforce: refusals the open circuit breaker let through */
#define NGRAM_STAT_LOST_PROCS 15  /* enforce: processes the process map had no room for */
#define NGRAM_STATS 16

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

/* Enforce: the verdict bits of a record. */
#define NGRAM_VD_DENY 0x1          /* the call is refused (EPERM from the LSM hooks it reaches) */
#define NGRAM_VD_FIRST_DENIAL 0x2  /* the thread's first refusal: reported */
#define NGRAM_VD_BREAKER 0x4       /* this refusal opened the circuit breaker */
#define NGRAM_VD_SPARED 0x8        /* a refusal the open breaker (or the exec policy) let through */
#define NGRAM_VD_SUSPECT 0x10      /* the process is a suspect (after this call) */
#define NGRAM_VD_STOP 0x20         /* enforce action stop: user space stops the container */
#define NGRAM_VD_IO_WORKER 0x40    /* refused in an io_uring worker by an LSM hook */
#define NGRAM_VD_OPERATOR 0x80     /* the process came in from outside (docker exec) */

/* Enforce: the flags of a process (ng_procs). */
#define NGRAM_PROC_SUSPECT 0x1   /* judged an intruder: its harmful calls are refused */
#define NGRAM_PROC_OPERATOR 0x2  /* entered the cgroup from outside (docker exec), or a child */
/* Enforce: the most refusals a minute the kernel's circuit breaker can count. */
#define NGRAM_BREAKER_MAX 64

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
	/* Enforce: the system-call number (as sys_enter saw it) of the thread's current call
	 * when deny is set: the LSM hooks refuse only within that call. */
	__s64 deny_nr;
	__u8 deny;
	/* Its first refusal was reported. */
	__u8 denial_reported;
	__u8 pad2[6];
};

/* Enforce: one process of the cgroup. */
struct ngram_proc {
	__u32 flags; /* NGRAM_PROC_* */
};

/* Enforce: the circuit breaker (decision 27): refusals of the service's own processes. */
struct ngram_breaker {
	struct bpf_spin_lock lock;
	/* Times of the last refusals (CLOCK_MONOTONIC ns), a ring of `len` from `head`. */
	__u32 head;
	__u32 len;
	__u64 opened_ns; /* 0: closed */
	__u64 times[NGRAM_BREAKER_MAX];
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
	__u32 verdict;  /* enforce: NGRAM_VD_* */
	__u32 ppid;     /* the process's parent (host tgid) */
};

#endif
