/* Tests of every function of the muxql C ABI, including misuse, driving the Engine with a
 * scripted PostgreSQL client and server (no sockets). Built with -Wall -Wextra -Werror and run
 * under AddressSanitizer + UBSan and valgrind by `make test`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "muxql.h"

static int failures;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                             \
        }                                                                           \
    } while (0)

#define CHECK_RESULT(call, expected) CHECK((call) == (expected))

/* A growable byte buffer for wire messages. */
typedef struct {
    uint8_t data[4096];
    size_t len;
} buf;

static void put_u8(buf *b, uint8_t v) { b->data[b->len++] = v; }

static void put_u32(buf *b, uint32_t v) {
    put_u8(b, (uint8_t)(v >> 24));
    put_u8(b, (uint8_t)(v >> 16));
    put_u8(b, (uint8_t)(v >> 8));
    put_u8(b, (uint8_t)v);
}

static void put_str(buf *b, const char *s) {
    size_t n = strlen(s) + 1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

/* Patches the 4-byte big-endian length at `at` to cover everything after it. */
static void patch_len(buf *b, size_t at) {
    uint32_t n = (uint32_t)(b->len - at);
    b->data[at] = (uint8_t)(n >> 24);
    b->data[at + 1] = (uint8_t)(n >> 16);
    b->data[at + 2] = (uint8_t)(n >> 8);
    b->data[at + 3] = (uint8_t)n;
}

static void startup(buf *b, const char *user, const char *db) {
    size_t at = b->len;
    put_u32(b, 0);
    put_u32(b, 196608); /* protocol 3.0 */
    put_str(b, "user");
    put_str(b, user);
    put_str(b, "database");
    put_str(b, db);
    put_u8(b, 0);
    patch_len(b, at);
}

/* A tagged message: tag, length, then `body` of `n` bytes. */
static void message(buf *b, char tag, const void *body, size_t n) {
    put_u8(b, (uint8_t)tag);
    put_u32(b, (uint32_t)(n + 4));
    memcpy(b->data + b->len, body, n);
    b->len += n;
}

static void param(buf *b, const char *name, const char *value) {
    buf body = {.len = 0};
    put_str(&body, name);
    put_str(&body, value);
    message(b, 'S', body.data, body.len);
}

/* Drains every action; records the last one of `kind` and counts those of `kind`. */
static size_t drain(muxql_engine *e, uint32_t kind, muxql_action *last) {
    size_t count = 0;
    muxql_action a;
    while (muxql_engine_poll_action(e, &a) == MUXQL_OK) {
        if (a.kind == kind) {
            count++;
            if (last) *last = a;
        }
    }
    return count;
}

static void test_version_and_result_text(void) {
    const char *v = muxql_version();
    CHECK(v != NULL && strlen(v) > 0);
    char text[64];
    size_t n = 0;
    CHECK_RESULT(muxql_result_text(MUXQL_UNKNOWN_ID, text, sizeof text, &n), MUXQL_OK);
    CHECK(strstr(text, "unknown") != NULL && n == strlen(text));
    CHECK_RESULT(muxql_result_text(12345, text, sizeof text, NULL), MUXQL_OK);
    CHECK(strcmp(text, "unknown result code") == 0);
    CHECK_RESULT(muxql_result_text(MUXQL_OK, text, 3, &n), MUXQL_OK);
    CHECK(strcmp(text, "ok") == 0 && n == 2);
    CHECK_RESULT(muxql_result_text(MUXQL_OK, NULL, 0, NULL), MUXQL_NULL_PARAMETER);
}

static muxql_config *config(void) {
    muxql_config *cfg = NULL;
    CHECK_RESULT(muxql_config_new(&cfg), MUXQL_OK);
    CHECK_RESULT(muxql_config_add_route(cfg, MUXQL_PROTOCOL_POSTGRES, "db", "127.0.0.1:5432",
                                        "up", NULL, NULL, 2),
                 MUXQL_OK);
    CHECK_RESULT(muxql_config_add_user(cfg, "alice", "pw"), MUXQL_OK);
    CHECK_RESULT(muxql_config_set(cfg, "auth", "trust"), MUXQL_OK);
    CHECK_RESULT(muxql_config_set(cfg, "rng_seed",
                                  "0707070707070707070707070707070707070707070707070707070707070707"),
                 MUXQL_OK);
    return cfg;
}

static void test_config_misuse(void) {
    CHECK_RESULT(muxql_config_new(NULL), MUXQL_NULL_PARAMETER);
    muxql_config_free(NULL);
    muxql_config *cfg = NULL;
    CHECK_RESULT(muxql_config_new(&cfg), MUXQL_OK);
    CHECK_RESULT(muxql_config_add_route(NULL, MUXQL_PROTOCOL_POSTGRES, "db", "h:1", "u", NULL,
                                        NULL, 0),
                 MUXQL_NULL_PARAMETER);
    CHECK_RESULT(muxql_config_add_route(cfg, 99, "db", "h:1", "u", NULL, NULL, 0),
                 MUXQL_INVALID_ARGUMENT);
    CHECK_RESULT(muxql_config_add_route(cfg, MUXQL_PROTOCOL_MYSQL, NULL, "h:1", "u", NULL, NULL,
                                        0),
                 MUXQL_NULL_PARAMETER);
    CHECK_RESULT(muxql_config_add_user(cfg, "bob", NULL), MUXQL_NULL_PARAMETER);
    CHECK_RESULT(muxql_config_set(cfg, "no_such_key", "1"), MUXQL_INVALID_ARGUMENT);
    CHECK_RESULT(muxql_config_set(cfg, "pool_mode", "sometimes"), MUXQL_INVALID_ARGUMENT);
    CHECK_RESULT(muxql_config_set(cfg, "wait_timeout_ms", "-5"), MUXQL_INVALID_ARGUMENT);
    CHECK_RESULT(muxql_config_set(cfg, "pool_mode", "session"), MUXQL_OK);

    /* No route: the engine is refused with a message naming the problem. */
    muxql_engine *e = NULL;
    char message[128] = {0};
    CHECK_RESULT(muxql_engine_new(cfg, &e, message, sizeof message), MUXQL_INVALID_CONFIG);
    CHECK(e == NULL);
    CHECK(strstr(message, "no route") != NULL);
    CHECK_RESULT(muxql_config_add_route(cfg, MUXQL_PROTOCOL_MYSQL, "db", "h:3306", "u", "pw",
                                        NULL, 0),
                 MUXQL_OK);
    CHECK_RESULT(muxql_config_set(cfg, "connect_timeout_ms", "999999999999999"), MUXQL_OK);
    CHECK_RESULT(muxql_engine_new(cfg, &e, message, sizeof message), MUXQL_INVALID_CONFIG);
    CHECK(strstr(message, "connect_timeout") != NULL);
    CHECK_RESULT(muxql_engine_new(cfg, &e, NULL, 0), MUXQL_INVALID_CONFIG);
    CHECK_RESULT(muxql_engine_new(NULL, &e, NULL, 0), MUXQL_NULL_PARAMETER);
    CHECK_RESULT(muxql_engine_new(cfg, NULL, NULL, 0), MUXQL_NULL_PARAMETER);
    muxql_config_free(cfg);
}

static void test_engine_misuse(void) {
    muxql_config *cfg = config();
    muxql_engine *e = NULL;
    CHECK_RESULT(muxql_engine_new(cfg, &e, NULL, 0), MUXQL_OK);
    muxql_config_free(cfg); /* the engine keeps its own copy */
    uint64_t id = 0;
    muxql_action a;
    size_t n = 0;
    uint8_t *rb = NULL;
    size_t cap = 0;
    CHECK_RESULT(muxql_engine_client_open(NULL, MUXQL_PROTOCOL_POSTGRES, 0, &id),
                 MUXQL_NULL_PARAMETER);
    CHECK_RESULT(muxql_engine_client_open(e, 7, 0, &id), MUXQL_INVALID_ARGUMENT);
    CHECK_RESULT(muxql_engine_client_open(e, MUXQL_PROTOCOL_POSTGRES, 0, NULL),
                 MUXQL_NULL_PARAMETER);
    CHECK_RESULT(muxql_engine_client_data(e, 424242, (const uint8_t *)"x", 1, 0),
                 MUXQL_UNKNOWN_ID);
    CHECK_RESULT(muxql_engine_upstream_data(e, 1, NULL, 0, 0), MUXQL_UNKNOWN_ID);
    CHECK_RESULT(muxql_engine_upstream_connected(e, 1, 0), MUXQL_UNKNOWN_ID);
    CHECK_RESULT(muxql_engine_upstream_closed(e, 1, 0), MUXQL_UNKNOWN_ID);
    /* A cancel reported done after its upstream went away is not an error. */
    CHECK_RESULT(muxql_engine_cancel_done(e, 1, 0), MUXQL_OK);
    CHECK_RESULT(muxql_engine_cancel_done(NULL, 1, 0), MUXQL_NULL_PARAMETER);
    CHECK_RESULT(muxql_engine_client_closed(e, 1, 0), MUXQL_UNKNOWN_ID);
    CHECK_RESULT(muxql_engine_client_commit(e, 1, 0, 0), MUXQL_UNKNOWN_ID);
    CHECK_RESULT(muxql_engine_poll_action(e, NULL), MUXQL_NULL_PARAMETER);
    CHECK_RESULT(muxql_engine_poll_action(e, &a), MUXQL_NO_ACTION);
    CHECK_RESULT(muxql_engine_poll_actions(e, NULL, 4, &n), MUXQL_NULL_PARAMETER);
    CHECK_RESULT(muxql_engine_poll_actions(e, &a, 1, &n), MUXQL_OK);
    CHECK(n == 0);
    CHECK_RESULT(muxql_engine_send_blocked(e, 3, 1, 0), MUXQL_INVALID_ARGUMENT);
    CHECK_RESULT(muxql_engine_send_drained(e, MUXQL_PEER_UPSTREAM, 1, 0), MUXQL_UNKNOWN_ID);
    CHECK_RESULT(muxql_engine_read_buffer(e, 16, NULL, &cap), MUXQL_NULL_PARAMETER);
    CHECK_RESULT(muxql_engine_client_open(e, MUXQL_PROTOCOL_POSTGRES, 0, &id), MUXQL_OK);
    CHECK_RESULT(muxql_engine_client_commit(e, id, 4, 0), MUXQL_WRONG_STATE);
    CHECK_RESULT(muxql_engine_read_buffer(e, 16, &rb, &cap), MUXQL_OK);
    CHECK(rb != NULL && cap >= 16);
    CHECK_RESULT(muxql_engine_client_commit(e, id, cap + 1, 0), MUXQL_INVALID_ARGUMENT);
    CHECK_RESULT(muxql_engine_client_closed(e, id, 0), MUXQL_OK);
    CHECK_RESULT(muxql_engine_client_closed(e, id, 0), MUXQL_UNKNOWN_ID);
    const uint8_t *target = NULL;
    size_t target_len = 0;
    CHECK_RESULT(muxql_engine_route_target(e, 9, &target, &target_len), MUXQL_INVALID_ARGUMENT);
    CHECK_RESULT(muxql_engine_route_target(e, 0, &target, &target_len), MUXQL_OK);
    CHECK(target_len == strlen("127.0.0.1:5432") && memcmp(target, "127.0.0.1:5432", target_len) == 0);
    muxql_engine_free(e);
    muxql_engine_free(NULL);
}

static void test_a_session_end_to_end(void) {
    muxql_config *cfg = config();
    muxql_engine *e = NULL;
    CHECK_RESULT(muxql_engine_new(cfg, &e, NULL, 0), MUXQL_OK);
    muxql_config_free(cfg);

    /* The client logs in (trust) through the zero-copy read buffer. */
    uint64_t client = 0;
    CHECK_RESULT(muxql_engine_client_open(e, MUXQL_PROTOCOL_POSTGRES, 1000, &client), MUXQL_OK);
    buf b = {.len = 0};
    startup(&b, "alice", "db");
    uint8_t *rb = NULL;
    size_t cap = 0;
    CHECK_RESULT(muxql_engine_read_buffer(e, b.len, &rb, &cap), MUXQL_OK);
    memcpy(rb, b.data, b.len);
    CHECK_RESULT(muxql_engine_client_commit(e, client, b.len, 1000), MUXQL_OK);
    muxql_action connect;
    CHECK(drain(e, MUXQL_ACTION_CONNECT_UPSTREAM, &connect) == 1);
    CHECK(connect.route == 0 && connect.len == strlen("127.0.0.1:5432"));
    uint64_t up = connect.id;
    uint64_t deadline = 0;
    CHECK_RESULT(muxql_engine_timeout(e, &deadline), MUXQL_OK);
    CHECK(deadline != MUXQL_NO_DEADLINE && deadline > 1000);
    CHECK_RESULT(muxql_engine_timeout(e, NULL), MUXQL_NULL_PARAMETER);

    /* The upstream logs in; the client is welcomed. */
    CHECK_RESULT(muxql_engine_upstream_connected(e, up, 1001), MUXQL_OK);
    muxql_action sent;
    CHECK(drain(e, MUXQL_ACTION_SEND_UPSTREAM, &sent) == 1);
    b.len = 0;
    uint8_t auth_ok[4] = {0, 0, 0, 0};
    message(&b, 'R', auth_ok, 4);
    param(&b, "server_version", "15.0");
    param(&b, "client_encoding", "UTF8");
    uint8_t key[8] = {0, 0, 0, 42, 'K', 'E', 'Y', '!'};
    message(&b, 'K', key, 8);
    message(&b, 'Z', "I", 1);
    CHECK_RESULT(muxql_engine_upstream_data(e, up, b.data, b.len, 1002), MUXQL_OK);
    muxql_action welcome;
    CHECK(drain(e, MUXQL_ACTION_SEND_CLIENT, &welcome) >= 1);

    /* A query goes upstream as sent; the answer comes back in a batch. */
    b.len = 0;
    message(&b, 'Q', "SELECT 1", 9);
    CHECK_RESULT(muxql_engine_client_data(e, client, b.data, b.len, 1003), MUXQL_OK);
    muxql_action batch[8];
    size_t n = 0;
    CHECK_RESULT(muxql_engine_poll_actions(e, batch, 8, &n), MUXQL_OK);
    CHECK(n == 1 && batch[0].kind == MUXQL_ACTION_SEND_UPSTREAM && batch[0].id == up);
    CHECK(batch[0].len == b.len && memcmp(batch[0].data, b.data, b.len) == 0);
    b.len = 0;
    message(&b, 'C', "SELECT 1", 9);
    message(&b, 'Z', "I", 1);
    CHECK_RESULT(muxql_engine_upstream_data(e, up, b.data, b.len, 1004), MUXQL_OK);
    CHECK_RESULT(muxql_engine_poll_actions(e, batch, 8, &n), MUXQL_OK);
    CHECK(n == 1 && batch[0].kind == MUXQL_ACTION_SEND_CLIENT && batch[0].id == client);
    CHECK(batch[0].len == b.len && memcmp(batch[0].data, b.data, b.len) == 0);

    /* Backpressure: a blocked client pauses its feeder only while it holds one. */
    CHECK_RESULT(muxql_engine_send_blocked(e, MUXQL_PEER_CLIENT, client, 1005), MUXQL_OK);
    CHECK(drain(e, MUXQL_ACTION_PAUSE_UPSTREAM, NULL) == 0);
    CHECK_RESULT(muxql_engine_send_drained(e, MUXQL_PEER_CLIENT, client, 1005), MUXQL_OK);

    /* Stats as JSON: too small a buffer reports the size it needs. */
    size_t need = 0;
    char small[8];
    CHECK_RESULT(muxql_engine_stats_json(e, small, sizeof small, &need), MUXQL_INSUFFICIENT_SIZE);
    CHECK(need > sizeof small);
    char *json = malloc(need + 1);
    size_t written = 0;
    CHECK_RESULT(muxql_engine_stats_json(e, json, need + 1, &written), MUXQL_OK);
    CHECK(written == need && strstr(json, "\"clients\":1") != NULL);
    CHECK(strstr(json, "\"protocol\":\"postgres\"") != NULL);
    free(json);

    /* Time passes beyond the idle timeout: the idle upstream is closed. */
    CHECK_RESULT(muxql_engine_handle_timeout(e, 1004 + 3600 * 1000), MUXQL_OK);
    CHECK(drain(e, MUXQL_ACTION_CLOSE_UPSTREAM, NULL) == 1);
    CHECK_RESULT(muxql_engine_upstream_data(e, up, b.data, b.len, 1), MUXQL_UNKNOWN_ID);
    CHECK_RESULT(muxql_engine_client_closed(e, client, 1), MUXQL_OK);
    muxql_engine_free(e);
}

int main(void) {
    test_version_and_result_text();
    test_config_misuse();
    test_engine_misuse();
    test_a_session_end_to_end();
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("test_engine: all checks passed\n");
    return 0;
}
