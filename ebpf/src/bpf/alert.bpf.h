/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ngram-ids' kernel side, alert: the live rule of the user-space session (the supervisor's
 * session::judge, decisions 16, 20, 21, 25, 31 and 47) for the sequence of a cgroup's calls,
 * judged per thread in the kernel. Included by ngram.bpf.c (it shares its maps ng_target,
 * ng_armed, ng_noise, ng_stats and the admit() rule: which calls, from when, noise).
 *
 * Per call that admit() passes:
 *   - the stream: with cfg_collapse, a call equal to the thread's previous stream call forms
 *     no n-gram (the thread's newest n-gram stays the one it repeats); otherwise it enters the
 *     stream and, from the thread's n-th call on, its n-gram is looked up in ng_seen (order n).
 *     An n-gram never seen gets its back-off -ln P, summed in fixed point exactly as
 *     ngram-profiler's backoff_in does (ng_backoff: -ln alpha of a context; ng_seen: -ln P of a
 *     k-gram of every order), and two bits: improbable (above cfg_settled_cut) and harmful
 *     (at or above cfg_harm_cut: P below the harmful-call rule's max_p);
 *   - young: the thread ran execve in the container at most cfg_young_calls stream calls ago;
 *   - verdict: a young thread is anomalous with cfg_young_min or more never-seen n-grams among
 *     its last cfg_window, a settled one with cfg_settled_min or more never-seen improbable
 *     ones; a call of ng_bypass (a call around the tracer the profile never learned) always
 *     (rule bypass); a young thread's effect call (ng_effect; open/openat only when its flags
 *     write, openat2 always) whose newest n-gram is unseen and harmful (rule harmful_call);
 *   - stretch: the first anomalous call after a normal one is an alert: one record in ng_events.
 * With cfg_trace, every call of the target (noise and other architectures too, flagged) is a
 * record: the differential test compares them with the user-space session call by call.
 *
 * With cfg_enforce, each call also gets enforce's verdict (judge_enforce, as the session's
 * decide): a harmful call of a suspect process, a harmful call with a never-seen n-gram in an
 * anomalous stretch, a bypass call the profile never learned, are refused when an LSM hook
 * covers them (ng_refusable): the thread keeps "refuse call number X" in its state and the
 * hooks of enforce.bpf.h return -EPERM while that call runs. The circuit breaker (decision 27)
 * and the exec policy (decision 26) apply as in user space.
 *
 * What stays in user space: programs (decision 26) and argument classes (decision 38); the
 * supervisor says so.
 */

#define NR_OPEN 2
#define NR_OPENAT 257
#define NR_OPENAT2 437
/* O_WRONLY | O_RDWR | O_CREAT | O_TRUNC */
#define OPEN_WRITES 0x243

const volatile __u32 cfg_window = 10;
const volatile __u32 cfg_young_min = 3;
/* 0: no settled rule (every thread is judged by the young one). */
const volatile __u32 cfg_settled_min = 5;
const volatile __u64 cfg_young_calls = 200;
const volatile __u32 cfg_settled_cut = 0;
const volatile __u32 cfg_harm_cut = 0;
/* -ln P_1 of a call never seen in training. */
const volatile __u32 cfg_unseen_symbol = 0;
const volatile __u32 cfg_trace = 0;
/* Enforce: judge refusals (the LSM programs are loaded and attached only then). */
const volatile __u32 cfg_enforce = 0;
/* Enforce action stop: every anomalous call is reported for user space to stop the container. */
const volatile __u32 cfg_stop = 0;
/* Exec policy alert: processes that came in from outside (docker exec) are never refused. */
const volatile __u32 cfg_spare_operators = 1;
/* The circuit breaker opens after more than this many refusals a minute (0: never). */
const volatile __u32 cfg_breaker_limit = 10;
/* The container's init (host tgid): never condemned for its own anomalies. In .bss, not
 * .rodata: the program is loaded and verified while the container is being built, and its init
 * is known only then; user space writes it before the program is attached (decision 106). */
volatile __u32 cfg_init_tgid = 0;

#define BREAKER_WINDOW_NS 60000000000ULL

/* A k-gram of the model -> -ln P_k(w | c), fixed point. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct ngram_okey);
	__type(value, __u32);
} ng_seen SEC(".maps");

/* A context of order k -> -ln alpha_k(c), fixed point (may be negative). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct ngram_okey);
	__type(value, __s32);
} ng_backoff SEC(".maps");

/* System-call number -> 1: a call around the tracer the profile never learned. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NGRAM_NR_SLOTS);
	__type(key, __u32);
	__type(value, __u8);
} ng_bypass SEC(".maps");

/* System-call number -> 1: a call whose first run is the harm (the effect set). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NGRAM_NR_SLOTS);
	__type(key, __u32);
	__type(value, __u8);
} ng_effect SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ngram_thread);
} ng_threads SEC(".maps");

/* Enforce: system-call number -> 1: a harmful call (policy's harmful set). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NGRAM_NR_SLOTS);
	__type(key, __u32);
	__type(value, __u8);
} ng_harmful SEC(".maps");

/* Enforce: system-call number -> 1: a call whose harm an LSM hook of enforce.bpf.h refuses. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NGRAM_NR_SLOTS);
	__type(key, __u32);
	__type(value, __u8);
} ng_refusable SEC(".maps");

/* Enforce: the processes of the cgroup (host tgid -> flags); forks copy their parent's. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, struct ngram_proc);
} ng_procs SEC(".maps");

/* Enforce: the circuit breaker. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ngram_breaker);
} ng_breaker SEC(".maps");

/* Records to user space (size set by user space, a power of 2 pages). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} ng_events SEC(".maps");

static __always_inline __u8 flag_in(void *map, __u32 nr)
{
	__u8 *v = bpf_map_lookup_elem(map, &nr);

	return v ? *v : 0;
}

/* The k calls of the stream that end `back` calls before its newest (0: ending with it). */
static __always_inline void okey_of(struct ngram_okey *key, const struct ngram_thread *t,
				     __u32 k, __u32 order, __u32 back)
{
	__u64 end = t->calls - back; /* one past the key's last call */
	__u32 i;

	__builtin_memset(key, 0, sizeof(*key));
	key->order = order;
#pragma unroll
	for (i = 0; i < NGRAM_MAX_N; i++) {
		if (i < k)
			key->nr[i] = t->raw[(end - k + i) & (NGRAM_RAW - 1)];
	}
}

/*
 * -ln P of the stream's newest n-gram, never seen at order n: back off order by order (from
 * order n to 1: add -ln alpha of the upper order's context, stop at the first lower order that
 * has the suffix), as ngram-profiler's backoff_in. Clamped into 0..=u32::MAX.
 */
static __always_inline __u32 backoff_nll(const struct ngram_thread *t, __u32 n)
{
	struct ngram_okey key;
	__s64 acc = 0, hit = cfg_unseen_symbol;
	__s32 *alpha;
	__u32 *seen;
	__u32 j;

#pragma unroll
	for (j = NGRAM_MAX_N - 1; j >= 1; j--) {
		if (j >= n)
			continue;
		/* Leaving order j + 1: its context is the j calls before the newest. */
		okey_of(&key, t, j, j + 1, 1);
		alpha = bpf_map_lookup_elem(&ng_backoff, &key);
		if (alpha)
			acc += *alpha;
		/* Order j: the newest j calls. */
		okey_of(&key, t, j, j, 0);
		seen = bpf_map_lookup_elem(&ng_seen, &key);
		if (seen) {
			hit = *seen;
			break;
		}
	}
	acc += hit;
	if (acc < 0)
		return 0;
	if (acc > 0xffffffffLL)
		return 0xffffffff;
	return (__u32)acc;
}

static __always_inline bool is_effect(__u32 nr, struct pt_regs *regs)
{
	switch (nr) {
	case NR_OPEN:
		return regs->si & OPEN_WRITES;
	case NR_OPENAT:
		return regs->dx & OPEN_WRITES;
	case NR_OPENAT2:
		return true;
	default:
		return flag_in(&ng_effect, nr);
	}
}

/* Send one record; counted in NGRAM_STAT_LOST_EVENTS when the ring buffer is full. */
static __always_inline void send(struct pt_regs *regs, const struct ngram_thread *t, __u32 nr,
				 __u8 flags, __u8 rule, __u8 unseen, __u8 improbable, __u32 verdict)
{
	struct ngram_event *e = bpf_ringbuf_reserve(&ng_events, sizeof(*e), 0);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 i;

	if (!e) {
		stat_add(NGRAM_STAT_LOST_EVENTS);
		return;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->tid = (__u32)pid_tgid;
	e->pid = pid_tgid >> 32;
	e->nr = nr;
	e->args[0] = regs ? regs->di : 0;
	e->args[1] = regs ? regs->si : 0;
	e->args[2] = regs ? regs->dx : 0;
	e->verdict = verdict;
	e->ppid = bpf_get_current_task_btf()->real_parent->tgid;
	e->flags = flags;
	e->rule = rule;
	e->unseen = unseen;
	e->improbable = improbable;
	e->calls = t ? t->calls : 0;
#pragma unroll
	for (i = 0; i < NGRAM_RAW; i++)
		e->raw[i] = t ? t->raw[(e->calls + i) & (NGRAM_RAW - 1)] : 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	stat_add(NGRAM_STAT_EVENTS);
}

/* Enforce: the process's entry; one is made for a process seen for the first time that no fork
 * of the cgroup made (the container's init, or one that came in from outside: docker exec). */
static __always_inline struct ngram_proc *proc_of(__u32 tgid)
{
	struct ngram_proc *p = bpf_map_lookup_elem(&ng_procs, &tgid), fresh = {};

	if (p)
		return p;
	fresh.flags = tgid == cfg_init_tgid ? 0 : NGRAM_PROC_OPERATOR;
	/* EEXIST: another thread of the process made it meanwhile. */
	bpf_map_update_elem(&ng_procs, &tgid, &fresh, BPF_NOEXIST);
	p = bpf_map_lookup_elem(&ng_procs, &tgid);
	if (!p)
		stat_add(NGRAM_STAT_LOST_PROCS);
	return p;
}

/* Enforce: count a refusal of the service's own processes at now_ns (Breaker::count): 0 counted,
 * 1 the breaker is open (spare it), 2 counted and this one opened it. */
static __always_inline int breaker_count(__u64 now_ns)
{
	struct ngram_breaker *b;
	__u32 zero = 0, i, len, head, limit = cfg_breaker_limit;
	int r = 0;

	if (limit == 0)
		return 0;
	b = bpf_map_lookup_elem(&ng_breaker, &zero);
	if (!b)
		return 0;
	bpf_spin_lock(&b->lock);
	if (b->opened_ns) {
		r = 1;
		goto out;
	}
	head = b->head;
	len = b->len;
	for (i = 0; i < NGRAM_BREAKER_MAX; i++) {
		if (len == 0 || now_ns - b->times[head & (NGRAM_BREAKER_MAX - 1)] < BREAKER_WINDOW_NS)
			break;
		head = (head + 1) & (NGRAM_BREAKER_MAX - 1);
		len--;
	}
	b->times[(head + len) & (NGRAM_BREAKER_MAX - 1)] = now_ns;
	len++;
	if (len > limit || len >= NGRAM_BREAKER_MAX) {
		b->opened_ns = now_ns ? now_ns : 1;
		len = 0;
		r = 2;
	}
	b->head = head;
	b->len = len;
out:
	bpf_spin_unlock(&b->lock);
	return r;
}

/*
 * Enforce's verdict on a judged call (the session's decide, decision 17, 21, 26, 27, 31): refused
 * when harmful and the process is a suspect, or harmful with a never-seen n-gram in an anomalous
 * stretch, or a bypass call the profile never learned, or (action stop) anomalous; a young
 * thread's anomaly makes its process a suspect (not the container's init); a docker exec
 * process is spared with cfg_spare_operators; a refusal of a non-suspect is counted by the
 * breaker and, once it is open, let through. Only calls an LSM hook covers are refused.
 */
static __always_inline __u32 judge_enforce(struct ngram_thread *t, long id, __u32 nr,
					   bool anomalous, bool young, bool bypass)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32, vd = 0;
	struct ngram_proc *p = proc_of(tgid);
	bool harmful = flag_in(&ng_harmful, nr);
	bool novel = t->calls < cfg_n || t->last_unseen;
	bool was_suspect = p && (p->flags & NGRAM_PROC_SUSPECT);
	bool refuse = bypass || (harmful && (was_suspect || (anomalous && novel)));
	bool suspect, stop, deny;
	int b;

	if (anomalous && young && tgid != cfg_init_tgid && p)
		p->flags |= NGRAM_PROC_SUSPECT; /* only this bit is set after the entry is made */
	suspect = p && (p->flags & NGRAM_PROC_SUSPECT);
	stop = cfg_stop && anomalous;
	deny = stop || refuse || (suspect && harmful);
	if (p && (p->flags & NGRAM_PROC_OPERATOR)) {
		vd |= NGRAM_VD_OPERATOR;
		if (deny && cfg_spare_operators)
			deny = false;
	}
	if (deny && !flag_in(&ng_refusable, nr))
		deny = false;
	if (deny && !suspect && !stop && !bypass) {
		b = breaker_count(bpf_ktime_get_ns());
		if (b == 1) {
			deny = false;
			vd |= NGRAM_VD_SPARED;
			stat_add(NGRAM_STAT_SPARED);
		} else if (b == 2) {
			vd |= NGRAM_VD_BREAKER;
		}
	}
	if (deny) {
		vd |= NGRAM_VD_DENY;
		stat_add(NGRAM_STAT_DENIED);
		if (!t->denial_reported) {
			t->denial_reported = 1;
			vd |= NGRAM_VD_FIRST_DENIAL;
		}
	}
	t->deny = deny;
	t->deny_nr = id;
	if (suspect)
		vd |= NGRAM_VD_SUSPECT;
	if (stop)
		vd |= NGRAM_VD_STOP;
	return vd;
}

/* Enforce: a call that is not judged (noise, before the first execve) is not refused; one of
 * another architecture (i386 int 0x80) is, as the user-space session refuses it. */
static __always_inline void verdict_unjudged(struct task_struct *task, long id, bool refuse)
{
	struct ngram_thread *t;

	t = bpf_task_storage_get(&ng_threads, task, 0, refuse ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
	if (!t)
		return;
	t->deny = refuse;
	t->deny_nr = id;
	if (refuse)
		stat_add(NGRAM_STAT_DENIED);
}

SEC("tp_btf/sys_enter")
int BPF_PROG(ngram_alert, struct pt_regs *regs, long id)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 nr, n = cfg_n, wmask, unseen, improbable;
	struct ngram_thread *t;
	struct ngram_okey key;
	bool young, anomalous, first, collapsed = false, settled_rule;
	__u8 flags = 0, rule = NGRAM_RULE_NONE;
	__u32 verdict = 0;
	bool bypass = false;
	enum skip skip;

	skip = admit(task, regs, id);
	if (skip == SKIP_TARGET)
		return 0;
	if (skip == SKIP_BEFORE_EXEC) {
		if (cfg_enforce)
			verdict_unjudged(task, id, false);
		return 0;
	}
	if (skip != PASS) {
		if (cfg_trace)
			send(regs, NULL, (__u32)id,
			     skip == SKIP_NOISE ? NGRAM_EV_NOISE : NGRAM_EV_OTHER_ARCH, 0, 0, 0,
			     cfg_enforce && skip == SKIP_OTHER_ARCH ? NGRAM_VD_DENY : 0);
		if (cfg_enforce)
			verdict_unjudged(task, id, skip == SKIP_OTHER_ARCH);
		return 0;
	}
	nr = (__u32)id;
	stat_add(NGRAM_STAT_CALLS);

	t = bpf_task_storage_get(&ng_threads, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!t) {
		stat_add(NGRAM_STAT_LOST_WINDOW);
		return 0;
	}
	wmask = cfg_window >= 32 ? 0xffffffff : (1u << cfg_window) - 1;

	if (cfg_collapse && t->calls > 0 && t->raw[(t->calls - 1) & (NGRAM_RAW - 1)] == (__u16)nr) {
		collapsed = true;
		stat_add(NGRAM_STAT_COLLAPSED);
	} else {
		t->raw[t->calls & (NGRAM_RAW - 1)] = (__u16)nr;
		t->calls++;
		if (t->calls >= n) {
			bool miss, improb = false, harm = false;
			__u32 v;

			okey_of(&key, t, n, n, 0);
			miss = !bpf_map_lookup_elem(&ng_seen, &key);
			if (miss) {
				v = backoff_nll(t, n);
				improb = v > cfg_settled_cut;
				harm = v >= cfg_harm_cut;
			}
			t->unseen = ((t->unseen << 1) | miss) & wmask;
			t->improbable = ((t->improbable << 1) | improb) & wmask;
			t->last_unseen = miss;
			t->last_harm = harm;
			stat_add(NGRAM_STAT_NGRAMS);
		}
	}
	if (nr == NR_EXECVE || nr == NR_EXECVEAT)
		t->exec_at = t->calls + 1;

	young = t->exec_at && t->calls - (t->exec_at - 1) <= cfg_young_calls;
	unseen = __builtin_popcount(t->unseen);
	improbable = __builtin_popcount(t->improbable);
	settled_rule = !young && cfg_settled_min > 0;
	if (settled_rule)
		anomalous = improbable >= cfg_settled_min;
	else
		anomalous = unseen >= cfg_young_min;
	if (anomalous)
		rule = NGRAM_RULE_SEQUENCE;
	if (flag_in(&ng_bypass, nr)) {
		bypass = true;
		anomalous = true;
		rule = NGRAM_RULE_BYPASS;
	} else if (!anomalous && young && t->calls >= n && t->last_unseen && t->last_harm &&
		   is_effect(nr, regs)) {
		anomalous = true;
		rule = NGRAM_RULE_HARMFUL_CALL;
	}

	first = anomalous && !t->alerted;
	t->alerted = anomalous;
	if (anomalous)
		stat_add(NGRAM_STAT_ANOMALIES);
	if (cfg_enforce)
		verdict = judge_enforce(t, id, nr, anomalous, young, bypass);

	flags = (anomalous ? NGRAM_EV_ANOMALOUS : 0) | (first ? NGRAM_EV_FIRST : 0) |
		(young ? NGRAM_EV_YOUNG : 0) | (collapsed ? NGRAM_EV_COLLAPSED : 0) |
		(settled_rule ? NGRAM_EV_SETTLED_RULE : 0) |
		(t->calls >= n ? NGRAM_EV_HAS_NGRAM : 0);
	if (first || (verdict & (NGRAM_VD_FIRST_DENIAL | NGRAM_VD_BREAKER)) || cfg_trace)
		send(regs, t, nr, flags, rule, unseen, improbable, verdict);
	return 0;
}
