/*
 * redisserver.h - a private redis-server for integration tests (tests only).
 *
 * rsrv_start runs redis-server in the foreground of a child process (fork
 * and exec, pid kept) on 127.0.0.1 and a free port (and on <dir>/redis.sock), persistence off, in a
 * fresh mkdtemp directory that holds its config file (so a password is not
 * on its command line) and its log, and waits until it answers PING.
 * rsrv_stop ends it (SIGTERM, then SIGKILL if it lingers) and removes the
 * directory.  The other calls make it misbehave for failure tests.
 *
 * Not thread-safe: one thread drives a server.  The caller should ignore
 * SIGPIPE (hiredis writes with write(2)).
 */
#ifndef SHP_TEST_REDISSERVER_H
#define SHP_TEST_REDISSERVER_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct rsrv {
    pid_t pid;               /* > 0 while the process runs (or is stopped) */
    int port;
    char dir[64];            /* the mkdtemp directory; "" when none */
    char password[64];       /* requirepass; "" for none */
} rsrv;

/* A loopback TCP port that was free a moment ago (bind port 0, read it,
 * close).  Returns the port, or -errno. */
int rsrv_free_port(void);

/* Starts a server; password NULL or "" = none.  Returns 0 once it answers
 * PING (bounded by about 10 s), else -errno with everything cleaned up. */
int rsrv_start(rsrv *s, const char *password);

/* SIGTERM, wait (bounded), SIGKILL fallback; removes the directory.  Safe
 * on a stopped (SIGSTOP) or already dead server and on a zeroed rsrv. */
void rsrv_stop(rsrv *s);

/* SIGKILL and reap; the directory and port are kept for rsrv_restart. */
int rsrv_kill9(rsrv *s);

/* Starts the server again on the same port and directory (after kill9)
 * and waits until it answers.  Returns 0 or -errno. */
int rsrv_restart(rsrv *s);

/* SIGSTOP / SIGCONT: the kernel still accepts connections for a stopped
 * server, which then never answers. */
int rsrv_sigstop(rsrv *s);
int rsrv_sigcont(rsrv *s);

/* Whether the server answers PING now (NOAUTH counts as an answer). */
bool rsrv_ping(const rsrv *s, int timeout_ms);

#endif
