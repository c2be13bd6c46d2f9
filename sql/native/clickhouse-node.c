/*
 * clickhouse-node: run the installed ClickHouse engine library (libchdb.so,
 * from the npm chdb package) as a real ClickHouse node with its own native
 * TCP and HTTP ports.
 *
 * The npm binding cannot open ports (its Session has no server callbacks),
 * but the library also exports clickhouse-local's command-line entry point,
 * query_stable_v2(argc, argv). Given --listen_host, --tcp_port and
 * --http_port, the queries SYSTEM START LISTEN TCP / HTTP start real servers
 * inside it.
 *
 *   clickhouse-node LIBCHDB_PATH [clickhouse-local arguments...]
 *
 * Why a terminal: run as a batch job (stdin not a terminal), clickhouse-local
 * installs Poco's KillingErrorHandler, which terminates the process on any
 * exception that leaves a connection's thread. Its native-protocol handler
 * rethrows every connection-level error (a peer that resets its connection,
 * as a killed shard does to the other shards; a wrong password in the
 * handshake), so one such client took the whole node down ("Terminate called
 * for uncaught exception" in its log). clickhouse-server installs a handler
 * that only logs; clickhouse-local does the same when it is interactive,
 * which it decides from --interactive and isatty(stdin). So this program
 * gives the engine a pseudo-terminal as stdin and runs it interactively: the
 * startup queries run, then the engine waits for a line on that terminal,
 * serving its ports meanwhile, without any CPU. Nothing is ever typed there.
 *
 * Stopping: SIGTERM (or SIGINT) closes the terminal's other side; the
 * engine reads end of input, says "Bye.", shuts down in order (tables
 * flushed and closed) and this program exits 0.
 *
 * The library is opened with dlopen so this program builds with nothing but
 * a C compiler (no ClickHouse headers, no link against the 500 MB library).
 * sql/engine-node.ts composes the arguments; see there for what they are.
 *
 * Exit status: 0 when the engine finished; 1 with the engine's error on
 * stderr; 2 when the library or the terminal cannot be set up.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Arguments that make the engine interactive without anything a terminal user would see or keep. */
static const char *const INTERACTIVE_ARGS[] = {
    "--interactive",
    "--disable_suggestion",     /* no background queries loading completions */
    "--progress=off",           /* no progress bars on a controlling terminal */
    "--history_file=/dev/null", /* no history file in $HOME */
};
#define INTERACTIVE_ARG_COUNT (sizeof INTERACTIVE_ARGS / sizeof INTERACTIVE_ARGS[0])

static int terminal_master = -1;
static sigset_t stop_signals;

/* Waits for SIGTERM/SIGINT (blocked in every other thread) and ends the engine's input. */
static void *wait_for_stop(void *unused) {
    (void)unused;
    int signal_number;
    if (sigwait(&stop_signals, &signal_number) == 0) close(terminal_master);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s LIBCHDB_PATH [clickhouse-local arguments...]\n", argv[0]);
        return 2;
    }
    /* A node must not outlive whoever started it (a test runner that crashed,
       a terminal closed): the kernel kills it when its parent goes away. */
    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) return 2;

    /* Blocked before any engine thread exists, so all of them inherit the mask
       and only wait_for_stop receives these signals. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &stop_signals, NULL) != 0) return 2;

    int terminal_slave;
    if (openpty(&terminal_master, &terminal_slave, NULL, NULL, NULL) != 0 || dup2(terminal_slave, STDIN_FILENO) < 0) {
        perror("clickhouse-node: cannot give the engine a terminal");
        return 2;
    }
    close(terminal_slave);
    pthread_t stopper;
    if (pthread_create(&stopper, NULL, wait_for_stop, NULL) != 0) return 2;

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
    /* clickhouse-local reads argv[0] as its program name; its arguments follow ours. */
    int engine_argc = argc - 1 + (int)INTERACTIVE_ARG_COUNT;
    char **engine_argv = calloc((size_t)engine_argc + 1, sizeof *engine_argv);
    if (engine_argv == NULL) return 2;
    engine_argv[0] = "clickhouse-local";
    for (size_t i = 0; i < INTERACTIVE_ARG_COUNT; i++) engine_argv[1 + i] = (char *)INTERACTIVE_ARGS[i];
    for (int i = 2; i < argc; i++) engine_argv[INTERACTIVE_ARG_COUNT + (size_t)i - 1] = argv[i];

    struct local_result_v2 *result = query(engine_argc, engine_argv);
    if (result == NULL) {
        fprintf(stderr, "clickhouse-node: the engine returned no result\n");
        return 1;
    }
    if (result->error_message != NULL) {
        fprintf(stderr, "clickhouse-node: %s\n", result->error_message);
        return 1;
    }
    return 0;
}
