/* server: muxql's own server (its thread, listeners, pools) started from C in a few lines.
 *   server PG_PORT PG_TARGET DATABASE USER PASSWORD    (stops on SIGINT or SIGTERM) */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "muxql.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: server PG_PORT PG_TARGET DATABASE USER PASSWORD\n"); return 2; }
    char listen[64], why[256] = {0};
    snprintf(listen, sizeof listen, "127.0.0.1:%s", argv[1]);
    muxql_config *cfg;
    muxql_server *server;
    muxql_config_new(&cfg);
    muxql_config_add_route(cfg, MUXQL_PROTOCOL_POSTGRES, argv[3], argv[2], argv[4], argv[5], NULL, 4);
    muxql_config_add_user(cfg, argv[4], argv[5]);
    muxql_result r = muxql_server_start(cfg, listen, NULL, 5000, &server, why, sizeof why);
    muxql_config_free(cfg);
    if (r != MUXQL_OK) { fprintf(stderr, "server: %s\n", why); return 1; }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    fprintf(stderr, "server: muxql %s on %s\n", muxql_version(), listen);
    while (!stop) pause();
    muxql_server_free(server); /* graceful: running transactions get up to 5 s */
    return 0;
}
