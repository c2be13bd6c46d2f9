/*
 * clickhouse-node: run the installed ClickHouse engine library (libchdb.so,
 * from the npm chdb package) as a real ClickHouse node with its own native
 * TCP and HTTP ports.
 *
 * The npm binding cannot open ports (its Session has no server callbacks),
 * but the library also exports clickhouse-local's command-line entry point,
 * query_stable_v2(argc, argv). Given --listen_host, --tcp_port and
 * --http_port, the queries SYSTEM START LISTEN TCP / HTTP start real servers
 * inside it; a query that sleeps row by row then keeps the process serving
 * until it is cancelled (KILL QUERY), and the entry point returns.
 *
 *   clickhouse-node LIBCHDB_PATH [clickhouse-local arguments...]
 *
 * The library is opened with dlopen so this program builds with nothing but
 * a C compiler (no ClickHouse headers, no link against the 500 MB library).
 * sql/engine-node.ts composes the arguments; see there for what they are.
 *
 * Exit status: 0 when the queries finished or were cancelled; 1 with the
 * engine's error on stderr; 2 when the library cannot be loaded.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

/* chdb.h, struct local_result_v2: the layout query_stable_v2 returns. */
struct local_result_v2 {
    char *buf;
    size_t len;
    void *vec;
    double elapsed;
    uint64_t rows_read;
    uint64_t bytes_read;
    char *error_message;
};

typedef struct local_result_v2 *(*query_fn)(int argc, char **argv);

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s LIBCHDB_PATH [clickhouse-local arguments...]\n", argv[0]);
        return 2;
    }
    /* A node must not outlive whoever started it (a test runner that crashed,
       a terminal closed): the kernel kills it when its parent goes away. */
    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) return 2;

    void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        fprintf(stderr, "clickhouse-node: cannot load %s: %s\n", argv[1], dlerror());
        return 2;
    }
    query_fn query = (query_fn)dlsym(library, "query_stable_v2");
    if (query == NULL) {
        fprintf(stderr, "clickhouse-node: %s has no query_stable_v2 (not a chdb engine library?)\n", argv[1]);
        return 2;
    }
    /* clickhouse-local reads argv[0] as its program name. */
    argv[1] = "clickhouse-local";
    struct local_result_v2 *result = query(argc - 1, argv + 1);
    if (result == NULL) {
        fprintf(stderr, "clickhouse-node: the engine returned no result\n");
        return 1;
    }
    if (result->error_message != NULL) {
        fprintf(stderr, "clickhouse-node: %s\n", result->error_message);
        return 1;
    }
    if (result->len > 0) fwrite(result->buf, 1, result->len, stdout);
    return 0;
}
