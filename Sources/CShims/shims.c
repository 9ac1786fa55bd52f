#include "CShims.h"

struct MHD_Daemon *cr_mhd_start(int listen_fd,
                                MHD_AccessHandlerCallback handler, void *handler_cls,
                                MHD_RequestCompletedCallback completed, void *completed_cls,
                                unsigned int connection_limit,
                                size_t connection_memory_limit,
                                unsigned int connection_timeout_seconds) {
    // Port 0 with MHD_OPTION_LISTEN_SOCKET: MHD uses our socket (we bind it, so we know the port).
    // MHD_ALLOW_SUSPEND_RESUME: held /v1/logs?wait= requests are suspended, and resumed from other threads
    // through MHD's inter-thread channel (an eventfd), so its one thread never waits for a log line.
    return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME,
                            0, NULL, NULL, handler, handler_cls,
                            MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, completed_cls,
                            MHD_OPTION_CONNECTION_LIMIT, connection_limit,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory_limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_seconds,
                            MHD_OPTION_END);
}
