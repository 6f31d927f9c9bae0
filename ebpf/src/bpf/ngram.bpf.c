// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ngram-ids' kernel side, training: counts the system-call n-grams of the tasks of one cgroup v2
 * (a container), per thread, as the user-space session does (ngram-profiler's NgramCounts::push).
 *
 * Per call of a task in the target cgroup (every other task pays one hash-map miss):
 *   - with cfg_from_exec, before the first x86_64 execve/execveat of any task of the cgroup (the
 *     container runtime's own calls in the container's init): counted in STAT_BEFORE_EXEC only
 *     (the notify tracer does not see these either: its filter goes in right before execve);
 *   - not an x86_64 call (i386 int 0x80 / compat, x32, or a number outside 0..=65535): counted in
 *     STAT_OTHER_ARCH, nothing else;
 *   - in the noise set (and not mmap/mprotect asking for PROT_EXEC, nor kill/tkill/tgkill with a
 *     signal other than SIGCHLD, SIGURG, SIGWINCH): counted in STAT_NOISE only,
 *     it neither is counted nor enters the thread's window;
 *   - otherwise: counted per system call (calls / calls_rare), appended to the thread's window
 *     (the last n-1 calls, in task storage) and, once the thread has n calls, its n-gram counted;
 *     with cfg_collapse, a call equal to the thread's previous counted call is counted per
 *     system call only (STAT_COLLAPSED): it neither enters the window nor forms an n-gram
 *     (NgramCounts' collapsed runs).
 * Every failed map update is counted in a STAT_LOST_* slot: user space reports them.
 *
 * Counts only grow: user space reads them and subtracts what it read before, so a read never
 * races with an increment and nothing is lost.
 *
 * The licence string must be GPL-compatible: the kernel refuses the GPL-only helpers used here
 * (bpf_get_current_task_btf) to other programs.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "ngram.h"

/* arch/x86/include/asm/thread_info.h: a 32-bit system call is running. */
#define TS_COMPAT 0x0002
#define PROT_EXEC 0x4
#define EEXIST 17
#define NR_MMAP 9
#define NR_MPROTECT 10
#define NR_KILL 62
#define NR_TKILL 200
#define NR_TGKILL 234
#define SIGCHLD 17
#define SIGURG 23
#define SIGWINCH 28
#define NR_EXECVE 59
#define NR_EXECVEAT 322

/* n, set by user space before load (2..=NGRAM_MAX_N); frozen, so the verifier prunes by it. */
const volatile __u32 cfg_n = 6;
/* 1: count from the cgroup's first execve on (that call included); 0: every call. */
const volatile __u32 cfg_from_exec = 0;
/* 1: a call equal to the thread's previous counted call forms no n-gram (collapsed runs). */
const volatile __u32 cfg_collapse = 0;

/* The counted cgroup: cgroup id (inode of its cgroup v2 directory) -> unused. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, __u32);
} ng_target SEC(".maps");

/* Slot 0: 1 once a task of the cgroup entered execve (cfg_from_exec). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} ng_armed SEC(".maps");

/* Noise: system-call number -> 1 (neither counted nor in the window). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NGRAM_NR_SLOTS);
	__type(key, __u32);
	__type(value, __u8);
} ng_noise SEC(".maps");

/* Each thread's last n-1 calls. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ngram_window);
} ng_windows SEC(".maps");

/* n-gram -> count. Not preallocated: memory grows with the distinct n-grams seen. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NGRAM_DEFAULT_MAX_GRAMS);
	__type(key, struct ngram_key);
	__type(value, __u64);
} ng_grams SEC(".maps");

/* Calls of each system call below NGRAM_NR_SLOTS (every x86_64 call there is). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NGRAM_NR_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} ng_calls SEC(".maps");

/* Calls of numbers at or above NGRAM_NR_SLOTS (no such x86_64 call: they fail with ENOSYS). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NGRAM_RARE_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} ng_calls_rare SEC(".maps");

/* The STAT_* counters, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NGRAM_STATS);
	__type(key, __u32);
	__type(value, __u64);
} ng_stats SEC(".maps");

static __always_inline void stat_add(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&ng_stats, &slot);

	/* Atomic even per CPU: a preempted program and the next one share the slot. */
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* Add 1 to *key in a hash map of u64 counts; false when the map refused the new entry. */
/* A signal whose default action is to ignore it: it can neither end, stop nor core a process. */
static __always_inline bool quiet_signal(__u64 sig)
{
	return sig == SIGCHLD || sig == SIGURG || sig == SIGWINCH;
}

static __always_inline bool count_in(void *map, const void *key)
{
	__u64 one = 1, *v;
	long err;

	v = bpf_map_lookup_elem(map, key);
	if (v) {
		__sync_fetch_and_add(v, 1);
		return true;
	}
	err = bpf_map_update_elem(map, key, &one, BPF_NOEXIST);
	if (err == 0)
		return true;
	if (err == -EEXIST) {
		/* Another CPU created it meanwhile. */
		v = bpf_map_lookup_elem(map, key);
		if (v) {
			__sync_fetch_and_add(v, 1);
			return true;
		}
	}
	return false;
}

/* Why a call of a task is not judged or counted. */
enum skip { PASS = 0, SKIP_TARGET, SKIP_BEFORE_EXEC, SKIP_OTHER_ARCH, SKIP_NOISE };

/*
 * The part both programs share: is this call one of the target cgroup's, after its first
 * execve (cfg_from_exec), an x86_64 call, not noise? Counts the skipped ones in their STAT_*
 * slot (not the ones of other cgroups).
 */
static __always_inline enum skip admit(struct task_struct *task, struct pt_regs *regs, long id)
{
	__u64 cgroup = bpf_get_current_cgroup_id();
	__u32 nr, zero = 0, *armed;
	__u8 *noise;
	bool compat;

	if (!bpf_map_lookup_elem(&ng_target, &cgroup))
		return SKIP_TARGET;
	compat = task->thread_info.status & TS_COMPAT;
	if (cfg_from_exec) {
		armed = bpf_map_lookup_elem(&ng_armed, &zero);
		if (!armed)
			return SKIP_TARGET;
		if (!*armed) {
			if (compat || (id != NR_EXECVE && id != NR_EXECVEAT)) {
				stat_add(NGRAM_STAT_BEFORE_EXEC);
				return SKIP_BEFORE_EXEC;
			}
			*armed = 1;
		}
	}
	if (id < 0 || id > 0xffff || compat) {
		stat_add(NGRAM_STAT_OTHER_ARCH);
		return SKIP_OTHER_ARCH;
	}
	nr = (__u32)id;
	noise = bpf_map_lookup_elem(&ng_noise, &nr);
	if (noise && *noise) {
		/* Judged all the same (policy::judged_despite_noise): making memory executable (what
		 * loaders and injected code do), and a signal other than the three whose default
		 * action is to ignore them. */
		bool exec = (nr == NR_MMAP || nr == NR_MPROTECT) && (regs->dx & PROT_EXEC);
		bool loud = ((nr == NR_KILL || nr == NR_TKILL) && !quiet_signal(regs->si)) ||
			    (nr == NR_TGKILL && !quiet_signal(regs->dx));

		if (!exec && !loud) {
			stat_add(NGRAM_STAT_NOISE);
			return SKIP_NOISE;
		}
	}
	return PASS;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(ngram_sys_enter, struct pt_regs *regs, long id)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct ngram_window *w;
	struct ngram_key key = {};
	__u32 nr, n = cfg_n, len, i;
	__u64 *slot;

	if (admit(task, regs, id) != PASS)
		return 0;
	nr = (__u32)id;

	stat_add(NGRAM_STAT_CALLS);
	if (nr < NGRAM_NR_SLOTS) {
		slot = bpf_map_lookup_elem(&ng_calls, &nr);
		if (slot)
			__sync_fetch_and_add(slot, 1);
		else
			stat_add(NGRAM_STAT_LOST_CALLS);
	} else if (!count_in(&ng_calls_rare, &nr)) {
		stat_add(NGRAM_STAT_LOST_CALLS);
	}

	w = bpf_task_storage_get(&ng_windows, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!w) {
		stat_add(NGRAM_STAT_LOST_WINDOW);
		return 0;
	}

	len = w->len;
	if (cfg_collapse) {
		if (len > 0 && w->last == (__u16)nr) {
			stat_add(NGRAM_STAT_COLLAPSED);
			return 0;
		}
		w->last = (__u16)nr;
	}
	if (len + 1 < n) {
		/* Fewer than n-1 calls before this one: no n-gram yet. */
		if (len < NGRAM_MAX_N)
			w->nr[len] = (__u16)nr;
		w->len = len + 1;
		return 0;
	}

	/* The n-gram: the window's n-1 calls, then this one; zeros after it. */
#pragma unroll
	for (i = 0; i < NGRAM_MAX_N; i++) {
		if (i + 1 < n)
			key.nr[i] = w->nr[i];
		else if (i + 1 == n)
			key.nr[i] = (__u16)nr;
	}
	/* Slide: the window keeps the n-gram's last n-1 calls. */
#pragma unroll
	for (i = 0; i + 1 < NGRAM_MAX_N; i++) {
		if (i + 1 < n)
			w->nr[i] = key.nr[i + 1];
	}

	if (count_in(&ng_grams, &key))
		stat_add(NGRAM_STAT_NGRAMS);
	else
		stat_add(NGRAM_STAT_LOST_NGRAMS);
	return 0;
}

#include "alert.bpf.h"
#include "enforce.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
