// Wrappers for libmicrohttpd's variadic calls, which Swift cannot call directly (libcurl's are in CCurlShims).
// Swift code includes no C header itself; it imports CShims, CCurlShims, CCurl or CMicroHTTPD (and CSystemShims for libc).
#ifndef CODERUNNER_CSHIMS_H
#define CODERUNNER_CSHIMS_H

#include <stddef.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <microhttpd.h>

/// MHD_start_daemon is variadic. This starts a daemon with one internal polling thread (epoll),
/// a connection limit, a per-connection memory limit and a timeout, on an already bound and listening socket.
/// Connections may be suspended and resumed (MHD_ALLOW_SUSPEND_RESUME).
struct MHD_Daemon *cr_mhd_start(int listen_fd,
                                MHD_AccessHandlerCallback handler, void *handler_cls,
                                MHD_RequestCompletedCallback completed, void *completed_cls,
                                unsigned int connection_limit,
                                size_t connection_memory_limit,
                                unsigned int connection_timeout_seconds);

#endif
