// The POSIX and Linux calls the agent's supervision, its sandbox and ChildProcess need, which Swift cannot call
// directly: variadic or GNU-only functions, function-like macros, prctl. No library headers beyond libc: the
// controller links this too (through ChildProcess). libcurl and libmicrohttpd's wrappers live in CShims.
#ifndef CODERUNNER_CSYSTEMSHIMS_H
#define CODERUNNER_CSYSTEMSHIMS_H

#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/wait.h>

/// prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are re-parented to us, so we can reap them.
int cr_set_child_subreaper(void);

/// One signal read from a signalfd: its number, and who raised it (signalfd_siginfo's ssi_code and ssi_pid).
struct cr_signal_info {
    int signo;
    int code;
    pid_t pid;
};
/// signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK).
int cr_signalfd(const sigset_t *mask);
/// Reads one signal from a signalfd into `info`: 1 when one was read, 0 when none is pending, -1 on error
/// (errno set).
int cr_signalfd_read(int fd, struct cr_signal_info *info);
/// si_code values of a signal another process sent with kill(2), sigqueue(3) or tgkill(2).
static inline int cr_si_user(void) { return SI_USER; }
static inline int cr_si_queue(void) { return SI_QUEUE; }
static inline int cr_si_tkill(void) { return SI_TKILL; }
/// SIGRTMIN and SIGRTMAX are function calls in glibc (it reserves the first real-time signals).
int cr_sigrtmin(void);
int cr_sigrtmax(void);
/// The signal's abbreviation without "SIG" ("TERM"), or NULL when it has none (sigabbrev_np).
const char *cr_signal_abbrev(int sig);

// <sys/wait.h> decodes a wait status with macros, which Swift cannot call.
static inline int cr_wifexited(int status) { return WIFEXITED(status); }
static inline int cr_wexitstatus(int status) { return WEXITSTATUS(status); }
static inline int cr_wifsignaled(int status) { return WIFSIGNALED(status); }
static inline int cr_wtermsig(int status) { return WTERMSIG(status); }

/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK).
int cr_eventfd(void);
/// pipe2(fds, O_CLOEXEC).
int cr_pipe_cloexec(int fds[2]);
/// memfd_create(name, MFD_CLOEXEC).
int cr_memfd(const char *name);

/// pidfd_open(pid, 0) (Linux 5.3): a descriptor that names this one process, also when it is not our child; it
/// becomes readable once the process exits. -1 with errno set (ESRCH: no such process).
int cr_pidfd_open(pid_t pid);
/// pidfd_send_signal(fd, sig, NULL, 0) (Linux 5.1): signals the process the descriptor names, never a later one
/// that reuses its pid. -1 with errno set (ESRCH: it exited).
int cr_pidfd_send_signal(int fd, int sig);

/// posix_spawn_file_actions_addtcsetpgrp_np (glibc 2.35): the child makes its group the terminal's foreground.
int cr_spawn_file_actions_addtcsetpgrp(posix_spawn_file_actions_t *actions, int tty_fd);
/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34): the child closes every descriptor from `from` up, so
/// nothing the parent holds (libcurl's sockets may lack FD_CLOEXEC) leaks into the child.
int cr_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from);
/// Starts a sandboxed child, which posix_spawn cannot do: the child must be in its cgroups before its first
/// instruction (no window in which it could fork outside the limits). fork(), then in the child only
/// async-signal-safe calls: write "0" to each descriptor of `cgroup_procs` (each an open cgroup.procs file: the
/// writer joins that cgroup), setpgid(0, 0), every signal to its default and an empty mask, `stdin_fd`,
/// `stdout_fd` and `stderr_fd` onto 0, 1 and 2, `pass` onto 3, 4, ..., every other descriptor closed, execve.
/// Returns the child's pid; -1 with errno set when fork fails or when any step in the child fails (the child
/// reports its errno through a close-on-exec pipe and exits 127; the caller then reaps it through SIGCHLD).
pid_t cr_spawn_contained(const char *path, char *const argv[], char *const envp[],
                         const int *cgroup_procs, int cgroup_count,
                         int stdin_fd, int stdout_fd, int stderr_fd,
                         const int *pass, int pass_count);

#endif
