// The agent's whole C surface that Swift cannot call directly: variadic functions and prctl.
// Swift code includes no C header itself; it imports CShims, CCurl or CMicroHTTPD.
#ifndef CODERUNNER_CSHIMS_H
#define CODERUNNER_CSHIMS_H

#include <stdint.h>
#include <sys/types.h>
#include <curl/curl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <microhttpd.h>

/// prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are re-parented to us, so we can reap them.
int cr_set_child_subreaper(void);
/// prctl(PR_SET_PDEATHSIG, sig): used by test helpers so they die with their parent.
int cr_set_parent_death_signal(int sig);

// Supervision: Linux and GNU calls the Glibc module does not export (they need _GNU_SOURCE or
// headers outside its module map).
#include <signal.h>
#include <spawn.h>
/// signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK).
int cr_signalfd(const sigset_t *mask);
/// Reads one signal from a signalfd: its number, 0 when none is pending, -1 on error (errno set).
int cr_signalfd_next(int fd);
/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK).
int cr_eventfd(void);
/// pipe2(fds, O_CLOEXEC).
int cr_pipe_cloexec(int fds[2]);
/// posix_spawn_file_actions_addtcsetpgrp_np (glibc 2.35): the child makes its group the terminal's foreground.
int cr_spawn_file_actions_addtcsetpgrp(posix_spawn_file_actions_t *actions, int tty_fd);
/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34): the child closes every descriptor from `from` up, so
/// nothing the agent holds (libcurl's sockets may lack FD_CLOEXEC) leaks into the app.
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
/// memfd_create(name, MFD_CLOEXEC).
int cr_memfd(const char *name);
/// SIGRTMIN and SIGRTMAX are function calls in glibc (it reserves the first real-time signals).
int cr_sigrtmin(void);
int cr_sigrtmax(void);
/// The signal's abbreviation without "SIG" ("TERM"), or NULL when it has none (sigabbrev_np).
const char *cr_signal_abbrev(int sig);

// curl_easy_setopt is variadic; one typed wrapper per argument kind.
CURLcode cr_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode cr_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode cr_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode cr_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode cr_curl_getinfo_double(CURL *handle, CURLINFO info, double *value);

/// MHD_start_daemon is variadic. This starts a daemon with one internal polling thread (epoll),
/// a connection limit, a per-connection memory limit and a timeout, on an already bound and listening socket.
struct MHD_Daemon *cr_mhd_start(int listen_fd,
                                MHD_AccessHandlerCallback handler, void *handler_cls,
                                MHD_RequestCompletedCallback completed, void *completed_cls,
                                unsigned int connection_limit,
                                size_t connection_memory_limit,
                                unsigned int connection_timeout_seconds);

#endif
