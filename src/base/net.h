/*
 * net.h - socket address helpers shared by the listeners (HTTP, UDP).
 */
#ifndef LS_NET_H
#define LS_NET_H

#include <sys/socket.h>

/*
 * Parses "host:port" or "[v6]:port" (numeric addresses; "localhost" means
 * 127.0.0.1) into *ss.  Returns AF_INET or AF_INET6, or -EINVAL.
 */
int ls_net_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *sl);

/* "host" part of a host:port string, for log lines ("[::1]" stays bracketed). */
void ls_net_host_part(const char *s, char *out, size_t n);

#endif
