#define _GNU_SOURCE
#include "CSystemShims.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/close_range.h>

int cr_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }

int cr_signalfd(const sigset_t *mask) { return signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK); }
int cr_signalfd_read(int fd, struct cr_signal_info *out) {
    struct signalfd_siginfo info;
    ssize_t n;
    do { n = read(fd, &info, sizeof info); } while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof info) {
        out->signo = (int)info.ssi_signo;
        out->code = info.ssi_code;
        out->pid = (pid_t)info.ssi_pid;
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    if (n >= 0) errno = EIO;
    return -1;
}
int cr_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
int cr_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
int cr_spawn_file_actions_addtcsetpgrp(posix_spawn_file_actions_t *actions, int tty_fd) {
    return posix_spawn_file_actions_addtcsetpgrp_np(actions, tty_fd);
}
int cr_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

int cr_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

/// The child's half of cr_spawn_contained; async-signal-safe calls only (the parent has other threads).
static void contained_child(const char *path, char *const argv[], char *const envp[],
                            const int *cgroup_procs, int cgroup_count,
                            int stdin_fd, int stdout_fd, int stderr_fd,
                            const int *pass, int pass_count, int report) {
    // Every descriptor this child keeps is first copied above the highest target (3 + pass_count), the report
    // pipe first, so that no dup2 below overwrites a source.
    int high = 3 + pass_count + 3;
    int moved_report = fcntl(report, F_DUPFD_CLOEXEC, high);
    if (moved_report < 0) goto fail;
    report = moved_report;
    for (int i = 0; i < cgroup_count; i++) {
        if (write(cgroup_procs[i], "0", 1) != 1) goto fail;
    }
    if (setpgid(0, 0) != 0) goto fail;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < _NSIG; s++) {
        if (s != SIGKILL && s != SIGSTOP) (void)sigaction(s, &dfl, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0) goto fail;
    int fds[3] = { stdin_fd, stdout_fd, stderr_fd };
    int moved[64];
    if (pass_count > 61) { errno = EMFILE; goto fail; }
    for (int i = 0; i < 3; i++) {
        if ((moved[i] = fcntl(fds[i], F_DUPFD, high)) < 0) goto fail;
    }
    for (int i = 0; i < pass_count; i++) {
        if ((moved[3 + i] = fcntl(pass[i], F_DUPFD, high)) < 0) goto fail;
    }
    for (int i = 0; i < 3 + pass_count; i++) {
        if (dup2(moved[i], i) < 0) goto fail;  // dup2 clears FD_CLOEXEC on the copy
    }
    // Everything else goes but the report pipe, which is close-on-exec: execve closes it, and a failure is
    // still reported through it.
    if (report > 3 + pass_count) (void)close_range(3 + pass_count, report - 1, 0);
    (void)close_range(report + 1, ~0U, 0);
    execve(path, argv, envp);
fail:;
    int e = errno;
    (void)!write(report, &e, sizeof e);
    _exit(127);
}

pid_t cr_spawn_contained(const char *path, char *const argv[], char *const envp[],
                         const int *cgroup_procs, int cgroup_count,
                         int stdin_fd, int stdout_fd, int stderr_fd,
                         const int *pass, int pass_count) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(report[0]);
        close(report[1]);
        errno = e;
        return -1;
    }
    if (pid == 0) {
        close(report[0]);
        contained_child(path, argv, envp, cgroup_procs, cgroup_count, stdin_fd, stdout_fd, stderr_fd,
                        pass, pass_count, report[1]);
    }
    close(report[1]);
    int childErrno = 0;
    ssize_t n;
    do { n = read(report[0], &childErrno, sizeof childErrno); } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof childErrno) {
        errno = childErrno;
        return -1;  // the child exits 127; SIGCHLD reaps it
    }
    return pid;
}

int cr_sigrtmin(void) { return SIGRTMIN; }
int cr_sigrtmax(void) { return SIGRTMAX; }
const char *cr_signal_abbrev(int sig) { return sigabbrev_np(sig); }

// Through syscall(2): glibc 2.36 has wrappers, but in <sys/pidfd.h>, which older build hosts lack.
int cr_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
int cr_pidfd_send_signal(int fd, int sig) { return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0); }
