/* Calibration only: the minimal C notify loop (CONTINUE to everything) that the Rust
 * NotifyTracer is compared against in docs/supervisor.md. Root, Linux >= 6.11.
 *   gcc -O2 -o /tmp/notify_floor notify_floor.c && /tmp/notify_floor SYNC(0|1) /bin/dd ...   */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s SYNC PROG ARGS...\n", argv[0]); return 2; }
    int sync = atoi(argv[1]);
    struct sock_filter f[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF) };
    struct sock_fprog prog = { 1, f };
    pid_t pid = fork();
    if (pid == 0) {
        syscall(SYS_close_range, 3, ~0U, 0);
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog) < 0) _exit(126);
        execv(argv[2], argv + 2);
        _exit(127);
    }
    struct timespec t0, t1;
    int pidfd = syscall(SYS_pidfd_open, pid, 0), fd = -1;
    while (fd < 0) { fd = syscall(SYS_pidfd_getfd, pidfd, 3, 0); if (fd < 0) usleep(1000); }
    if (sync && ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, 1UL) < 0) perror("SET_FLAGS");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct seccomp_notif req; struct seccomp_notif_resp resp; long n = 0;
    for (;;) {
        memset(&req, 0, sizeof req);
        if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
            if (errno == EINTR) continue;
            struct pollfd p = { fd, POLLIN, 0 };
            if (errno == ENOENT && poll(&p, 1, 0) >= 0 && (p.revents & POLLHUP)) break;
            continue;
        }
        n++;
        resp.id = req.id; resp.val = 0; resp.error = 0; resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    waitpid(pid, NULL, 0);
    double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(stderr, "C floor sync=%d: %.3f s, %ld calls, %.0f calls/s\n", sync, s, n, n / s);
    return 0;
}
