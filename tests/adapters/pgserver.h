/*
 * pgserver.h - a throwaway PostgreSQL 15 server for integration tests.
 *
 * pgserver_init makes a temporary directory (mkdtemp under /tmp), owned by
 * an unprivileged user when the test runs as root (PostgreSQL refuses to
 * run as root: "nobody" is used), and runs initdb in it with password
 * authentication (scram-sha-256) for both local and host connections and a
 * superuser PGSERVER_USER whose password is the one given.
 * pgserver_start runs postgres on a free loopback port (listen_addresses =
 * 127.0.0.1, unix socket in the directory, fsync off) in its own process
 * group and waits, polling PQping for at most 30 s, until it accepts
 * connections.  pgserver_stop shuts it down (fast mode, SIGKILL after 10 s);
 * pgserver_kill9 kills the postmaster and all its children at once (a crash:
 * the next start runs crash recovery); pgserver_sigstop/sigcont freeze and
 * thaw them all (PostgreSQL's children each call setsid(), so they are found
 * through /proc rather than by process group).  pgserver_destroy stops it and removes the directory.
 *
 * Not thread-safe: call from the test's main thread.  Functions return 0 or
 * a negative errno value and print what went wrong (with the server log's
 * tail when the server fails to start) to stderr.
 */
#ifndef PGSERVER_H
#define PGSERVER_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#define PGSERVER_BIN  "/usr/lib/postgresql/15/bin"
#define PGSERVER_USER "shp"

typedef struct pgserver {
    char dir[64];       /* the temporary directory; also the socket dir */
    char datadir[96];
    char logfile[96];
    char password[64];
    int port;           /* chosen at the first start, kept across restarts */
    pid_t pid;          /* postmaster (and process group), 0 when stopped */
    uid_t uid;          /* who runs the server */
    gid_t gid;
    bool stopped_sig;   /* SIGSTOPped */
} pgserver;

int pgserver_init(pgserver *s, const char *password);
int pgserver_start(pgserver *s);
int pgserver_stop(pgserver *s);
int pgserver_kill9(pgserver *s);
int pgserver_sigstop(pgserver *s);
int pgserver_sigcont(pgserver *s);
void pgserver_destroy(pgserver *s);

/* A loopback port nothing listens on right now (bind port 0, close). */
int pgserver_free_port(void);

/* "host=127.0.0.1 port=P dbname=postgres user=shp password=<password>"
 * into out; password NULL = the server's. */
void pgserver_conninfo(const pgserver *s, const char *password, char *out, size_t outlen);

#endif
