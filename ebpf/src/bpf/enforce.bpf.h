/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ngram-ids' kernel side, enforce: BPF LSM programs that carry out the verdicts ngram_alert
 * (alert.bpf.h, with cfg_enforce) leaves in each thread's state, and the bookkeeping of the
 * cgroup's processes (ng_procs: suspect, operator). Included by ngram.bpf.c after alert.bpf.h.
 *
 * The sys_enter program judges every call before the kernel runs it, so before any LSM hook of
 * that call: it sets the thread's `deny` and the call's number. A hook refuses (-EPERM) when the
 * current task's pending verdict is "refuse" and the task is still inside that call (its
 * pt_regs' orig_ax is the judged number): a later call, and anything the kernel does in the
 * task outside a judged call, is not refused by a stale verdict.
 *
 * io_uring: the work a ring runs inline (in io_uring_enter) is refused with the io_uring_enter
 * call's verdict (a harmful call: refused for suspects, in an anomalous stretch when never seen,
 * always when the profile never learned it). Work punted to an io-wq worker (a thread of the
 * submitting process, PF_IO_WORKER, which never makes a system call) is refused when the process
 * is a suspect (and not a spared operator); a non-suspect's punted work is not judged.
 *
 * Processes: a fork in the cgroup copies its parent's flags to the child (never init's: the
 * container's init is never a suspect for its own anomalies); a process seen without an entry
 * came in from outside (docker exec: an operator; proc_of). The entry goes when the process's
 * last thread exits.
 */

/* include/linux/sched.h: the task is an io_uring worker (io-wq, or the SQPOLL thread). */
#define PF_IO_WORKER 0x00000010
#define EPERM 1
/* include/linux/sched.h: CLONE_THREAD. */
#define CLONE_THREAD 0x00010000

/* The system-call number io_uring work is reported under. */
#define NR_IO_URING_ENTER 426

/* Report the first refusal of an io_uring worker thread. */
static __always_inline void report_worker(struct task_struct *task)
{
	struct ngram_thread *t;

	t = bpf_task_storage_get(&ng_threads, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!t || t->denial_reported)
		return;
	t->denial_reported = 1;
	send(NULL, NULL, NR_IO_URING_ENTER, NGRAM_EV_ANOMALOUS, NGRAM_RULE_SEQUENCE, 0, 0,
	     NGRAM_VD_DENY | NGRAM_VD_FIRST_DENIAL | NGRAM_VD_SUSPECT | NGRAM_VD_IO_WORKER);
}

/* An io_uring worker: refused when its process is a suspect (and not a spared operator). */
static __always_inline int refuse_worker(struct task_struct *task)
{
	__u32 tgid = task->tgid;
	struct ngram_proc *p = bpf_map_lookup_elem(&ng_procs, &tgid);

	if (!p || !(p->flags & NGRAM_PROC_SUSPECT))
		return 0;
	if (cfg_spare_operators && (p->flags & NGRAM_PROC_OPERATOR))
		return 0;
	stat_add(NGRAM_STAT_REFUSED);
	report_worker(task);
	return -EPERM;
}

/* The verdict of the current task's current call: 0, or -EPERM. */
static __always_inline int refuse_current(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct ngram_thread *t;
	struct pt_regs *regs;

	if (task->flags & PF_IO_WORKER)
		return refuse_worker(task);
	t = bpf_task_storage_get(&ng_threads, task, 0, 0);
	if (!t || !t->deny)
		return 0;
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (!regs || (__s64)regs->orig_ax != t->deny_nr)
		return 0;
	stat_add(NGRAM_STAT_REFUSED);
	return -EPERM;
}

/* Program execution. */
SEC("lsm/bprm_check_security")
int BPF_PROG(ngram_lsm_exec, struct linux_binprm *bprm)
{
	return refuse_current();
}

/* open, openat, openat2, creat, open_by_handle_at (and the executable of an execve). */
SEC("lsm/file_open")
int BPF_PROG(ngram_lsm_open, struct file *file)
{
	return refuse_current();
}

SEC("lsm/path_unlink")
int BPF_PROG(ngram_lsm_unlink, const struct path *dir, struct dentry *dentry)
{
	return refuse_current();
}

SEC("lsm/path_rmdir")
int BPF_PROG(ngram_lsm_rmdir, const struct path *dir, struct dentry *dentry)
{
	return refuse_current();
}

SEC("lsm/path_mkdir")
int BPF_PROG(ngram_lsm_mkdir, const struct path *dir, struct dentry *dentry)
{
	return refuse_current();
}

SEC("lsm/path_mknod")
int BPF_PROG(ngram_lsm_mknod, const struct path *dir, struct dentry *dentry)
{
	return refuse_current();
}

SEC("lsm/path_rename")
int BPF_PROG(ngram_lsm_rename, const struct path *old_dir)
{
	return refuse_current();
}

SEC("lsm/path_link")
int BPF_PROG(ngram_lsm_link, struct dentry *old_dentry)
{
	return refuse_current();
}

SEC("lsm/path_symlink")
int BPF_PROG(ngram_lsm_symlink, const struct path *dir)
{
	return refuse_current();
}

SEC("lsm/path_chmod")
int BPF_PROG(ngram_lsm_chmod, const struct path *path)
{
	return refuse_current();
}

SEC("lsm/path_chown")
int BPF_PROG(ngram_lsm_chown, const struct path *path)
{
	return refuse_current();
}

SEC("lsm/path_truncate")
int BPF_PROG(ngram_lsm_truncate, const struct path *path)
{
	return refuse_current();
}

SEC("lsm/path_chroot")
int BPF_PROG(ngram_lsm_chroot, const struct path *path)
{
	return refuse_current();
}

SEC("lsm/socket_create")
int BPF_PROG(ngram_lsm_socket, int family, int type, int protocol, int kern)
{
	return kern ? 0 : refuse_current();
}

SEC("lsm/socket_bind")
int BPF_PROG(ngram_lsm_bind, struct socket *sock)
{
	return refuse_current();
}

SEC("lsm/socket_connect")
int BPF_PROG(ngram_lsm_connect, struct socket *sock)
{
	return refuse_current();
}

SEC("lsm/socket_listen")
int BPF_PROG(ngram_lsm_listen, struct socket *sock)
{
	return refuse_current();
}

SEC("lsm/sb_mount")
int BPF_PROG(ngram_lsm_mount, const char *dev_name)
{
	return refuse_current();
}

SEC("lsm/sb_umount")
int BPF_PROG(ngram_lsm_umount, struct vfsmount *mnt)
{
	return refuse_current();
}

SEC("lsm/sb_pivotroot")
int BPF_PROG(ngram_lsm_pivotroot, const struct path *old_path)
{
	return refuse_current();
}

SEC("lsm/move_mount")
int BPF_PROG(ngram_lsm_move_mount, const struct path *from_path)
{
	return refuse_current();
}

/* fork, vfork, clone, clone3 (and io_uring's worker threads, created in the submitting task). */
SEC("lsm/task_alloc")
int BPF_PROG(ngram_lsm_task_alloc, struct task_struct *task)
{
	return refuse_current();
}

/* ptrace, and process_vm_readv/writev and pidfd_getfd (ptrace_may_access). */
SEC("lsm/ptrace_access_check")
int BPF_PROG(ngram_lsm_ptrace, struct task_struct *child)
{
	return refuse_current();
}

SEC("lsm/ptrace_traceme")
int BPF_PROG(ngram_lsm_traceme, struct task_struct *parent)
{
	return refuse_current();
}

/* kill, tkill, tgkill (a quiet signal is noise: never judged, so never refused). */
SEC("lsm/task_kill")
int BPF_PROG(ngram_lsm_kill, struct task_struct *p)
{
	return refuse_current();
}

/* init_module, kexec_load. */
SEC("lsm/kernel_load_data")
int BPF_PROG(ngram_lsm_load_data, int id)
{
	return refuse_current();
}

/* finit_module, kexec_file_load. */
SEC("lsm/kernel_read_file")
int BPF_PROG(ngram_lsm_read_file, struct file *file)
{
	return refuse_current();
}

SEC("lsm/bpf")
int BPF_PROG(ngram_lsm_bpf, int cmd)
{
	return refuse_current();
}

SEC("lsm/perf_event_open")
int BPF_PROG(ngram_lsm_perf, struct perf_event_attr *attr)
{
	return refuse_current();
}

/* setuid, setreuid, setresuid, setfsuid. */
SEC("lsm/task_fix_setuid")
int BPF_PROG(ngram_lsm_setuid, struct cred *new)
{
	return refuse_current();
}

/* setgid, setregid, setresgid, setfsgid. */
SEC("lsm/task_fix_setgid")
int BPF_PROG(ngram_lsm_setgid, struct cred *new)
{
	return refuse_current();
}

SEC("lsm/task_fix_setgroups")
int BPF_PROG(ngram_lsm_setgroups, struct cred *new)
{
	return refuse_current();
}

SEC("lsm/capset")
int BPF_PROG(ngram_lsm_capset, struct cred *new)
{
	return refuse_current();
}

/* io_uring_setup and userfaultfd (their anonymous inodes). */
SEC("lsm/inode_init_security_anon")
int BPF_PROG(ngram_lsm_anon, struct inode *inode)
{
	return refuse_current();
}

/* unshare and clone of a user namespace. */
SEC("lsm/userns_create")
int BPF_PROG(ngram_lsm_userns, const struct cred *cred)
{
	return refuse_current();
}

/* Every capability check: the privileged calls (delete_module, reboot, swapon, sethostname,
 * setns, unshare of other namespaces, fsopen, fsmount, open_tree, iopl, ...). */
SEC("lsm/capable")
int BPF_PROG(ngram_lsm_capable, const struct cred *cred)
{
	return refuse_current();
}

/* A fork in the cgroup: the child process starts with its parent's flags (not a thread). */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(ngram_fork, struct task_struct *parent, struct task_struct *child)
{
	__u64 cgroup = bpf_get_current_cgroup_id();
	struct ngram_proc *p, fresh = {};
	__u32 ptgid = parent->tgid, ctgid = child->tgid;

	if (ctgid == ptgid || !bpf_map_lookup_elem(&ng_target, &cgroup))
		return 0;
	p = bpf_map_lookup_elem(&ng_procs, &ptgid);
	if (p)
		fresh.flags = p->flags & (NGRAM_PROC_SUSPECT | NGRAM_PROC_OPERATOR);
	else if (ptgid != cfg_init_tgid)
		fresh.flags = NGRAM_PROC_OPERATOR;
	if (bpf_map_update_elem(&ng_procs, &ctgid, &fresh, BPF_ANY))
		stat_add(NGRAM_STAT_LOST_PROCS);
	return 0;
}

/* A process's last thread exits: its entry goes (a reused pid starts afresh). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(ngram_exit, struct task_struct *task)
{
	__u32 tgid;

	if (task->signal->live.counter != 0)
		return 0;
	tgid = task->tgid;
	bpf_map_delete_elem(&ng_procs, &tgid);
	return 0;
}
