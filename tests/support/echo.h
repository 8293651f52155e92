/*
 * echo.h - an in-process TCP echo server on 127.0.0.1 for the programs that
 * drive the TCP adapter against a live peer (tests/netns/blackhole.c,
 * tests/netns/signal_storm.c, tests/soak/soak.c; tests only).
 *
 * One thread with one poll loop: it accepts, and echoes what each client
 * sends (after reply_delay_ns, requests served in turn; or never, when
 * silent).  Commands (an outage, listening again, stop) are run by that
 * thread and acknowledged, so a caller knows the server did them.  The
 * thread is never a target of the callers' signals unless they make it one;
 * its waits resume after EINTR anyway.
 */
#ifndef SHP_TEST_ECHO_H
#define SHP_TEST_ECHO_H

#include <stdbool.h>
#include <stdint.h>

#include <shardpool/adapters/tcp.h>

typedef struct echo_server echo_server;

typedef struct echo_opts {
    int64_t reply_delay_ns; /* each reply waits this long (0: at once) */
    bool silent;            /* accept and read, never answer */
} echo_opts;

/* Starts a server on a free loopback port (opts NULL: a plain echo).
 * 0 or a negative errno. */
int echo_start(echo_server **out, const echo_opts *opts);

/* Its port (a number, and as a string that lives in s), and the clients
 * connected now. */
int echo_port(const echo_server *s);
const char *echo_port_str(const echo_server *s);
int echo_clients(const echo_server *s);

/* An outage: resets every client (RST) and stops listening, so connects
 * are refused.  echo_up listens on the same port again (no-op while
 * listening).  0, a negative errno, or -ETIMEDOUT if the server thread did
 * not run the command within 5 s. */
int echo_down(echo_server *s);
int echo_up(echo_server *s);

/* Stops the thread, closes every socket, frees s (NULL: nothing). */
void echo_stop(echo_server *s);

/* A TCP adapter config for this server: shp_tcp_config_init's defaults,
 * host 127.0.0.1, its port (the string lives in s), echo_ping as the check.
 * The caller sets timeouts and name. */
void echo_tcp_config(const echo_server *s, shp_tcp_config *tc);

/* A shp_tcp_config ping: "ping\n" sent and echoed back within 1 s, or by
 * the acquire's deadline (shp_connect_deadline_ns) when that is sooner;
 * resumes after signals.  ud: NULL, or an int64_t * with another bound in
 * ns instead of 1 s.  0, -ETIMEDOUT, -ECONNRESET, -EPROTO or -errno. */
int echo_ping(int fd, void *ud);

#endif
