/*
 * The STAMP datapath (RFC 8762) off the JavaScript event loop.
 *
 * One native thread runs an epoll loop over every STAMP socket of the
 * process, so no JavaScript runs per packet and neither garbage collection
 * nor timers sit inside a measured interval:
 *
 * - Reflector: T2 is the kernel's receive timestamp (SO_TIMESTAMPING, else
 *   SO_TIMESTAMPNS), T3 a CLOCK_REALTIME read immediately before sendmsg, the
 *   Session-Sender TTL the received IP TTL / Hop Limit. Every datagram passes
 *   the abuse policy first (see reflect_one); each drop reason is counted.
 * - Sender: JS submits a whole train; the thread paces it on an absolute
 *   CLOCK_MONOTONIC schedule (timerfd), T1 is the kernel's software transmit
 *   timestamp from the error queue (matched by OPT_ID), else the clock read
 *   just before sendmsg, T4 the kernel receive timestamp; the train's results
 *   go back to JS once, through a thread-safe function.
 *
 * Wake-ups are the datapath's main cost (a context switch each, dearer still
 * under a hypervisor), so a sender socket whose receive stamps come from the
 * kernel never wakes the thread: its replies and transmit stamps wait in the
 * socket, stamped on arrival, and are read at the thread's next wake-up (the
 * next packet due anywhere, or the train's end). Only reflectors, which must
 * answer at once, and senders without kernel receive stamps, whose T4 is the
 * moment of the read, wake the thread per packet.
 *
 * Timestamps are CLOCK_REALTIME (what goes on the wire). Every kernel stamp
 * is paired with CLOCK_MONOTONIC readings taken around it, and a round trip
 * the wall clock disagrees with (a step of the clock during the train) falls
 * back to the monotonic interval and is flagged, never reported as is.
 *
 * JS-facing functions take and return plain numbers/objects; sockets are
 * addressed by small integer ids. A global mutex guards all state: the
 * thread holds it while it handles events, JS calls hold it briefly.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <node_api.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_TIMESTAMPING
#define SO_TIMESTAMPING 37
#endif
#ifndef SCM_TIMESTAMPING
#define SCM_TIMESTAMPING SO_TIMESTAMPING
#endif

#define MAX_SOCKETS 1024
#define START_GRID_NS 5000000LL
#define MAX_DATAGRAM 65536
#define STAMP_SIZE 44
#define MIN_REFLECTOR_REPLY 41
#define BUCKETS 4096
#define NTP_UNIX_OFFSET 2208988800ULL
/* Per wake-up, at most this many datagrams per socket, so one flooded socket cannot starve the others. */
#define BATCH_PER_WAKE 256

enum drop_reason {
  DROP_TOO_SHORT,
  DROP_SRC_PORT_ZERO,
  DROP_REFLECTOR_PORT,
  DROP_NOT_SENDER_PACKET,
  DROP_NOT_ALLOWED,
  DROP_RATE_LIMITED,
  DROP_TRUNCATED,
  DROP_SEND_ERROR,
  DROP_REASONS
};
static const char *const drop_names[DROP_REASONS] = {
    "tooShort", "srcPortZero", "fromReflectorPort", "notSenderPacket", "notAllowed", "rateLimited", "truncated", "sendError",
};

enum ts_mode { TS_UNKNOWN = 0, TS_USER = 1, TS_KERNEL = 2, TS_HARDWARE = 3 };
static const char *const ts_names[] = {"unknown", "user", "kernel", "hardware"};

typedef struct {
  uint8_t addr[16]; /* IPv6, IPv4 as ::ffff:a.b.c.d */
  int bits;
} cidr_t;

typedef struct {
  uint8_t addr[16];
  int64_t last_ns;
  double tokens;
  int used;
} bucket_t;

typedef struct train train_t;

typedef struct {
  int in_use;
  int kind; /* 1 reflector, 2 sender */
  int fd;
  int family;
  uint16_t port;
  int rx_mode; /* what SO_TIMESTAMPING/SO_TIMESTAMPNS gave us */
  int tx_stamps; /* SOF_TIMESTAMPING_TX_SOFTWARE accepted */
  int lazy; /* a sender read at the next wake-up (lazyfd), not woken for (epfd) */
  /* reflector */
  uint16_t error_estimate;
  uint64_t received, reflected, rx_kernel, rx_user;
  uint64_t drops[DROP_REASONS];
  int allow_any;
  cidr_t *allow;
  int allow_n;
  uint16_t *deny_ports;
  int deny_ports_n;
  double rate_pps, burst;
  bucket_t *buckets;
  /* sender */
  struct sockaddr_storage peer;
  socklen_t peer_len;
  uint32_t tx_key; /* the next OPT_ID the kernel will assign */
  train_t *trains;
} sock_t;

typedef struct {
  int64_t t1_rt_user, t1_mono, t1_rt_kernel;
  uint32_t tx_key;
  uint8_t sent, has_kernel;
} pkt_t;

typedef struct {
  uint32_t index;
  int64_t t4_rt, t4_mono, t4_rt_user;
  uint8_t t4_kernel;
  uint8_t bytes[STAMP_SIZE];
} arrival_t;

struct train {
  int sock_id;
  uint32_t first_seq, count, size, next;
  uint16_t error_estimate;
  int64_t start_mono, interval_ns, timeout_ns, end_mono;
  pkt_t *pkts;
  arrival_t *arr;
  uint32_t arr_n, arr_cap;
  uint32_t send_errors;
  napi_threadsafe_function tsfn;
  train_t *next_in_sock;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static sock_t socks[MAX_SOCKETS];
static int epfd = -1, lazyfd = -1, wakefd = -1, timerfd_ = -1;
static pthread_t worker;
static int worker_started = 0;
static char start_error[256] = "";

#define TAG_WAKE 0xffffffffu
#define TAG_TIMER 0xfffffffeu

static int64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
/*
 * CLOCK_REALTIME and CLOCK_MONOTONIC read together: realtime bracketed by two
 * monotonic reads, retried while the bracket is wide (the thread was preempted
 * between the reads, which on a busy host can be tens of µs and would shift
 * every interval derived from the pair). The tightest bracket is kept.
 */
static void clock_pair(int64_t *rt, int64_t *mono) {
  int64_t best = INT64_MAX;
  for (int k = 0; k < 4; k++) {
    int64_t m1 = clock_ns(CLOCK_MONOTONIC), r = clock_ns(CLOCK_REALTIME), m2 = clock_ns(CLOCK_MONOTONIC);
    if (m2 - m1 < best) {
      best = m2 - m1;
      *rt = r;
      *mono = m1 + (m2 - m1) / 2;
    }
    if (best < 2000) break;
  }
}
static int64_t ts_ns(const struct timespec *ts) { return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec; }

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}
static uint32_t get_u32(const uint8_t *p) { return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]; }
static void put_ntp(uint8_t *p, int64_t unix_ns) {
  int64_t secs = unix_ns / 1000000000LL, rem = unix_ns % 1000000000LL;
  if (rem < 0) { rem += 1000000000LL; secs--; }
  uint64_t frac = (((uint64_t)rem << 32) + 500000000ULL) / 1000000000ULL;
  put_u32(p, (uint32_t)((uint64_t)secs + NTP_UNIX_OFFSET));
  put_u32(p + 4, (uint32_t)frac);
}

/* ------------------------------------------------------------ addresses */

static void to_v6(const struct sockaddr_storage *ss, uint8_t out[16], uint16_t *port) {
  memset(out, 0, 16);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    out[10] = out[11] = 0xff;
    memcpy(out + 12, &a->sin_addr, 4);
    *port = ntohs(a->sin_port);
  } else {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    memcpy(out, &a->sin6_addr, 16);
    *port = ntohs(a->sin6_port);
  }
}

static int cidr_match(const cidr_t *c, const uint8_t a[16]) {
  int bits = c->bits, i = 0;
  for (; bits >= 8; bits -= 8, i++) if (c->addr[i] != a[i]) return 0;
  if (bits == 0) return 1;
  uint8_t mask = (uint8_t)(0xff << (8 - bits));
  return (c->addr[i] & mask) == (a[i] & mask);
}

static uint32_t addr_hash(const uint8_t a[16]) {
  uint32_t h = 2166136261u;
  for (int i = 0; i < 16; i++) h = (h ^ a[i]) * 16777619u;
  return h;
}

/* Token bucket per source address (a fixed table: a new source takes over a colliding slot with a full bucket). */
static int rate_ok(sock_t *s, const uint8_t a[16], int64_t now) {
  if (s->rate_pps <= 0) return 1;
  bucket_t *b = &s->buckets[addr_hash(a) % BUCKETS];
  if (!b->used || memcmp(b->addr, a, 16) != 0) {
    memcpy(b->addr, a, 16);
    b->used = 1;
    b->tokens = s->burst;
    b->last_ns = now;
  } else {
    b->tokens += (double)(now - b->last_ns) * s->rate_pps / 1e9;
    if (b->tokens > s->burst) b->tokens = s->burst;
    b->last_ns = now;
  }
  if (b->tokens < 1) return 0;
  b->tokens -= 1;
  return 1;
}

/* ------------------------------------------------------------ cmsg parsing */

typedef struct {
  int64_t sw_ns, hw_ns, tsns_ns;
  int ttl;
  int have_pktinfo4, have_pktinfo6;
  struct in_pktinfo pi4;
  struct in6_pktinfo pi6;
  int64_t err_id;
  int err_is_tx_stamp;
} cmsg_info_t;

static void parse_cmsgs(struct msghdr *msg, cmsg_info_t *info) {
  memset(info, 0, sizeof *info);
  info->ttl = -1;
  info->err_id = -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPING) {
      struct timespec ts[3];
      memcpy(ts, CMSG_DATA(c), sizeof ts);
      info->sw_ns = ts_ns(&ts[0]);
      info->hw_ns = ts_ns(&ts[2]);
    } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
      struct timespec ts;
      memcpy(&ts, CMSG_DATA(c), sizeof ts);
      info->tsns_ns = ts_ns(&ts);
    } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      info->ttl = v;
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      info->ttl = v;
    } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      memcpy(&info->pi4, CMSG_DATA(c), sizeof info->pi4);
      info->have_pktinfo4 = 1;
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      memcpy(&info->pi6, CMSG_DATA(c), sizeof info->pi6);
      info->have_pktinfo6 = 1;
    } else if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) ||
               (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR)) {
      struct sock_extended_err ee;
      memcpy(&ee, CMSG_DATA(c), sizeof ee);
      if (ee.ee_errno == ENOMSG && ee.ee_origin == SO_EE_ORIGIN_TIMESTAMPING) {
        info->err_id = ee.ee_data;
        info->err_is_tx_stamp = ee.ee_info == SCM_TSTAMP_SND;
      }
    }
  }
}

/* ------------------------------------------------------------ sockets */

static int enable_rx_stamps(int fd, int want_tx) {
  int flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_RX_HARDWARE | SOF_TIMESTAMPING_RAW_HARDWARE;
  if (want_tx) flags |= SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY;
  if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) == 0) return want_tx ? 3 : 2;
  if (want_tx) {
    flags &= ~(SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY);
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) == 0) return 2;
  }
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) == 0) return 1;
  return 0;
}

static int parse_addr(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    *len = sizeof *a4;
    return AF_INET;
  }
  if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    *len = sizeof *a6;
    return AF_INET6;
  }
  return -1;
}

/* One past the highest slot ever used: the schedule scans socks[0..slots_hi), not all MAX_SOCKETS (cache misses on every wake-up). */
static int slots_hi = 0;

static int alloc_slot(void) {
  for (int i = 0; i < MAX_SOCKETS; i++) {
    if (!socks[i].in_use) {
      if (i >= slots_hi) slots_hi = i + 1;
      return i;
    }
  }
  return -1;
}

/* ------------------------------------------------------------ reflector */

static void reflect_one(sock_t *s, uint8_t *buf, ssize_t n, struct msghdr *msg, int64_t t2_fallback) {
  cmsg_info_t info;
  parse_cmsgs(msg, &info);
  s->received++;
  int64_t t2;
  if (info.sw_ns > 0) {
    t2 = info.sw_ns;
    s->rx_kernel++;
  } else if (info.tsns_ns > 0) {
    t2 = info.tsns_ns;
    s->rx_kernel++;
  } else {
    t2 = t2_fallback;
    s->rx_user++;
  }
  uint8_t src[16];
  uint16_t sport;
  to_v6((struct sockaddr_storage *)msg->msg_name, src, &sport);
  if (msg->msg_flags & MSG_TRUNC) { s->drops[DROP_TRUNCATED]++; return; }
  /* A reply is exactly as long as the request, and a reflector packet needs 44 octets: shorter never answered. */
  if (n < STAMP_SIZE) { s->drops[DROP_TOO_SHORT]++; return; }
  if (sport == 0) { s->drops[DROP_SRC_PORT_ZERO]++; return; }
  for (int i = 0; i < s->deny_ports_n; i++)
    if (s->deny_ports[i] == sport) { s->drops[DROP_REFLECTOR_PORT]++; return; }
  /* Octets 16..43 are MBZ in a Session-Sender packet and carry T2, seq, T1 in a reflector's reply. */
  for (int i = 16; i < STAMP_SIZE; i++)
    if (buf[i] != 0) { s->drops[DROP_NOT_SENDER_PACKET]++; return; }
  if (!s->allow_any) {
    int ok = 0;
    for (int i = 0; i < s->allow_n && !ok; i++) ok = cidr_match(&s->allow[i], src);
    if (!ok) { s->drops[DROP_NOT_ALLOWED]++; return; }
  }
  if (!rate_ok(s, src, clock_ns(CLOCK_MONOTONIC))) { s->drops[DROP_RATE_LIMITED]++; return; }

  uint8_t head[STAMP_SIZE];
  memcpy(head, buf, STAMP_SIZE);
  memset(buf, 0, (size_t)n);
  memcpy(buf, head, 4);                 /* seq = sender's seq (stateless reflector) */
  buf[12] = s->error_estimate >> 8;
  buf[13] = s->error_estimate & 0xff;
  put_ntp(buf + 16, t2);
  memcpy(buf + 24, head, 4);            /* sender seq */
  memcpy(buf + 28, head + 4, 8);        /* sender T1 */
  memcpy(buf + 36, head + 12, 2);       /* sender EE */
  buf[40] = info.ttl >= 0 && info.ttl <= 255 ? (uint8_t)info.ttl : 255;

  struct iovec iov = {buf, (size_t)n};
  char control[64];
  struct msghdr out = {0};
  out.msg_name = msg->msg_name;
  out.msg_namelen = msg->msg_namelen;
  out.msg_iov = &iov;
  out.msg_iovlen = 1;
  /* Answer from the address the request was sent to (a wildcard bind has several). */
  memset(control, 0, sizeof control);
  if (info.have_pktinfo4 && s->family == AF_INET) {
    out.msg_control = control;
    out.msg_controllen = CMSG_SPACE(sizeof(struct in_pktinfo));
    struct cmsghdr *c = CMSG_FIRSTHDR(&out);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    struct in_pktinfo pi = {0};
    pi.ipi_spec_dst = info.pi4.ipi_addr;
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
  } else if (info.have_pktinfo6 && s->family == AF_INET6) {
    out.msg_control = control;
    out.msg_controllen = CMSG_SPACE(sizeof(struct in6_pktinfo));
    struct cmsghdr *c = CMSG_FIRSTHDR(&out);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
    struct in6_pktinfo pi = {0};
    pi.ipi6_addr = info.pi6.ipi6_addr;
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
  }
  /* T3 last, immediately before the send, so T3 − T2 covers all our processing. */
  put_ntp(buf + 4, clock_ns(CLOCK_REALTIME));
  if (sendmsg(s->fd, &out, MSG_DONTWAIT) < 0) s->drops[DROP_SEND_ERROR]++;
  else s->reflected++;
}

static void reflector_readable(sock_t *s) {
  static uint8_t buf[MAX_DATAGRAM];
  char control[512];
  for (int k = 0; k < BATCH_PER_WAKE; k++) {
    struct sockaddr_storage from;
    struct iovec iov = {buf, sizeof buf};
    struct msghdr msg = {0};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(s->fd, &msg, MSG_DONTWAIT);
    int64_t now = clock_ns(CLOCK_REALTIME);
    if (n < 0) {
      if (errno == EINTR) continue;
      return; /* EAGAIN, or an ICMP error for an earlier reply: nothing to do */
    }
    reflect_one(s, buf, n, &msg, now);
  }
}

/* ------------------------------------------------------------ sender */

static void send_packet(sock_t *s, train_t *t) {
  uint32_t i = t->next++;
  pkt_t *p = &t->pkts[i];
  uint8_t buf[MAX_DATAGRAM > 9000 ? 9000 : MAX_DATAGRAM];
  size_t size = t->size;
  memset(buf, 0, size);
  put_u32(buf, t->first_seq + i);
  buf[12] = t->error_estimate >> 8;
  buf[13] = t->error_estimate & 0xff;
  clock_pair(&p->t1_rt_user, &p->t1_mono);
  put_ntp(buf + 4, p->t1_rt_user);
  ssize_t rc = sendto(s->fd, buf, size, MSG_DONTWAIT, (struct sockaddr *)&s->peer, s->peer_len);
  if (rc < 0) {
    t->send_errors++;
    return; /* lost: unreachable, no buffer... the kernel assigned no OPT_ID for it */
  }
  p->sent = 1;
  p->tx_key = s->tx_key++;
}

static train_t *train_for_key(sock_t *s, uint32_t key, uint32_t *index) {
  for (train_t *t = s->trains; t; t = t->next_in_sock) {
    for (uint32_t i = 0; i < t->next; i++) {
      if (t->pkts[i].sent && t->pkts[i].tx_key == key) {
        *index = i;
        return t;
      }
    }
  }
  return NULL;
}

static void sender_errqueue(sock_t *s) {
  char control[512];
  uint8_t data[256];
  for (int k = 0; k < BATCH_PER_WAKE; k++) {
    struct iovec iov = {data, sizeof data};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    if (recvmsg(s->fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return;
    cmsg_info_t info;
    parse_cmsgs(&msg, &info);
    if (!info.err_is_tx_stamp || info.err_id < 0 || info.sw_ns <= 0) continue;
    uint32_t idx;
    train_t *t = train_for_key(s, (uint32_t)info.err_id, &idx);
    if (!t) continue;
    pkt_t *p = &t->pkts[idx];
    /* The driver stamps after sendmsg began: within a millisecond of the pre-send read, never before it. */
    int64_t d = info.sw_ns - p->t1_rt_user;
    if (d >= 0 && d <= 1000000) {
      p->t1_rt_kernel = info.sw_ns;
      p->has_kernel = 1;
    }
  }
}

static void sender_readable(sock_t *s) {
  uint8_t buf[2048];
  char control[512];
  for (int k = 0; k < BATCH_PER_WAKE; k++) {
    struct sockaddr_storage from;
    struct iovec iov = {buf, sizeof buf};
    struct msghdr msg = {0};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(s->fd, &msg, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    int64_t mono = 0, rt = 0;
    clock_pair(&rt, &mono);
    uint8_t a[16], b[16];
    uint16_t pa, pb;
    to_v6(&from, a, &pa);
    to_v6(&s->peer, b, &pb);
    if (pa != pb || memcmp(a, b, 16) != 0 || n < MIN_REFLECTOR_REPLY) continue; /* not our reflector */
    uint32_t sender_seq = get_u32(buf + 24);
    cmsg_info_t info;
    parse_cmsgs(&msg, &info);
    for (train_t *t = s->trains; t; t = t->next_in_sock) {
      uint32_t idx = sender_seq - t->first_seq;
      if (idx >= t->next || !t->pkts[idx].sent) continue;
      if (t->arr_n >= t->arr_cap) break;
      arrival_t *r = &t->arr[t->arr_n++];
      r->index = idx;
      r->t4_rt_user = rt;
      int64_t k4 = info.sw_ns > 0 ? info.sw_ns : info.tsns_ns;
      /* A kernel stamp lies between our pre-send read and this read (a lazy socket is read up to a train's timeout later). */
      if (k4 > 0 && k4 <= rt && k4 >= t->pkts[idx].t1_rt_user - 1000000LL) {
        r->t4_rt = k4;
        r->t4_kernel = 1;
        /* The arrival on the monotonic clock, for the clock-step check in deliver(); never before the send. */
        r->t4_mono = mono - (rt - k4);
        if (r->t4_mono < t->pkts[idx].t1_mono) r->t4_mono = mono;
      } else {
        r->t4_rt = rt;
        r->t4_kernel = 0;
        r->t4_mono = mono;
        if (s->lazy) {
          /* No kernel stamp after all: T4 is the read, so this socket must be read at once from now on. */
          epoll_ctl(lazyfd, EPOLL_CTL_DEL, s->fd, NULL);
          struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(s - socks) | ((uint32_t)(s->fd & 0xffff) << 16)};
          epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev);
          s->lazy = 0;
        }
      }
      memset(r->bytes, 0, STAMP_SIZE);
      memcpy(r->bytes, buf, n < STAMP_SIZE ? (size_t)n : STAMP_SIZE);
      break;
    }
  }
}

/* ------------------------------------------------------------ the thread */

static void unlink_train(train_t *t) {
  sock_t *s = &socks[t->sock_id];
  for (train_t **pp = &s->trains; *pp; pp = &(*pp)->next_in_sock) {
    if (*pp == t) {
      *pp = t->next_in_sock;
      break;
    }
  }
}

static void finish_train(train_t *t) {
  unlink_train(t);
  /* deliver() frees t on the JS thread, possibly before the call below returns: keep the handle. */
  napi_threadsafe_function tsfn = t->tsfn;
  if (napi_call_threadsafe_function(tsfn, t, napi_tsfn_nonblocking) != napi_ok) {
    free(t->pkts);
    free(t->arr);
    free(t);
  }
  napi_release_threadsafe_function(tsfn, napi_tsfn_release);
}

/*
 * Send what is due, finish what is over; returns the next deadline (CLOCK_MONOTONIC ns) or 0.
 * replies_read_at: when the lazy sockets were last read. A train is judged against that moment, not
 * against the clock now: if the thread lost the CPU after the read, replies that came in meanwhile are
 * unread, and judging "now" would count them lost. Such a train's verdict waits for the next wake-up
 * (its deadline is already due), which reads them first.
 */
static int64_t run_schedule(int64_t replies_read_at) {
  int64_t next = 0;
  for (int i = 0; i < slots_hi; i++) {
    sock_t *s = &socks[i];
    if (!s->in_use || s->kind != 2) continue;
    train_t *t = s->trains;
    while (t) {
      train_t *following = t->next_in_sock;
      int64_t now = clock_ns(CLOCK_MONOTONIC);
      while (t->next < t->count && t->start_mono + (int64_t)t->next * t->interval_ns <= now) {
        send_packet(s, t);
        /* From the schedule, not the send: trains sent together also end together (one wake-up); but a
           last packet sent over 1 ms late (the thread got no CPU) still gets its whole timeout. */
        if (t->next == t->count) {
          int64_t scheduled = t->start_mono + (int64_t)(t->count - 1) * t->interval_ns + t->timeout_ns;
          int64_t from_send = clock_ns(CLOCK_MONOTONIC) + t->timeout_ns;
          t->end_mono = from_send - scheduled > 1000000LL ? from_send : scheduled;
        }
      }
      if (t->next == t->count && replies_read_at >= t->end_mono) {
        finish_train(t);
      } else {
        int64_t due = t->next < t->count ? t->start_mono + (int64_t)t->next * t->interval_ns : t->end_mono;
        if (next == 0 || due < next) next = due;
      }
      t = following;
    }
  }
  return next;
}

static void handle_events(struct epoll_event *events, int n);

static void *worker_main(void *arg) {
  (void)arg;
  /* Named so that per-thread CPU (top -H, /proc/PID/task) shows the datapath's own cost. */
  pthread_setname_np(pthread_self(), "citymesh-stamp");
  /* Default timer slack is 50 µs; the schedule wants to wake on time. */
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  struct epoll_event events[64];
  int64_t armed = -1;
  for (;;) {
    pthread_mutex_lock(&lock);
    /* Replies and transmit stamps that arrived since the last wake-up, before any train is finished. */
    int64_t replies_read_at = clock_ns(CLOCK_MONOTONIC);
    int lazy_n = epoll_wait(lazyfd, events, 64, 0);
    handle_events(events, lazy_n);
    int64_t next = run_schedule(replies_read_at);
    /* A deadline already armed is still pending (run_schedule only returns deadlines after replies_read_at,
       and an expiry consumed in this wake-up lies before it): no syscall. */
    if (next != armed) {
      struct itimerspec its = {0};
      if (next > 0) {
        its.it_value.tv_sec = next / 1000000000LL;
        its.it_value.tv_nsec = next % 1000000000LL;
      }
      timerfd_settime(timerfd_, TFD_TIMER_ABSTIME, &its, NULL);
      armed = next;
    }
    pthread_mutex_unlock(&lock);

    int n = epoll_wait(epfd, events, 64, -1);
    if (n < 0) continue;
    pthread_mutex_lock(&lock);
    handle_events(events, n);
    pthread_mutex_unlock(&lock);
  }
  return NULL;
}

/* Called with the lock held. */
static void handle_events(struct epoll_event *events, int n) {
    for (int e = 0; e < n; e++) {
      uint32_t tag = events[e].data.u32;
      if (tag == TAG_WAKE || tag == TAG_TIMER) {
        uint64_t v;
        ssize_t r = read(tag == TAG_WAKE ? wakefd : timerfd_, &v, sizeof v);
        (void)r;
        continue;
      }
      uint32_t id = tag & 0xffff;
      if (id >= MAX_SOCKETS || !socks[id].in_use || (tag >> 16) != (uint32_t)(socks[id].fd & 0xffff)) continue;
      sock_t *s = &socks[id];
      if (s->kind == 1) {
        reflector_readable(s);
      } else {
        if (events[e].events & EPOLLERR) sender_errqueue(s);
        if (events[e].events & EPOLLIN) sender_readable(s);
      }
    }
}

static int ensure_worker(void) {
  if (worker_started) return 1;
  epfd = epoll_create1(EPOLL_CLOEXEC);
  lazyfd = epoll_create1(EPOLL_CLOEXEC);
  wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  timerfd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (epfd < 0 || lazyfd < 0 || wakefd < 0 || timerfd_ < 0) {
    snprintf(start_error, sizeof start_error, "cannot create epoll/eventfd/timerfd: %s", strerror(errno));
    return 0;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = TAG_WAKE};
  epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev);
  ev.data.u32 = TAG_TIMER;
  epoll_ctl(epfd, EPOLL_CTL_ADD, timerfd_, &ev);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  /* Signals belong to Node's main thread. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int rc = pthread_create(&worker, &attr, worker_main, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    snprintf(start_error, sizeof start_error, "cannot start the datapath thread: %s", strerror(rc));
    return 0;
  }
  worker_started = 1;
  return 1;
}

static void wake(void) {
  uint64_t one = 1;
  ssize_t r = write(wakefd, &one, sizeof one);
  (void)r;
}

/* ------------------------------------------------------------ N-API glue */

#define THROW(env, msg) do { napi_throw_error(env, NULL, msg); return NULL; } while (0)

static int get_prop_i64(napi_env env, napi_value obj, const char *key, int64_t *out) {
  napi_value v;
  napi_valuetype t;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok) return 0;
  if (t == napi_number) {
    double d;
    napi_get_value_double(env, v, &d);
    *out = (int64_t)d;
    return 1;
  }
  if (t == napi_bigint) {
    bool lossless;
    napi_get_value_bigint_int64(env, v, out, &lossless);
    return 1;
  }
  return 0;
}

static int get_prop_double(napi_env env, napi_value obj, const char *key, double *out) {
  napi_value v;
  napi_valuetype t;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok || t != napi_number) return 0;
  napi_get_value_double(env, v, out);
  return 1;
}

static int get_prop_str(napi_env env, napi_value obj, const char *key, char *out, size_t len) {
  napi_value v;
  napi_valuetype t;
  size_t got;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok || t != napi_string) return 0;
  return napi_get_value_string_utf8(env, v, out, len, &got) == napi_ok;
}

static int arg_obj(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) return 0;
  return 1;
}

static sock_t *sock_from(napi_env env, napi_value v, int kind, int *id_out) {
  int32_t id;
  if (napi_get_value_int32(env, v, &id) != napi_ok || id < 0 || id >= MAX_SOCKETS || !socks[id].in_use || socks[id].kind != kind) return NULL;
  if (id_out) *id_out = id;
  return &socks[id];
}

static napi_value make_int(napi_env env, int64_t v) {
  napi_value r;
  napi_create_int64(env, v, &r);
  return r;
}

static void set_num(napi_env env, napi_value obj, const char *key, double v) {
  napi_value n;
  napi_create_double(env, v, &n);
  napi_set_named_property(env, obj, key, n);
}

static void set_str(napi_env env, napi_value obj, const char *key, const char *v) {
  napi_value n;
  napi_create_string_utf8(env, v, NAPI_AUTO_LENGTH, &n);
  napi_set_named_property(env, obj, key, n);
}

/* Open a UDP socket bound to host:port with receive stamps and TTL reporting; returns the slot id or -errno. */
static int open_socket(const char *host, uint16_t port, int kind, char *err, size_t errlen) {
  struct sockaddr_storage ss;
  socklen_t len;
  int family = parse_addr(host, port, &ss, &len);
  if (family < 0) {
    snprintf(err, errlen, "not an IP address: %s", host);
    return -1;
  }
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, errlen, "socket: %s", strerror(errno));
    return -1;
  }
  int on = 1;
  if (family == AF_INET) {
    setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &on, sizeof on);
    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
  } else {
    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof on);
    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
    setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &on, sizeof on); /* IPv4-mapped senders on a dual-stack socket */
  }
  if (kind == 2) {
    /* OWAMP/TWAMP convention: TTL 255 so a reflector can derive the hop count. */
    int ttl = 255;
    if (family == AF_INET) setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
    else setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof ttl);
  }
  if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
    snprintf(err, errlen, "bind %s:%u: %s", host, port, strerror(errno));
    close(fd);
    return -1;
  }
  struct sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &blen);
  uint8_t ignored[16];
  uint16_t bport;
  to_v6(&bound, ignored, &bport);
  int st = enable_rx_stamps(fd, kind == 2);

  pthread_mutex_lock(&lock);
  int id = alloc_slot();
  if (id < 0) {
    pthread_mutex_unlock(&lock);
    close(fd);
    snprintf(err, errlen, "too many STAMP sockets (%d)", MAX_SOCKETS);
    return -1;
  }
  sock_t *s = &socks[id];
  memset(s, 0, sizeof *s);
  s->in_use = 1;
  s->kind = kind;
  s->fd = fd;
  s->family = family;
  s->port = bport;
  s->rx_mode = st >= 1 ? TS_KERNEL : TS_USER;
  s->tx_stamps = st == 3;
  s->error_estimate = 0x2001; /* unsynchronised, 1 s, until JS says otherwise */
  s->allow_any = 1;
  s->rate_pps = 0;
  s->lazy = kind == 2 && s->rx_mode == TS_KERNEL;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLERR, .data.u32 = (uint32_t)id | ((uint32_t)(fd & 0xffff) << 16)};
  epoll_ctl(s->lazy ? lazyfd : epfd, EPOLL_CTL_ADD, fd, &ev);
  pthread_mutex_unlock(&lock);
  return id;
}

/* reflectorOpen({host, port}) -> id */
static napi_value reflector_open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char host[64], err[256];
  int64_t port;
  if (!arg_obj(env, info, 1, argv) || !get_prop_str(env, argv[0], "host", host, sizeof host) || !get_prop_i64(env, argv[0], "port", &port) ||
      port < 0 || port > 65535)
    THROW(env, "reflectorOpen({host, port}): host must be an IP address, port 0..65535");
  if (!ensure_worker()) THROW(env, start_error);
  int id = open_socket(host, (uint16_t)port, 1, err, sizeof err);
  if (id < 0) THROW(env, err);
  pthread_mutex_lock(&lock);
  socks[id].buckets = calloc(BUCKETS, sizeof(bucket_t));
  pthread_mutex_unlock(&lock);
  return make_int(env, id);
}

/*
 * reflectorConfigure(id, {errorEstimate, allowAny, allow: [[address, prefixBits]...], denyPorts: [..], ratePps, burst})
 * Only the keys present are changed.
 */
static napi_value reflector_configure(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!arg_obj(env, info, 2, argv)) THROW(env, "reflectorConfigure(id, options)");
  pthread_mutex_lock(&lock);
  sock_t *s = sock_from(env, argv[0], 1, NULL);
  if (!s) {
    pthread_mutex_unlock(&lock);
    THROW(env, "reflectorConfigure: no such reflector");
  }
  int64_t v;
  double d;
  if (get_prop_i64(env, argv[1], "errorEstimate", &v)) s->error_estimate = (uint16_t)v;
  if (get_prop_double(env, argv[1], "ratePps", &d)) s->rate_pps = d;
  if (get_prop_double(env, argv[1], "burst", &d)) s->burst = d < 1 ? 1 : d;
  napi_value flag;
  bool has;
  if (napi_has_named_property(env, argv[1], "allowAny", &has) == napi_ok && has) {
    bool b = false;
    napi_get_named_property(env, argv[1], "allowAny", &flag);
    napi_get_value_bool(env, flag, &b);
    s->allow_any = b;
  }
  napi_value arr;
  uint32_t n;
  if (napi_has_named_property(env, argv[1], "allow", &has) == napi_ok && has && napi_get_named_property(env, argv[1], "allow", &arr) == napi_ok &&
      napi_get_array_length(env, arr, &n) == napi_ok) {
    cidr_t *list = calloc(n ? n : 1, sizeof(cidr_t));
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++) {
      napi_value pair, addr, bits;
      char text[64];
      size_t len;
      int32_t b;
      struct in_addr a4;
      if (napi_get_element(env, arr, i, &pair) != napi_ok || napi_get_element(env, pair, 0, &addr) != napi_ok ||
          napi_get_element(env, pair, 1, &bits) != napi_ok || napi_get_value_string_utf8(env, addr, text, sizeof text, &len) != napi_ok ||
          napi_get_value_int32(env, bits, &b) != napi_ok)
        continue;
      if (inet_pton(AF_INET, text, &a4) == 1 && b >= 0 && b <= 32) {
        memset(list[kept].addr, 0, 16);
        list[kept].addr[10] = list[kept].addr[11] = 0xff;
        memcpy(list[kept].addr + 12, &a4, 4);
        list[kept].bits = b + 96;
      } else if (inet_pton(AF_INET6, text, list[kept].addr) == 1 && b >= 0 && b <= 128) {
        list[kept].bits = b;
      } else {
        continue;
      }
      kept++;
    }
    free(s->allow);
    s->allow = list;
    s->allow_n = (int)kept;
  }
  if (napi_has_named_property(env, argv[1], "denyPorts", &has) == napi_ok && has && napi_get_named_property(env, argv[1], "denyPorts", &arr) == napi_ok &&
      napi_get_array_length(env, arr, &n) == napi_ok) {
    uint16_t *ports = calloc(n ? n : 1, sizeof(uint16_t));
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++) {
      napi_value e;
      int32_t p;
      if (napi_get_element(env, arr, i, &e) == napi_ok && napi_get_value_int32(env, e, &p) == napi_ok && p > 0 && p < 65536) ports[kept++] = (uint16_t)p;
    }
    free(s->deny_ports);
    s->deny_ports = ports;
    s->deny_ports_n = (int)kept;
  }
  pthread_mutex_unlock(&lock);
  return NULL;
}

/* reflectorStats(id) -> {port, timestamping, received, reflected, rxKernel, rxUser, drops: {...}} */
static napi_value reflector_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!arg_obj(env, info, 1, argv)) THROW(env, "reflectorStats(id)");
  pthread_mutex_lock(&lock);
  sock_t *s = sock_from(env, argv[0], 1, NULL);
  if (!s) {
    pthread_mutex_unlock(&lock);
    THROW(env, "reflectorStats: no such reflector");
  }
  sock_t copy = *s;
  pthread_mutex_unlock(&lock);
  napi_value obj, drops;
  napi_create_object(env, &obj);
  napi_create_object(env, &drops);
  set_num(env, obj, "port", copy.port);
  set_str(env, obj, "timestamping", ts_names[copy.rx_mode]);
  set_num(env, obj, "received", (double)copy.received);
  set_num(env, obj, "reflected", (double)copy.reflected);
  set_num(env, obj, "rxKernel", (double)copy.rx_kernel);
  set_num(env, obj, "rxUser", (double)copy.rx_user);
  for (int i = 0; i < DROP_REASONS; i++) set_num(env, drops, drop_names[i], (double)copy.drops[i]);
  napi_set_named_property(env, obj, "drops", drops);
  return obj;
}

static void close_slot(int id) {
  sock_t *s = &socks[id];
  epoll_ctl(s->lazy ? lazyfd : epfd, EPOLL_CTL_DEL, s->fd, NULL);
  close(s->fd);
  /* Trains still running end now, with what they have. */
  while (s->trains) finish_train(s->trains);
  free(s->allow);
  free(s->deny_ports);
  free(s->buckets);
  memset(s, 0, sizeof *s);
}

/* close(id): reflector or sender */
static napi_value sock_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t id;
  if (!arg_obj(env, info, 1, argv) || napi_get_value_int32(env, argv[0], &id) != napi_ok) THROW(env, "close(id)");
  pthread_mutex_lock(&lock);
  if (id >= 0 && id < MAX_SOCKETS && socks[id].in_use) close_slot(id);
  pthread_mutex_unlock(&lock);
  wake();
  return NULL;
}

/* senderOpen({host (local address), peer, peerPort, tos}) -> {id, port, txStamps, timestamping} */
static napi_value sender_open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char host[64], peer[64], err[256];
  int64_t peer_port, tos = 0;
  if (!arg_obj(env, info, 1, argv) || !get_prop_str(env, argv[0], "host", host, sizeof host) || !get_prop_str(env, argv[0], "peer", peer, sizeof peer) ||
      !get_prop_i64(env, argv[0], "peerPort", &peer_port) || peer_port < 1 || peer_port > 65535)
    THROW(env, "senderOpen({host, peer, peerPort[, tos]}): addresses must be IP literals, peerPort 1..65535");
  get_prop_i64(env, argv[0], "tos", &tos);
  struct sockaddr_storage pss;
  socklen_t plen;
  if (parse_addr(peer, (uint16_t)peer_port, &pss, &plen) < 0) THROW(env, "senderOpen: peer is not an IP address");
  if (!ensure_worker()) THROW(env, start_error);
  int id = open_socket(host, 0, 2, err, sizeof err);
  if (id < 0) THROW(env, err);
  pthread_mutex_lock(&lock);
  sock_t *s = &socks[id];
  if (pss.ss_family != s->family) {
    close_slot(id);
    pthread_mutex_unlock(&lock);
    THROW(env, "senderOpen: local and peer address families differ");
  }
  s->peer = pss;
  s->peer_len = plen;
  int t = (int)(tos & 0xff), rc = 0;
  if (t) rc = s->family == AF_INET6 ? setsockopt(s->fd, IPPROTO_IPV6, IPV6_TCLASS, &t, sizeof t) : setsockopt(s->fd, IPPROTO_IP, IP_TOS, &t, sizeof t);
  int tos_set = 0;
  socklen_t tl = sizeof tos_set;
  if (s->family == AF_INET6) getsockopt(s->fd, IPPROTO_IPV6, IPV6_TCLASS, &tos_set, &tl);
  else getsockopt(s->fd, IPPROTO_IP, IP_TOS, &tos_set, &tl);
  napi_value obj;
  napi_create_object(env, &obj);
  set_num(env, obj, "id", id);
  set_num(env, obj, "port", s->port);
  set_num(env, obj, "tos", rc == 0 ? tos_set : 0);
  napi_value b;
  napi_get_boolean(env, s->tx_stamps, &b);
  napi_set_named_property(env, obj, "txStamps", b);
  set_str(env, obj, "timestamping", ts_names[s->rx_mode]);
  pthread_mutex_unlock(&lock);
  return obj;
}

/*
 * The train's results, built on the JS thread:
 * {sent, sendErrors, txKernel, t1: BigInt64Array (0 = not sent), t1Kernel: Uint8Array,
 *  arrivals: {index: Uint32Array, rawNs: BigInt64Array, t4: BigInt64Array, flags: Uint8Array, bytes: Buffer}}
 * rawNs is T4 − T1 on our side (kernel stamps where valid, else monotonic);
 * flags: 1 = T1 from the kernel, 2 = T4 from the kernel, 4 = the wall clock disagreed (monotonic used).
 */
static void deliver(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)context;
  train_t *t = data;
  if (env != NULL && js_cb != NULL) {
    napi_value obj, arrivals, ab, t1, t1k, idx, raw, t4, flags, bytes;
    void *p;
    napi_create_object(env, &obj);
    uint32_t sent = 0, txk = 0;
    napi_create_arraybuffer(env, (size_t)t->count * 8, &p, &ab);
    int64_t *t1v = p;
    napi_create_typedarray(env, napi_bigint64_array, t->count, ab, 0, &t1);
    napi_create_arraybuffer(env, t->count ? t->count : 1, &p, &ab);
    uint8_t *t1kv = p;
    napi_create_typedarray(env, napi_uint8_array, t->count, ab, 0, &t1k);
    for (uint32_t i = 0; i < t->count; i++) {
      pkt_t *pk = &t->pkts[i];
      t1v[i] = pk->sent ? (pk->has_kernel ? pk->t1_rt_kernel : pk->t1_rt_user) : 0;
      t1kv[i] = pk->has_kernel;
      sent += pk->sent;
      txk += pk->has_kernel;
    }
    uint32_t n = t->arr_n;
    napi_create_object(env, &arrivals);
    napi_create_arraybuffer(env, (size_t)n * 4 + 4, &p, &ab);
    uint32_t *iv = p;
    napi_create_typedarray(env, napi_uint32_array, n, ab, 0, &idx);
    napi_create_arraybuffer(env, (size_t)n * 8 + 8, &p, &ab);
    int64_t *rv = p;
    napi_create_typedarray(env, napi_bigint64_array, n, ab, 0, &raw);
    napi_create_arraybuffer(env, (size_t)n * 8 + 8, &p, &ab);
    int64_t *t4v = p;
    napi_create_typedarray(env, napi_bigint64_array, n, ab, 0, &t4);
    napi_create_arraybuffer(env, n + 1, &p, &ab);
    uint8_t *fv = p;
    napi_create_typedarray(env, napi_uint8_array, n, ab, 0, &flags);
    napi_create_buffer(env, (size_t)n * STAMP_SIZE + 1, &p, &bytes);
    uint8_t *bv = p;
    for (uint32_t k = 0; k < n; k++) {
      arrival_t *r = &t->arr[k];
      pkt_t *pk = &t->pkts[r->index];
      int64_t t1 = pk->has_kernel ? pk->t1_rt_kernel : pk->t1_rt_user;
      int64_t wall = r->t4_rt - t1;
      int64_t mono = r->t4_mono - pk->t1_mono;
      uint8_t f = (pk->has_kernel ? 1 : 0) | (r->t4_kernel ? 2 : 0);
      /* Kernel stamps lie inside [pre-send read, post-receive read]; the wall-clock RTT must fit in that monotonic interval. */
      int64_t slack = 2000 + mono / 1000;
      if (wall < 0 || wall > mono + slack) {
        wall = mono;
        f = 4;
      }
      iv[k] = r->index;
      rv[k] = wall;
      t4v[k] = f == 4 ? r->t4_rt_user : r->t4_rt;
      fv[k] = f;
      memcpy(bv + (size_t)k * STAMP_SIZE, r->bytes, STAMP_SIZE);
    }
    napi_set_named_property(env, arrivals, "index", idx);
    napi_set_named_property(env, arrivals, "rawNs", raw);
    napi_set_named_property(env, arrivals, "t4", t4);
    napi_set_named_property(env, arrivals, "flags", flags);
    napi_set_named_property(env, arrivals, "bytes", bytes);
    set_num(env, obj, "sent", sent);
    set_num(env, obj, "sendErrors", t->send_errors);
    set_num(env, obj, "txKernel", txk);
    napi_set_named_property(env, obj, "t1", t1);
    napi_set_named_property(env, obj, "t1Kernel", t1k);
    napi_set_named_property(env, obj, "arrivals", arrivals);
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_call_function(env, undef, js_cb, 1, &obj, NULL);
  }
  free(t->pkts);
  free(t->arr);
  free(t);
}

/* senderTrain(id, {firstSeq, count, intervalNs, timeoutNs, errorEstimate, size}, callback(result)) */
static napi_value sender_train(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!arg_obj(env, info, 3, argv)) THROW(env, "senderTrain(id, options, callback)");
  int64_t first_seq, count, interval_ns, timeout_ns, ee, size = STAMP_SIZE;
  if (!get_prop_i64(env, argv[1], "firstSeq", &first_seq) || !get_prop_i64(env, argv[1], "count", &count) ||
      !get_prop_i64(env, argv[1], "intervalNs", &interval_ns) || !get_prop_i64(env, argv[1], "timeoutNs", &timeout_ns) ||
      !get_prop_i64(env, argv[1], "errorEstimate", &ee) || count < 0 || count > 1000000 || interval_ns < 0 || timeout_ns < 0)
    THROW(env, "senderTrain: firstSeq, count (0..1e6), intervalNs, timeoutNs, errorEstimate are required");
  get_prop_i64(env, argv[1], "size", &size);
  if (size < STAMP_SIZE || size > 9000) THROW(env, "senderTrain: size must be 44..9000");
  train_t *t = calloc(1, sizeof *t);
  t->pkts = calloc(count ? count : 1, sizeof(pkt_t));
  t->arr_cap = (uint32_t)count * 2 + 16;
  t->arr = calloc(t->arr_cap, sizeof(arrival_t));
  if (!t->pkts || !t->arr) {
    free(t->pkts);
    free(t->arr);
    free(t);
    THROW(env, "senderTrain: out of memory");
  }
  t->first_seq = (uint32_t)first_seq;
  t->count = (uint32_t)count;
  t->size = (uint32_t)size;
  t->interval_ns = interval_ns;
  t->timeout_ns = timeout_ns;
  t->error_estimate = (uint16_t)ee;
  napi_value name;
  napi_create_string_utf8(env, "citymesh-stamp-train", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, NULL, NULL, NULL, deliver, &t->tsfn) != napi_ok) {
    free(t->pkts);
    free(t->arr);
    free(t);
    THROW(env, "senderTrain: cannot create the completion callback");
  }
  pthread_mutex_lock(&lock);
  int id;
  sock_t *s = sock_from(env, argv[0], 2, &id);
  if (!s) {
    pthread_mutex_unlock(&lock);
    napi_release_threadsafe_function(t->tsfn, napi_tsfn_abort);
    free(t->pkts);
    free(t->arr);
    free(t);
    THROW(env, "senderTrain: no such sender");
  }
  t->sock_id = id;
  /*
   * Trains start on a 5 ms grid of the monotonic clock. The scheduler starts
   * its trains in 25 ms slots, so trains submitted together get identical
   * packet times and go out in one wake-up of this thread: 20 peers at 10
   * packets a second cost tens of wake-ups a second instead of hundreds. A
   * train starts at most 5 ms later than asked; every T1 is still its own.
   */
  int64_t now_mono = clock_ns(CLOCK_MONOTONIC);
  t->start_mono = (now_mono / START_GRID_NS + 1) * START_GRID_NS;
  t->end_mono = t->start_mono + timeout_ns;
  t->next_in_sock = s->trains;
  s->trains = t;
  pthread_mutex_unlock(&lock);
  wake();
  return NULL;
}

/* realtimeNs() -> bigint: the clock the datapath stamps with (tests compare against it). */
static napi_value realtime_ns(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  napi_create_bigint_int64(env, clock_ns(CLOCK_REALTIME), &v);
  return v;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"reflectorOpen", NULL, reflector_open, NULL, NULL, NULL, napi_default, NULL},
      {"reflectorConfigure", NULL, reflector_configure, NULL, NULL, NULL, napi_default, NULL},
      {"reflectorStats", NULL, reflector_stats, NULL, NULL, NULL, napi_default, NULL},
      {"senderOpen", NULL, sender_open, NULL, NULL, NULL, napi_default, NULL},
      {"senderTrain", NULL, sender_train, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, sock_close, NULL, NULL, NULL, napi_default, NULL},
      {"realtimeNs", NULL, realtime_ns, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
