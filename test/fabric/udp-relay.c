/*
 * The fabric's UDP delay relay in C: what test/fabric/relay.ts runs for its
 * UDP forwards (STAMP) when a C compiler is at hand (native-relay.ts builds
 * it), so the delay a fabric link injects is exact to microseconds, not to
 * whenever Node gets a CPU.
 *
 * - Every packet's arrival time is the kernel's receive timestamp
 *   (SO_TIMESTAMPNS, CLOCK_REALTIME), so time spent waiting for this process
 *   to run is already part of the hold, not added to it.
 * - It is released at arrival + floor + the link's delay: one thread sleeps in
 *   epoll on a timerfd armed (absolute, CLOCK_REALTIME) a little before the
 *   earliest due time, with timer slack cut to 1 ns and SCHED_FIFO priority
 *   when allowed (root), then spins on the clock for the rest. A bare timer
 *   wake-up on a virtual machine is 50-60 µs late at the median and 0.3 ms at
 *   p99 (--timer-probe), the size of what the fabric must resolve; waking
 *   SPIN_US early (default 200 µs, env CITYMESH_RELAY_SPIN_US, 0 = no spin)
 *   turns most of that into a spin of the same length. The floor (250 µs in
 *   the fabric) is longer than the spin, so a packet with no delay is held the
 *   same way as a delayed one and the two windows' errors are alike.
 * - Each release records its error (send time - due time) in a 1 µs histogram
 *   per link and leg: the relay reports its own accuracy (p50, p99, max).
 *
 * usage: udp-relay LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT FLOOR_US SEED [PEER=DELAY_US,LOSS ...]
 *        udp-relay --timer-probe COUNT INTERVAL_US
 * The second form measures the floor any relay on this host can reach: COUNT
 * bare timerfd wake-ups, INTERVAL_US apart, at the same priority and slack,
 * and prints how late each woke ("p50 P99 MAX" in µs): the benchmark's ceiling.
 * Prints "ready PORT" once bound. Commands on stdin, one answer line each on stdout:
 *   set PEER DELAY_US LOSS | blackhole PEER FROM_MS TO_MS | reset | get (JSON counters)
 * Exits when stdin closes.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINKS 64
#define MAX_SESSIONS 1024
#define MAX_HELD 65536
#define MAX_BLACKHOLES 64
#define HIST_US 20000 /* release errors up to 20 ms at 1 µs; later ones land in the last bucket */
#define SESSION_IDLE_NS (120LL * 1000000000LL)

typedef struct {
  uint64_t packets, forwarded, dropped_loss, dropped_blackhole, dropped_full, releases;
  double late_sum_us, late_max_us;
  uint32_t *hist;
} leg_t;

typedef struct {
  struct in_addr peer;
  char name[64];
  double delay_us, loss;
  int64_t bh_from_ms[MAX_BLACKHOLES], bh_to_ms[MAX_BLACKHOLES];
  int blackholes;
  leg_t in, out;
} link_t;

typedef struct {
  int fd; /* upstream socket, -1 when free */
  struct sockaddr_in client;
  int link;
  int64_t last_used_ns;
} session_t;

typedef struct {
  int64_t due_ns;
  uint64_t seq;
  int fd; /* socket to send on */
  struct sockaddr_in to;
  int link;
  int out; /* leg: 0 in (peer -> target), 1 out (reply -> peer) */
  size_t len;
  unsigned char *data;
} held_t;

static link_t links[MAX_LINKS];
static int nlinks;
static session_t sessions[MAX_SESSIONS];
static held_t heap[MAX_HELD];
static int nheld;
static uint64_t seq;
static double floor_us;
static uint32_t rng;
static int pub_fd, timer_fd, ep;
static struct sockaddr_in target;
static uint64_t unknown_source;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* mulberry32, as the Node relay: seedable, reproducible drop patterns. */
static double random01(void) {
  uint32_t t;
  rng += 0x6d2b79f5u;
  t = rng;
  t = (t ^ (t >> 15)) * (t | 1u);
  t ^= t + (t ^ (t >> 7)) * (t | 61u);
  return (double)(t ^ (t >> 14)) / 4294967296.0;
}

static int before(const held_t *a, const held_t *b) { return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq); }

static void swap(int i, int j) {
  held_t t = heap[i];
  heap[i] = heap[j];
  heap[j] = t;
}

static void heap_push(held_t *h) {
  int i = nheld++;
  heap[i] = *h;
  while (i > 0) {
    int p = (i - 1) / 2;
    if (!before(&heap[i], &heap[p])) break;
    swap(i, p);
    i = p;
  }
}

static held_t heap_pop(void) {
  held_t top = heap[0];
  heap[0] = heap[--nheld];
  for (int i = 0;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < nheld && before(&heap[l], &heap[m])) m = l;
    if (r < nheld && before(&heap[r], &heap[m])) m = r;
    if (m == i) break;
    swap(i, m);
    i = m;
  }
  return top;
}

static int64_t spin_ns = 200000;

static void arm(void) {
  struct itimerspec its;
  memset(&its, 0, sizeof its);
  if (nheld > 0) {
    int64_t due = heap[0].due_ns - spin_ns;
    if (due <= 0) due = 1;
    its.it_value.tv_sec = due / 1000000000LL;
    its.it_value.tv_nsec = due % 1000000000LL;
  }
  timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static int find_link(struct in_addr a) {
  for (int i = 0; i < nlinks; i++)
    if (links[i].peer.s_addr == a.s_addr) return i;
  return -1;
}

static void leg_reset(leg_t *l) {
  uint32_t *h = l->hist;
  memset(l, 0, sizeof *l);
  l->hist = h;
  memset(h, 0, sizeof(uint32_t) * (HIST_US + 1));
}

/* Kernel receive time of the datagram just read (ns, CLOCK_REALTIME), or now when absent. */
static int64_t rx_time(struct msghdr *msg) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
      struct timespec t;
      memcpy(&t, CMSG_DATA(c), sizeof t);
      return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
    }
  }
  return now_ns();
}

/* Decide one packet's fate on a leg and hold it; returns 0 when dropped. */
static int admit(int li, int out, int64_t rx_ns, int fd, struct sockaddr_in *to, unsigned char *buf, size_t len) {
  link_t *l = &links[li];
  leg_t *leg = out ? &l->out : &l->in;
  leg->packets++;
  int64_t rx_ms = rx_ns / 1000000LL;
  for (int i = 0; i < l->blackholes; i++) {
    if (rx_ms >= l->bh_from_ms[i] && rx_ms < l->bh_to_ms[i]) {
      leg->dropped_blackhole++;
      return 0;
    }
  }
  if (l->loss > 0 && random01() < l->loss) {
    leg->dropped_loss++;
    return 0;
  }
  if (nheld >= MAX_HELD) {
    leg->dropped_full++;
    return 0;
  }
  held_t h;
  h.due_ns = rx_ns + (int64_t)((floor_us + l->delay_us) * 1000.0 + 0.5);
  h.seq = seq++;
  h.fd = fd;
  h.to = *to;
  h.link = li;
  h.out = out;
  h.len = len;
  h.data = malloc(len ? len : 1);
  if (!h.data) {
    leg->dropped_full++;
    return 0;
  }
  memcpy(h.data, buf, len);
  int first = nheld == 0 || h.due_ns < heap[0].due_ns;
  heap_push(&h);
  if (first) arm();
  return 1;
}

static void release_due(void) {
  for (;;) {
    if (nheld == 0) break;
    int64_t now = now_ns();
    if (heap[0].due_ns > now + spin_ns) break;
    /* Woken early on purpose: the rest of the wait on the clock, not on the scheduler. */
    while (now < heap[0].due_ns) now = now_ns();
    held_t h = heap_pop();
    int64_t sent = now_ns();
    sendto(h.fd, h.data, h.len, 0, (struct sockaddr *)&h.to, sizeof h.to);
    free(h.data);
    leg_t *leg = h.out ? &links[h.link].out : &links[h.link].in;
    double late_us = (double)(sent - h.due_ns) / 1000.0;
    if (late_us < 0) late_us = 0;
    leg->forwarded++;
    leg->releases++;
    leg->late_sum_us += late_us;
    if (late_us > leg->late_max_us) leg->late_max_us = late_us;
    int b = (int)late_us;
    leg->hist[b > HIST_US ? HIST_US : b]++;
  }
  arm();
}

static void enable_timestamps(int fd) {
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
}

static int session_for(struct sockaddr_in *client, int li, int64_t now) {
  int free_slot = -1;
  for (int i = 0; i < MAX_SESSIONS; i++) {
    session_t *s = &sessions[i];
    if (s->fd < 0) {
      if (free_slot < 0) free_slot = i;
      continue;
    }
    if (s->client.sin_addr.s_addr == client->sin_addr.s_addr && s->client.sin_port == client->sin_port) {
      s->last_used_ns = now;
      return i;
    }
    if (now - s->last_used_ns > SESSION_IDLE_NS) {
      epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
      close(s->fd);
      s->fd = -1;
      if (free_slot < 0) free_slot = i;
    }
  }
  if (free_slot < 0) return -1;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  enable_timestamps(fd);
  struct sockaddr_in any;
  memset(&any, 0, sizeof any);
  any.sin_family = AF_INET;
  if (bind(fd, (struct sockaddr *)&any, sizeof any) < 0) {
    close(fd);
    return -1;
  }
  session_t *s = &sessions[free_slot];
  s->fd = fd;
  s->client = *client;
  s->link = li;
  s->last_used_ns = now;
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 100 + (uint32_t)free_slot};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  return free_slot;
}

/* Read every datagram waiting on fd; session < 0: the public socket (peer -> target). */
static void drain(int fd, int session) {
  unsigned char buf[65536];
  char control[256];
  for (;;) {
    struct sockaddr_in from;
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr msg = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 0) return;
    int64_t rx = rx_time(&msg);
    if (session < 0) {
      int li = find_link(from.sin_addr);
      if (li < 0) {
        unknown_source++;
        continue;
      }
      int s = session_for(&from, li, rx);
      if (s < 0) {
        links[li].in.dropped_full++;
        continue;
      }
      admit(li, 0, rx, sessions[s].fd, &target, buf, (size_t)n);
    } else {
      session_t *s = &sessions[session];
      s->last_used_ns = rx;
      admit(s->link, 1, rx, pub_fd, &s->client, buf, (size_t)n);
    }
  }
}

static double hist_quantile(const leg_t *l, double q) {
  if (l->releases == 0) return -1;
  uint64_t rank = (uint64_t)(q * (double)(l->releases - 1)) + 1, seen = 0;
  for (int i = 0; i <= HIST_US; i++) {
    seen += l->hist[i];
    if (seen >= rank) return i + 0.5; /* the bucket's middle: 1 µs buckets */
  }
  return HIST_US;
}

static void print_leg(const char *name, const leg_t *l) {
  printf("\"%s\":{\"packets\":%llu,\"forwarded\":%llu,\"droppedLoss\":%llu,\"droppedBlackhole\":%llu,\"droppedFull\":%llu,"
         "\"releases\":%llu,\"lateSumUs\":%.3f,\"lateMaxUs\":%.3f,\"lateP50Us\":%.1f,\"lateP99Us\":%.1f}",
         name, (unsigned long long)l->packets, (unsigned long long)l->forwarded, (unsigned long long)l->dropped_loss,
         (unsigned long long)l->dropped_blackhole, (unsigned long long)l->dropped_full, (unsigned long long)l->releases,
         l->late_sum_us, l->late_max_us, hist_quantile(l, 0.5), hist_quantile(l, 0.99));
}

static void command(char *line) {
  char peer[64];
  double a, b;
  long long from, to;
  if (sscanf(line, "set %63s %lf %lf", peer, &a, &b) == 3) {
    struct in_addr addr;
    int li = inet_aton(peer, &addr) ? find_link(addr) : -1;
    if (li < 0 || !(a >= 0) || !(b >= 0 && b <= 1)) {
      printf("error bad set\n");
    } else {
      links[li].delay_us = a;
      links[li].loss = b;
      printf("ok\n");
    }
  } else if (sscanf(line, "blackhole %63s %lld %lld", peer, &from, &to) == 3) {
    struct in_addr addr;
    int li = inet_aton(peer, &addr) ? find_link(addr) : -1;
    if (li < 0 || links[li].blackholes >= MAX_BLACKHOLES) {
      printf("error bad blackhole\n");
    } else {
      links[li].bh_from_ms[links[li].blackholes] = from;
      links[li].bh_to_ms[links[li].blackholes++] = to;
      printf("ok\n");
    }
  } else if (strncmp(line, "reset", 5) == 0) {
    for (int i = 0; i < nlinks; i++) {
      leg_reset(&links[i].in);
      leg_reset(&links[i].out);
    }
    printf("ok\n");
  } else if (strncmp(line, "get", 3) == 0) {
    printf("{\"unknownSource\":%llu,\"held\":%d,\"links\":[", (unsigned long long)unknown_source, nheld);
    for (int i = 0; i < nlinks; i++) {
      printf("%s{\"peer\":\"%s\",", i ? "," : "", inet_ntoa(links[i].peer));
      print_leg("in", &links[i].in);
      printf(",");
      print_leg("out", &links[i].out);
      printf("}");
    }
    printf("]}\n");
  } else {
    printf("error unknown command\n");
  }
  fflush(stdout);
}

static void realtime_priority(void) {
  /* Woken on time under load: a timer slack of 1 ns, and SCHED_FIFO where permitted (root). */
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  struct sched_param sp = {.sched_priority = 10};
  if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0) fprintf(stderr, "udp-relay: SCHED_FIFO not permitted (%s): normal priority\n", strerror(errno));
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int timer_probe(int count, double interval_us) {
  if (count < 1 || count > 1000000 || !(interval_us >= 10)) {
    fprintf(stderr, "udp-relay: --timer-probe COUNT (1..1000000) INTERVAL_US (>= 10)\n");
    return 2;
  }
  realtime_priority();
  int fd = timerfd_create(CLOCK_REALTIME, 0);
  double *late = malloc(sizeof(double) * (size_t)count);
  if (fd < 0 || !late) return 1;
  for (int i = 0; i < count; i++) {
    int64_t due = now_ns() + (int64_t)(interval_us * 1000.0);
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = due / 1000000000LL;
    its.it_value.tv_nsec = due % 1000000000LL;
    timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL);
    uint64_t expirations;
    if (read(fd, &expirations, sizeof expirations) < 0) return 1;
    late[i] = (double)(now_ns() - due) / 1000.0;
  }
  qsort(late, (size_t)count, sizeof(double), cmp_double);
  printf("%.1f %.1f %.1f\n", late[(count - 1) / 2], late[(int)((count - 1) * 0.99)], late[count - 1]);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--timer-probe") == 0) return timer_probe(atoi(argv[2]), atof(argv[3]));
  if (argc < 7) {
    fprintf(stderr, "usage: udp-relay LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT FLOOR_US SEED [PEER=DELAY_US,LOSS ...]\n");
    return 2;
  }
  struct sockaddr_in listen_addr;
  memset(&listen_addr, 0, sizeof listen_addr);
  listen_addr.sin_family = AF_INET;
  listen_addr.sin_port = htons((uint16_t)atoi(argv[2]));
  memset(&target, 0, sizeof target);
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)atoi(argv[4]));
  if (!inet_aton(argv[1], &listen_addr.sin_addr) || !inet_aton(argv[3], &target.sin_addr)) {
    fprintf(stderr, "udp-relay: addresses must be IPv4\n");
    return 2;
  }
  floor_us = atof(argv[5]);
  const char *spin = getenv("CITYMESH_RELAY_SPIN_US");
  if (spin && *spin) spin_ns = (int64_t)(atof(spin) * 1000.0);
  if (spin_ns < 0 || spin_ns > 10000000) spin_ns = 200000;
  rng = (uint32_t)strtoul(argv[6], NULL, 0);
  for (int i = 7; i < argc && nlinks < MAX_LINKS; i++) {
    link_t *l = &links[nlinks];
    char addr[64];
    if (sscanf(argv[i], "%63[^=]=%lf,%lf", addr, &l->delay_us, &l->loss) != 3 || !inet_aton(addr, &l->peer)) {
      fprintf(stderr, "udp-relay: bad link \"%s\" (want PEER=DELAY_US,LOSS)\n", argv[i]);
      return 2;
    }
    snprintf(l->name, sizeof l->name, "%s", addr);
    l->in.hist = calloc(HIST_US + 1, sizeof(uint32_t));
    l->out.hist = calloc(HIST_US + 1, sizeof(uint32_t));
    nlinks++;
  }
  for (int i = 0; i < MAX_SESSIONS; i++) sessions[i].fd = -1;

  pub_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  enable_timestamps(pub_fd);
  if (bind(pub_fd, (struct sockaddr *)&listen_addr, sizeof listen_addr) < 0) {
    fprintf(stderr, "udp-relay: bind %s:%s: %s\n", argv[1], argv[2], strerror(errno));
    return 1;
  }
  socklen_t len = sizeof listen_addr;
  getsockname(pub_fd, (struct sockaddr *)&listen_addr, &len);
  timer_fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
  ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
  epoll_ctl(ep, EPOLL_CTL_ADD, pub_fd, &ev);
  ev.data.u32 = 1;
  epoll_ctl(ep, EPOLL_CTL_ADD, timer_fd, &ev);
  ev.data.u32 = 2;
  epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev);
  realtime_priority();
  printf("ready %d\n", ntohs(listen_addr.sin_port));
  fflush(stdout);

  char line[512];
  size_t used = 0;
  for (;;) {
    struct epoll_event events[64];
    int n = epoll_wait(ep, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    /* Releases first: a packet due now goes out before new arrivals are read (they are timestamped by the kernel). */
    for (int i = 0; i < n; i++) {
      if (events[i].data.u32 == 1) {
        uint64_t expirations;
        if (read(timer_fd, &expirations, sizeof expirations) < 0) { /* spurious: nothing due */
        }
        release_due();
      }
    }
    for (int i = 0; i < n; i++) {
      uint32_t tag = events[i].data.u32;
      if (tag == 0) {
        drain(pub_fd, -1);
      } else if (tag == 2) {
        ssize_t r = read(STDIN_FILENO, line + used, sizeof line - 1 - used);
        if (r <= 0) return 0; /* the parent went away */
        used += (size_t)r;
        line[used] = 0;
        char *nl;
        while ((nl = strchr(line, '\n'))) {
          *nl = 0;
          command(line);
          size_t rest = used - (size_t)(nl + 1 - line);
          memmove(line, nl + 1, rest);
          used = rest;
          line[used] = 0;
        }
        if (used >= sizeof line - 1) used = 0; /* an overlong line: dropped */
      } else if (tag >= 100) {
        int s = (int)tag - 100;
        if (s < MAX_SESSIONS && sessions[s].fd >= 0) drain(sessions[s].fd, s);
      }
    }
    release_due();
  }
}
