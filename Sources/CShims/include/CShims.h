// Wrappers for the variadic calls of libcurl and libmicrohttpd, which Swift cannot call directly.
// Swift code includes no C header itself; it imports CShims, CCurl or CMicroHTTPD (and CSystemShims for libc).
#ifndef CODERUNNER_CSHIMS_H
#define CODERUNNER_CSHIMS_H

#include <stddef.h>
#include <curl/curl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <microhttpd.h>

// curl_easy_setopt is variadic; one typed wrapper per argument kind.
CURLcode cr_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode cr_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode cr_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode cr_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);

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
