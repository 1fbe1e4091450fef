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

/* 1 if the address is a loopback one (127.0.0.0/8, ::1, ::ffff:127.x.y.z), else 0;
 * 0.0.0.0 and :: (every interface) are not. */
int ls_net_is_loopback(const struct sockaddr_storage *ss);

/* "host" part of a host:port string, for log lines ("[::1]" stays bracketed). */
void ls_net_host_part(const char *s, char *out, size_t n);

#endif
