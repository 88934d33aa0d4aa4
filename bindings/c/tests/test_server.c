/* Tests of the Server API (libmuxql built with the server feature), misuse included. No
 * database is needed: a server binds and reports before any client arrives. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "muxql.h"

static int failures;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                             \
        }                                                                           \
    } while (0)

int main(void) {
    muxql_config *cfg = NULL;
    CHECK(muxql_config_new(&cfg) == MUXQL_OK);
    CHECK(muxql_config_add_route(cfg, MUXQL_PROTOCOL_POSTGRES, "db", "127.0.0.1:1", "u", "pw",
                                 NULL, 2) == MUXQL_OK);
    CHECK(muxql_config_add_route(cfg, MUXQL_PROTOCOL_MYSQL, "db", "127.0.0.1:1", "u", "pw", NULL,
                                 2) == MUXQL_OK);
    CHECK(muxql_config_add_user(cfg, "u", "pw") == MUXQL_OK);

    muxql_server *s = NULL;
    char why[256] = {0};
    CHECK(muxql_server_start(NULL, "127.0.0.1:0", NULL, 100, &s, why, sizeof why) ==
          MUXQL_NULL_PARAMETER);
    CHECK(muxql_server_start(cfg, "127.0.0.1:0", NULL, 100, NULL, why, sizeof why) ==
          MUXQL_NULL_PARAMETER);
    CHECK(muxql_server_start(cfg, "no port", NULL, 100, &s, why, sizeof why) ==
          MUXQL_INVALID_ARGUMENT);
    CHECK(muxql_server_start(cfg, NULL, NULL, 100, &s, why, sizeof why) == MUXQL_INVALID_CONFIG);
    CHECK(strstr(why, "listen") != NULL);

    CHECK(muxql_server_start(cfg, "127.0.0.1:0", "127.0.0.1:0", 100, &s, why, sizeof why) ==
          MUXQL_OK);
    uint16_t pg = 0, my = 0;
    CHECK(muxql_server_port(s, MUXQL_PROTOCOL_POSTGRES, &pg) == MUXQL_OK && pg != 0);
    CHECK(muxql_server_port(s, MUXQL_PROTOCOL_MYSQL, &my) == MUXQL_OK && my != 0 && my != pg);
    CHECK(muxql_server_port(s, 9, &pg) == MUXQL_INVALID_ARGUMENT);
    CHECK(muxql_server_port(s, MUXQL_PROTOCOL_MYSQL, NULL) == MUXQL_NULL_PARAMETER);

    /* A second server cannot bind the same port: the message says why. */
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)pg);
    muxql_server *twin = NULL;
    CHECK(muxql_server_start(cfg, addr, NULL, 100, &twin, why, sizeof why) ==
          MUXQL_INVALID_CONFIG);
    CHECK(twin == NULL && strlen(why) > 0);

    char json[4096];
    size_t n = 0;
    CHECK(muxql_server_stats_json(s, json, 4, &n) == MUXQL_INSUFFICIENT_SIZE && n > 4);
    CHECK(muxql_server_stats_json(s, json, sizeof json, &n) == MUXQL_OK);
    CHECK(strstr(json, "\"protocol\":\"mysql\"") != NULL);
    /* Reload: refused without routes (the server runs on unchanged), applied with one more. */
    muxql_config *next = NULL;
    CHECK(muxql_config_new(&next) == MUXQL_OK);
    CHECK(muxql_server_reload(s, next, why, sizeof why) == MUXQL_INVALID_CONFIG);
    CHECK(strstr(why, "no route") != NULL);
    CHECK(muxql_config_add_route(next, MUXQL_PROTOCOL_MYSQL, "shop", "127.0.0.1:1", "u", "pw",
                                 NULL, 2) == MUXQL_OK);
    CHECK(muxql_server_reload(s, next, why, sizeof why) == MUXQL_OK);
    CHECK(muxql_server_reload(NULL, next, why, sizeof why) == MUXQL_NULL_PARAMETER);
    muxql_config_free(next);
    struct timespec half = {0, 500 * 1000 * 1000};
    nanosleep(&half, NULL); /* stats are published every 200 ms */
    CHECK(muxql_server_stats_json(s, json, sizeof json, &n) == MUXQL_OK);
    CHECK(strstr(json, "\"database\":\"shop\"") != NULL);
    CHECK(muxql_server_stop(s) == MUXQL_OK);
    CHECK(muxql_server_stop(s) == MUXQL_OK); /* twice is fine */
    CHECK(muxql_server_reload(s, cfg, why, sizeof why) == MUXQL_INVALID_CONFIG);
    CHECK(muxql_server_stop(NULL) == MUXQL_NULL_PARAMETER);
    muxql_server_free(s);
    muxql_server_free(NULL);
    muxql_config_free(cfg);

    /* A configuration from TOML text, with the schema of `muxql --config`. */
    muxql_config *toml = NULL;
    CHECK(muxql_config_from_toml("pool_size = 3\n[[routes]]\nprotocol = \"mysql\"\n"
                                 "database = \"shop\"\ntarget = \"127.0.0.1:3306\"\n"
                                 "upstream_user = \"shop\"\n[[users]]\nname = \"shop\"\n"
                                 "password = \"pw\"\n",
                                 &toml, why, sizeof why) == MUXQL_OK);
    muxql_engine *e = NULL;
    CHECK(muxql_engine_new(toml, &e, why, sizeof why) == MUXQL_OK);
    char stats[1024];
    CHECK(muxql_engine_stats_json(e, stats, sizeof stats, &n) == MUXQL_OK);
    CHECK(strstr(stats, "\"database\":\"shop\",\"protocol\":\"mysql\"") != NULL);
    muxql_engine_free(e);
    muxql_config_free(toml);
    toml = NULL;
    CHECK(muxql_config_from_toml("pool_szie = 3\n", &toml, why, sizeof why) ==
          MUXQL_INVALID_CONFIG);
    CHECK(toml == NULL && strstr(why, "pool_szie") != NULL);
    CHECK(muxql_config_from_toml(NULL, &toml, why, sizeof why) == MUXQL_NULL_PARAMETER);
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("test_server: all checks passed\n");
    return 0;
}
