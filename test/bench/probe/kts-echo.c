/*
 * The probe benchmark's reference: the smallest UDP round-trip measurement
 * with kernel timestamps at both ends, and nothing else (no scheduling, no
 * policy, no JavaScript). Its figures are what kernel software timestamps
 * can show on this path; citymesh's STAMP datapath is judged against them.
 *
 *   kts-echo reflect HOST PORT
 *     Answers each datagram with T2 (kernel receive stamp) and T3 (clock read
 *     immediately before the send) written at offsets 16 and 24. Prints
 *     "listening" once bound. Exits on a signal, or after 10 idle minutes (a
 *     benchmark that died cannot leave it running for long).
 *   kts-echo send HOST PORT COUNT INTERVAL_US
 *     Sends COUNT 44-octet datagrams INTERVAL_US apart (absolute schedule);
 *     T1 is the kernel's transmit stamp (error queue), T4 its receive stamp.
 *     Prints one RTT per line in µs: (T4 − T1) − (T3 − T2), as STAMP computes it.
 *
 * Loopback and namespaces the benchmark creates only: the addresses come from it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_rt(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t stamp_of(struct msghdr *msg) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPING) {
      struct timespec ts[3];
      memcpy(ts, CMSG_DATA(c), sizeof ts);
      return (int64_t)ts[0].tv_sec * 1000000000LL + ts[0].tv_nsec;
    }
  }
  return 0;
}

static int open_socket(const char *host, int port, int tx) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (!inet_aton(host, &a.sin_addr)) return -1;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
  if (tx) flags |= SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_OPT_TSONLY;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) < 0) return -1;
  if (!tx && bind(fd, (struct sockaddr *)&a, sizeof a) < 0) return -1;
  if (tx && connect(fd, (struct sockaddr *)&a, sizeof a) < 0) return -1;
  return fd;
}

static void put64(uint8_t *p, int64_t v) { memcpy(p, &v, 8); }
static int64_t get64(const uint8_t *p) { int64_t v; memcpy(&v, p, 8); return v; }

static int reflect(const char *host, int port) {
  int fd = open_socket(host, port, 0);
  if (fd < 0) { perror("kts-echo reflect"); return 1; }
  printf("listening\n");
  fflush(stdout);
  struct pollfd p = {.fd = fd, .events = POLLIN};
  uint8_t buf[2048];
  char control[256];
  for (;;) {
    int ready = poll(&p, 1, 600000);
    if (ready == 0) return 0;
    if (ready < 0) continue;
    struct sockaddr_in from;
    struct iovec iov = {buf, sizeof buf};
    struct msghdr msg = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 32) continue;
    put64(buf + 16, stamp_of(&msg));
    put64(buf + 24, now_rt());
    sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, sizeof from);
  }
}

static int send_train(const char *host, int port, int count, int interval_us) {
  int fd = open_socket(host, port, 1);
  if (fd < 0) { perror("kts-echo send"); return 1; }
  int64_t *t1 = calloc((size_t)count, sizeof *t1), *rtt = calloc((size_t)count, sizeof *rtt);
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  uint8_t buf[2048];
  char control[256];
  for (int i = 0; i < count; i++) {
    memset(buf, 0, 44);
    memcpy(buf, &i, 4);
    send(fd, buf, 44, 0);
    int64_t deadline = now_rt() + 500000000LL;
    int got_tx = 0, got_rx = 0;
    while ((!got_tx || !got_rx) && now_rt() < deadline) {
      struct pollfd p = {.fd = fd, .events = POLLIN};
      poll(&p, 1, 100);
      struct iovec iov = {buf, sizeof buf};
      struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
      if (!got_tx && recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) >= 0) {
        t1[i] = stamp_of(&msg);
        got_tx = 1;
        continue;
      }
      msg.msg_controllen = sizeof control;
      ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
      int seq;
      if (n >= 32 && (memcpy(&seq, buf, 4), seq == i)) {
        int64_t t4 = stamp_of(&msg);
        rtt[i] = t4 - get64(buf + 24) + get64(buf + 16); /* T4 − T3 + T2, T1 subtracted below */
        got_rx = 1;
      }
    }
    if (got_tx && got_rx && t1[i] > 0) printf("%.3f\n", (double)(rtt[i] - t1[i]) / 1000.0);
    next.tv_nsec += (long)interval_us * 1000L;
    while (next.tv_nsec >= 1000000000L) { next.tv_nsec -= 1000000000L; next.tv_sec++; }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "reflect") == 0) return reflect(argv[2], atoi(argv[3]));
  if (argc == 6 && strcmp(argv[1], "send") == 0) return send_train(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
  fprintf(stderr, "usage: kts-echo reflect HOST PORT | kts-echo send HOST PORT COUNT INTERVAL_US\n");
  return 2;
}
