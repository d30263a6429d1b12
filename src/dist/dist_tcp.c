/* A small TCP rendezvous (torchrun's contract): rank 0 listens at
 * MASTER_PORT, the other ranks connect to MASTER_ADDR:MASTER_PORT and
 * receive a few bytes (the NCCL unique id).  Used when there is no MPI. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dist/internal.h"

static int send_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k, n -= (size_t)k;
  }
  return 0;
}

static int recv_all(int fd, void *buf, size_t n, double deadline) {
  char *p = buf;
  while (n) {
    int ms = (int)((deadline - tyr__dist_now()) * 1000);
    if (ms <= 0) return -2;
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    int r = poll(&pf, 1, ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -2;
    ssize_t k = recv(fd, p, n, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k, n -= (size_t)k;
  }
  return 0;
}

int tyr__dist_tcp_bcast(const tyr_dist_config *cfg, tyr_site s, const char *op, void *buf, size_t n,
                        double timeout_s) {
  double deadline = tyr__dist_now() + timeout_s;
  int N = cfg->world_size;
  if (N == 1) return 0;
  if (cfg->rank == 0) {
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    bool v6 = fd >= 0;
    if (!v6) fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return tyr_raise(TYR_ERR_IO, s, op, "rank 0: socket: %s", strerror(errno));
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc;
    if (v6) {
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
      struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                               .sin6_port = htons((uint16_t)cfg->master_port),
                               .sin6_addr = in6addr_any};
      rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    } else {
      struct sockaddr_in a = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)cfg->master_port),
                              .sin_addr.s_addr = htonl(INADDR_ANY)};
      rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    }
    if (rc || listen(fd, N)) {
      int e = errno;
      close(fd);
      return tyr_raise(TYR_ERR_IO, s, op, "rank 0: cannot listen on MASTER_PORT=%d: %s",
                       cfg->master_port, strerror(e));
    }
    for (int k = 1; k < N; k++) {
      int ms = (int)((deadline - tyr__dist_now()) * 1000);
      struct pollfd pf = {.fd = fd, .events = POLLIN};
      if (ms <= 0 || poll(&pf, 1, ms) <= 0) {
        close(fd);
        return tyr_raise(TYR_ERR_STATE, s, op,
                         "rank 0: only %d of %d ranks connected to port %d within %g s", k, N,
                         cfg->master_port, timeout_s);
      }
      int c = accept(fd, NULL, NULL);
      if (c < 0) {
        k--;
        continue;
      }
      int bad = send_all(c, buf, n);
      close(c);
      if (bad) {
        close(fd);
        return tyr_raise(TYR_ERR_IO, s, op, "rank 0: sending to a rank failed: %s",
                         strerror(errno));
      }
    }
    close(fd);
    return 0;
  }
  char port[16];
  snprintf(port, sizeof port, "%d", cfg->master_port);
  const char *host = cfg->master_addr[0] ? cfg->master_addr : "127.0.0.1";
  for (;;) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g)
      return tyr_raise(TYR_ERR_ARG, s, op, "rank %d: MASTER_ADDR=%s: %s", cfg->rank, host,
                       gai_strerror(g));
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
      fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
      if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen)) {
        close(fd);
        fd = -1;
      }
    }
    freeaddrinfo(res);
    if (fd >= 0) {
      int r = recv_all(fd, buf, n, deadline);
      close(fd);
      if (r == 0) return 0;
      return tyr_raise(TYR_ERR_STATE, s, op, "rank %d: %s from rank 0 at %s:%s", cfg->rank,
                       r == -2 ? "timed out waiting for the id" : "connection closed", host, port);
    }
    if (tyr__dist_now() > deadline)
      return tyr_raise(TYR_ERR_STATE, s, op,
                       "rank %d: could not connect to rank 0 at MASTER_ADDR=%s MASTER_PORT=%s "
                       "within %g s",
                       cfg->rank, host, port, timeout_s);
    usleep(100000);
  }
}
