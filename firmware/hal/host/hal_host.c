/* hal_host.c - the host-simulator HAL: 8 pthread workers with blocking (mutex + condvar)
 * fork/join and barrier, memcpy DMA, clock_gettime timer, and a pseudo-terminal or TCP byte
 * transport. Nothing here spins: the host may have fewer cores than the cluster has workers.
 *
 * Options (hal_init): --tcp PORT  listen on 127.0.0.1:PORT (0 = any free port), print
 *                                 "TCP 127.0.0.1:PORT"; default: a pseudo-terminal, print
 *                                 "PTY /dev/pts/N" (like a USB-serial adapter appearing).
 *                     --no-transport  (tools that only compute: tdn-run)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "tdn/config.h"
#include "tdn/hal.h"

/* Memory levels: hal/common/sim_memory.c. */

const char *hal_target_name(void) { return "host-sim"; }

uint64_t hal_instret(unsigned hart) { (void)hart; return 0; }

/* ---- timer ------------------------------------------------------------------------------- */
uint32_t hal_timer_ticks(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
}

uint32_t hal_timer_hz(void) { return 1000000u; }

/* ---- DMA: a synchronous memcpy; the id only orders waits --------------------------------- */
static hal_dma_id dma_next;

hal_dma_id hal_dma_copy_async(void *dst, const void *src, size_t bytes)
{
    memcpy(dst, src, bytes);
    return ++dma_next;
}

void hal_dma_wait(hal_dma_id id) { (void)id; }

/* ---- cluster ----------------------------------------------------------------------------- */
static pthread_t workers[TDN_WORKERS];
static pthread_mutex_t fork_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fork_go = PTHREAD_COND_INITIALIZER;
static pthread_cond_t fork_done = PTHREAD_COND_INITIALIZER;
static unsigned fork_gen, fork_finished;
static hal_task_fn fork_fn;
static void *fork_arg;

static pthread_mutex_t bar_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bar_cv = PTHREAD_COND_INITIALIZER;
static unsigned bar_count, bar_gen;

static void *worker_main(void *p)
{
    unsigned core = (unsigned)(uintptr_t)p;
    unsigned seen = 0;
    for (;;) {
        hal_task_fn fn;
        void *arg;
        pthread_mutex_lock(&fork_mu);
        while (fork_gen == seen) pthread_cond_wait(&fork_go, &fork_mu);
        seen = fork_gen;
        fn = fork_fn;
        arg = fork_arg;
        pthread_mutex_unlock(&fork_mu);
        fn(core, arg);
        pthread_mutex_lock(&fork_mu);
        if (++fork_finished == TDN_WORKERS) pthread_cond_signal(&fork_done);
        pthread_mutex_unlock(&fork_mu);
    }
    return NULL;
}

static int cluster_started;

static int cluster_start(void)
{
    sigset_t all, old;
    if (cluster_started) return 0;
    /* workers never take signals: the controller thread handles them */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (unsigned i = 0; i < TDN_WORKERS; i++) {
        if (pthread_create(&workers[i], NULL, worker_main, (void *)(uintptr_t)i) != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            return -1;
        }
        pthread_detach(workers[i]);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    cluster_started = 1;
    return 0;
}

void hal_cluster_fork(hal_task_fn fn, void *arg)
{
    pthread_mutex_lock(&fork_mu);
    fork_fn = fn;
    fork_arg = arg;
    fork_finished = 0;
    fork_gen++;
    pthread_cond_broadcast(&fork_go);
    while (fork_finished < TDN_WORKERS) pthread_cond_wait(&fork_done, &fork_mu);
    pthread_mutex_unlock(&fork_mu);
}

void hal_cluster_barrier(unsigned core)
{
    (void)core;
    pthread_mutex_lock(&bar_mu);
    if (++bar_count == TDN_WORKERS) {
        bar_count = 0;
        bar_gen++;
        pthread_cond_broadcast(&bar_cv);
    } else {
        unsigned gen = bar_gen;
        while (gen == bar_gen) pthread_cond_wait(&bar_cv, &bar_mu);
    }
    pthread_mutex_unlock(&bar_mu);
}

/* ---- transport --------------------------------------------------------------------------- */
enum { T_NONE, T_PTY, T_TCP };
static int t_kind = T_NONE;
static int t_fd = -1;       /* pty master, or the connected TCP client */
static int t_slave = -1;    /* our own handle on the pty slave: keeps the master readable */
static int t_listen = -1;

static int open_pty(void)
{
    struct termios tio;
    const char *name;
    t_fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (t_fd < 0 || grantpt(t_fd) != 0 || unlockpt(t_fd) != 0) return -1;
    name = ptsname(t_fd);
    if (!name) return -1;
    t_slave = open(name, O_RDWR | O_NOCTTY);
    if (t_slave < 0) return -1;
    if (tcgetattr(t_slave, &tio) == 0) {
        cfmakeraw(&tio);
        tcsetattr(t_slave, TCSANOW, &tio);
    }
    fcntl(t_fd, F_SETFL, fcntl(t_fd, F_GETFL) | O_NONBLOCK);
    printf("PTY %s\n", name);
    fflush(stdout);
    return 0;
}

static int open_tcp(int port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int one = 1;
    t_listen = socket(AF_INET, SOCK_STREAM, 0);
    if (t_listen < 0) return -1;
    setsockopt(t_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (bind(t_listen, (struct sockaddr *)&a, sizeof a) != 0 || listen(t_listen, 1) != 0) return -1;
    if (getsockname(t_listen, (struct sockaddr *)&a, &len) != 0) return -1;
    printf("TCP 127.0.0.1:%u\n", (unsigned)ntohs(a.sin_port));
    fflush(stdout);
    return 0;
}

int hal_init(int argc, char **argv)
{
    int kind = T_PTY, port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tcp") == 0 && i + 1 < argc) { kind = T_TCP; port = atoi(argv[++i]); }
        else if (strcmp(argv[i], "--pty") == 0) kind = T_PTY;
        else if (strcmp(argv[i], "--no-transport") == 0) kind = T_NONE;
    }
    signal(SIGPIPE, SIG_IGN);
    if (cluster_start() != 0) return -1;
    t_kind = kind;
    if (kind == T_PTY) return open_pty();
    if (kind == T_TCP) return open_tcp(port);
    return 0;
}

static int tcp_accept(uint32_t timeout_ms)
{
    struct pollfd p = {t_listen, POLLIN, 0};
    int one = 1;
    if (poll(&p, 1, (int)timeout_ms) <= 0) return 0;
    t_fd = accept(t_listen, NULL, NULL);
    if (t_fd < 0) return 0;
    setsockopt(t_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(t_fd, F_SETFL, fcntl(t_fd, F_GETFL) | O_NONBLOCK);
    return 1;
}

int hal_transport_read(uint8_t *buf, size_t max, uint32_t timeout_ms)
{
    struct pollfd p;
    ssize_t n;
    if (t_kind == T_NONE) return -1;
    if (t_kind == T_TCP && t_fd < 0) {
        if (!tcp_accept(timeout_ms)) return 0;
        timeout_ms = 0;
    }
    p.fd = t_fd;
    p.events = POLLIN;
    p.revents = 0;
    if (poll(&p, 1, (int)timeout_ms) <= 0) return 0;
    n = read(t_fd, buf, max);
    if (n > 0) return (int)n;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    if (t_kind == T_TCP) { /* peer closed: wait for the next connection */
        close(t_fd);
        t_fd = -1;
        return 0;
    }
    return n == 0 ? 0 : -1;
}

int hal_transport_write(const uint8_t *buf, size_t n)
{
    size_t done = 0;
    int waited = 0;
    if (t_fd < 0) return -1;
    while (done < n) {
        ssize_t w = write(t_fd, buf + done, n - done);
        if (w > 0) { done += (size_t)w; continue; }
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd p = {t_fd, POLLOUT, 0};
            if (waited >= 1000 || poll(&p, 1, 100) < 0) return -1; /* peer not reading: drop */
            waited += 100;
            continue;
        }
        return -1;
    }
    return 0;
}
