/* epoll_proxy: a Linux proxy in plain C that embeds the muxql Engine API. It owns the sockets
 * and the event loop; muxql owns the protocols and the pools.
 *
 *   epoll_proxy [--listen-pg PORT] [--listen-mysql PORT] [--pool N]
 *               --route pg|mysql,DATABASE,HOST:PORT,USER,PASSWORD ...
 *
 * Every route's USER/PASSWORD is also a client login. Sockets are non-blocking; reads go
 * straight into the buffer the engine lends (muxql_engine_read_buffer, then _commit); actions
 * are drained in batches; the epoll timeout comes from the engine's next deadline. */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "muxql.h"

#define MAX_EVENTS 256
#define TABLE_SIZE 65536 /* open addressing; far more than the sockets this example holds */
#define HIGH_WATER (4u << 20)
#define LOW_WATER (1u << 20)

enum kind { LISTEN_PG, LISTEN_MYSQL, CLIENT, UPSTREAM };

typedef struct conn {
    enum kind kind;
    int fd;
    uint64_t id;
    uint8_t *out; /* bytes not yet written */
    size_t out_len, out_cap;
    int paused, closing, connecting, blocked, watching_out, dead;
    struct conn *next_dead;
} conn;

static muxql_engine *engine;
static int ep;
static conn *table[TABLE_SIZE]; /* (kind, id) -> conn */
static conn *graveyard;         /* closed during this loop turn; freed after it */

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void die(const char *what, muxql_result r) {
    char text[128];
    muxql_result_text(r, text, sizeof text, NULL);
    fprintf(stderr, "epoll_proxy: %s: %s\n", what, text);
    exit(1);
}

static size_t slot(enum kind k, uint64_t id) {
    return (size_t)((id * 0x9E3779B97F4A7C15ull) ^ (uint64_t)k) % TABLE_SIZE;
}

static conn *lookup(enum kind k, uint64_t id) {
    for (size_t i = slot(k, id), n = 0; n < TABLE_SIZE; i = (i + 1) % TABLE_SIZE, n++) {
        if (!table[i]) return NULL;
        if (table[i] != (conn *)1 && table[i]->kind == k && table[i]->id == id) return table[i];
    }
    return NULL;
}

static void insert(conn *c) {
    size_t i = slot(c->kind, c->id);
    while (table[i] && table[i] != (conn *)1) i = (i + 1) % TABLE_SIZE;
    table[i] = c;
}

static void forget(conn *c) {
    for (size_t i = slot(c->kind, c->id), n = 0; n < TABLE_SIZE; i = (i + 1) % TABLE_SIZE, n++) {
        if (table[i] == c) {
            table[i] = (conn *)1; /* tombstone */
            return;
        }
    }
}

static void watch(conn *c) {
    struct epoll_event ev = {.data.ptr = c};
    ev.events = (c->paused || c->closing ? 0 : EPOLLIN) | (c->watching_out ? EPOLLOUT : 0);
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Closes the socket now; the memory goes once no event of this turn can name it. */
static void destroy(conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    forget(c);
    c->dead = 1;
    c->next_dead = graveyard;
    graveyard = c;
}

static void bury(void) {
    while (graveyard) {
        conn *c = graveyard;
        graveyard = c->next_dead;
        free(c->out);
        free(c);
    }
}

static uint32_t peer_kind(const conn *c) {
    return c->kind == CLIENT ? MUXQL_PEER_CLIENT : MUXQL_PEER_UPSTREAM;
}

/* The socket failed or closed on its own: tell the engine, unless it closed it itself. */
static void lost(conn *c) {
    if (!c->closing) {
        if (c->kind == CLIENT)
            muxql_engine_client_closed(engine, c->id, now_ms());
        else
            muxql_engine_upstream_closed(engine, c->id, now_ms());
    }
    destroy(c);
}

/* Writes what is queued; returns 0 when the connection is gone. */
static int flush(conn *c) {
    while (c->out_len > 0 && !c->connecting) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
        if (n <= 0) {
            lost(c);
            return 0;
        }
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (size_t)n;
    }
    if (c->out_len == 0 && c->closing) {
        destroy(c);
        return 0;
    }
    int want_out = c->out_len > 0 || c->connecting;
    if (want_out != c->watching_out) {
        c->watching_out = want_out;
        watch(c);
    }
    if (c->out_len > HIGH_WATER && !c->blocked) {
        c->blocked = 1;
        muxql_engine_send_blocked(engine, peer_kind(c), c->id, now_ms());
    } else if (c->out_len <= LOW_WATER && c->blocked) {
        c->blocked = 0;
        muxql_engine_send_drained(engine, peer_kind(c), c->id, now_ms());
    }
    return 1;
}

static void queue(conn *c, const uint8_t *data, size_t len) {
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + len) cap *= 2;
        uint8_t *p = realloc(c->out, cap);
        if (!p) die("out of memory", MUXQL_OK);
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

static conn *add(enum kind k, int fd, uint64_t id, uint32_t events) {
    conn *c = calloc(1, sizeof *c);
    if (!c) die("out of memory", MUXQL_OK);
    c->kind = k;
    c->fd = fd;
    c->id = id;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    if (k == CLIENT || k == UPSTREAM) insert(c);
    return c;
}

/* Starts a non-blocking connect to "host:port"; -1 on an immediate failure. */
static int dial(const uint8_t *target, size_t len, int blocking) {
    char host[256], *colon;
    if (len >= sizeof host) return -1;
    memcpy(host, target, len);
    host[len] = 0;
    colon = strrchr(host, ':');
    if (!colon) return -1;
    *colon = 0;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | (blocking ? 0 : SOCK_NONBLOCK), 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (r < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Carries out every pending action, a batch per call. The bytes of a batch stay valid only
 * until the next call that may act, so the batch is taken in full before calling the engine. */
static void drain(void) {
    muxql_action batch[64];
    size_t n;
    do {
        if (muxql_engine_poll_actions(engine, batch, 64, &n) != MUXQL_OK) die("poll", MUXQL_PANIC);
        conn *dirty[64];
        uint64_t failed[64];
        uint32_t cancel_route[64];
        uint64_t cancel_upstream[64];
        uint8_t cancel[64][64];
        size_t ndirty = 0, nfailed = 0, ncancel = 0, cancel_len[64];
        for (size_t i = 0; i < n; i++) {
            muxql_action *a = &batch[i];
            conn *c;
            switch (a->kind) {
            case MUXQL_ACTION_SEND_CLIENT:
            case MUXQL_ACTION_SEND_UPSTREAM:
                c = lookup(a->kind == MUXQL_ACTION_SEND_CLIENT ? CLIENT : UPSTREAM, a->id);
                if (c) {
                    queue(c, a->data, a->len);
                    dirty[ndirty++] = c;
                }
                break;
            case MUXQL_ACTION_CONNECT_UPSTREAM: {
                int fd = dial(a->data, a->len, 0);
                if (fd < 0) {
                    failed[nfailed++] = a->id;
                    break;
                }
                c = add(UPSTREAM, fd, a->id, EPOLLOUT);
                c->connecting = c->watching_out = 1;
                break;
            }
            case MUXQL_ACTION_CLOSE_CLIENT:
            case MUXQL_ACTION_CLOSE_UPSTREAM:
                c = lookup(a->kind == MUXQL_ACTION_CLOSE_CLIENT ? CLIENT : UPSTREAM, a->id);
                if (c) {
                    c->closing = 1;
                    dirty[ndirty++] = c;
                }
                break;
            case MUXQL_ACTION_SEND_CANCEL:
                if (a->len <= sizeof cancel[0]) {
                    memcpy(cancel[ncancel], a->data, a->len);
                    cancel_len[ncancel] = a->len;
                    cancel_upstream[ncancel] = a->id;
                    cancel_route[ncancel++] = a->route;
                }
                break;
            case MUXQL_ACTION_PAUSE_CLIENT:
            case MUXQL_ACTION_RESUME_CLIENT:
            case MUXQL_ACTION_PAUSE_UPSTREAM:
            case MUXQL_ACTION_RESUME_UPSTREAM:
                c = lookup(a->kind <= MUXQL_ACTION_RESUME_CLIENT ? CLIENT : UPSTREAM, a->id);
                if (c) {
                    c->paused = a->kind == MUXQL_ACTION_PAUSE_CLIENT ||
                                a->kind == MUXQL_ACTION_PAUSE_UPSTREAM;
                    watch(c);
                }
                break;
            }
        }
        /* A connection may be named twice; flush each once, at its last mention. */
        for (size_t i = 0; i < ndirty; i++) {
            int later = 0;
            for (size_t j = i + 1; j < ndirty; j++) later |= dirty[j] == dirty[i];
            if (!later && !dirty[i]->dead) flush(dirty[i]);
        }
        for (size_t i = 0; i < nfailed; i++) muxql_engine_upstream_closed(engine, failed[i], now_ms());
        for (size_t i = 0; i < ncancel; i++) {
            /* A CancelRequest: a side connection that writes it and waits until the server
             * closes it (it has passed the cancel on; bounded by a receive timeout), then tells
             * the engine, which holds the upstream back until then. Blocking, for brevity. */
            const uint8_t *target;
            size_t len;
            if (muxql_engine_route_target(engine, cancel_route[i], &target, &len) == MUXQL_OK) {
                int fd = dial(target, len, 1);
                if (fd >= 0) {
                    struct timeval limit = {.tv_sec = 2};
                    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
                    if (send(fd, cancel[i], cancel_len[i], MSG_NOSIGNAL) < 0) perror("cancel");
                    char sink[64];
                    while (recv(fd, sink, sizeof sink, 0) > 0) {
                    }
                    close(fd);
                }
            }
            muxql_engine_cancel_done(engine, cancel_upstream[i], now_ms());
        }
    } while (n > 0);
}

static void on_readable(conn *c) {
    uint8_t *buf;
    size_t cap;
    if (muxql_engine_read_buffer(engine, 16384, &buf, &cap) != MUXQL_OK) die("buffer", MUXQL_OK);
    ssize_t n = recv(c->fd, buf, cap, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        lost(c);
        return;
    }
    if (c->kind == CLIENT)
        muxql_engine_client_commit(engine, c->id, (size_t)n, now_ms());
    else
        muxql_engine_upstream_commit(engine, c->id, (size_t)n, now_ms());
}

static void on_event(conn *c, uint32_t events) {
    if (c->dead) return;
    if (c->kind == LISTEN_PG || c->kind == LISTEN_MYSQL) {
        int fd;
        while ((fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            uint64_t id;
            uint32_t p = c->kind == LISTEN_PG ? MUXQL_PROTOCOL_POSTGRES : MUXQL_PROTOCOL_MYSQL;
            if (muxql_engine_client_open(engine, p, now_ms(), &id) != MUXQL_OK) {
                close(fd);
                continue;
            }
            add(CLIENT, fd, id, EPOLLIN);
        }
        return;
    }
    if (c->connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            lost(c);
            return;
        }
        c->connecting = 0;
        c->watching_out = 0;
        watch(c);
        muxql_engine_upstream_connected(engine, c->id, now_ms());
        return;
    }
    if (events & EPOLLOUT) {
        if (!flush(c)) return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
}

static int listen_on(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0) {
        perror("listen");
        exit(1);
    }
    return fd;
}

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv) {
    muxql_config *cfg;
    muxql_result r = muxql_config_new(&cfg);
    if (r != MUXQL_OK) die("config", r);
    int pg_port = 0, my_port = 0;
    size_t pool = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--listen-pg")) {
            pg_port = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--listen-mysql")) {
            my_port = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--pool")) {
            pool = (size_t)atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--route")) {
            char *f[5], *spec = argv[i + 1];
            for (int k = 0; k < 5; k++) f[k] = strsep(&spec, ",");
            if (!f[4]) die("--route needs protocol,database,host:port,user,password", MUXQL_OK);
            uint32_t p = !strcmp(f[0], "mysql") ? MUXQL_PROTOCOL_MYSQL : MUXQL_PROTOCOL_POSTGRES;
            r = muxql_config_add_route(cfg, p, f[1], f[2], f[3], f[4], NULL, pool);
            if (r == MUXQL_OK) r = muxql_config_add_user(cfg, f[3], f[4]);
            if (r != MUXQL_OK) die("route", r);
        }
    }
    char message[256] = {0};
    r = muxql_engine_new(cfg, &engine, message, sizeof message);
    muxql_config_free(cfg);
    if (r != MUXQL_OK) {
        fprintf(stderr, "epoll_proxy: %s\n", message);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    ep = epoll_create1(0);
    if (pg_port) add(LISTEN_PG, listen_on(pg_port), 0, EPOLLIN);
    if (my_port) add(LISTEN_MYSQL, listen_on(my_port), 0, EPOLLIN);
    fprintf(stderr, "epoll_proxy: muxql %s, listening\n", muxql_version());
    struct epoll_event events[MAX_EVENTS];
    while (!stop) {
        uint64_t deadline, now = now_ms();
        muxql_engine_timeout(engine, &deadline);
        int timeout = deadline == MUXQL_NO_DEADLINE ? -1
                      : deadline <= now             ? 0
                                                    : (int)(deadline - now > 60000 ? 60000 : deadline - now);
        int n = epoll_wait(ep, events, MAX_EVENTS, timeout);
        for (int i = 0; i < n; i++) {
            on_event(events[i].data.ptr, events[i].events);
            drain();
        }
        muxql_engine_handle_timeout(engine, now_ms());
        drain();
        bury();
    }
    muxql_engine_free(engine);
    return 0;
}
