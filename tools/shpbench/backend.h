/*
 * tools/shpbench/backend.h - what shpbench's pooled connections talk to.
 *
 *   embedded      an echo server on 127.0.0.1 that shpbench runs itself: one
 *                 acceptor thread and one thread per connection, which reads
 *                 what arrives, optionally waits backend_latency_ns, and
 *                 writes it back.  Port chosen by the kernel.
 *   tcp://H:P     an existing server; H must be a loopback address or a name
 *                 that resolves only to loopback addresses (this environment
 *                 reaches nothing else).  Round trips and echo checks assume
 *                 it echoes what it receives.
 *   redis://[user:password@]host[:port][/db]
 *   postgresql://[user[:password]@]host[:port][/db]   (also postgres://)
 *                 a Redis or PostgreSQL server on a loopback address (same
 *                 rule as tcp://), through shardpool's adapters (compiled
 *                 in with -DSHPB_WITH_REDIS / -DSHPB_WITH_PG, which
 *                 tools/shpbench.mk sets when the Makefile builds the
 *                 adapters).  Connect, close, check (and the release reset)
 *                 are the adapter's shp_ops; a round trip is one command
 *                 (Redis PING, PostgreSQL SELECT 1).  The URL's password is
 *                 never printed: shpb_backend_describe and every error
 *                 message leave it out or mask it (shp_mask_secrets).
 *
 * Every connection is a real TCP socket (TCP_NODELAY).  The connection
 * callbacks shpb_backend_connect/close/check have the shp_ops signatures,
 * take the backend as ctx, and are used by every pool shpbench compares, so
 * all pools pay the same connect, check and close costs.
 *
 * Thread-safety: start and stop from one thread; everything else may be
 * called from any thread, concurrently, for different connections.
 * Uses util.h and nothing else of shpbench.
 */
#ifndef SHPBENCH_BACKEND_H
#define SHPBENCH_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum shpb_check_mode {
    SHPB_CHECK_ECHO, /* one byte round trip */
    SHPB_CHECK_PEEK, /* recv(MSG_PEEK | MSG_DONTWAIT): open and no stray data */
} shpb_check_mode;

typedef struct shpb_backend_opts {
    const char *spec;           /* "embedded", tcp://, redis:// or postgresql:// (above) */
    int64_t backend_latency_ns; /* embedded: wait before each echo */
    int64_t connect_latency_ns; /* added before each connect */
    int64_t check_cost_ns;      /* added to each health check */
    double fail_rate;           /* probability a connect fails (ECONNREFUSED) */
    uint64_t seed;              /* of the failure draws */
    shpb_check_mode check_mode;
    int64_t spin_below_ns;      /* see shpb_wait_until */
} shpb_backend_opts;

/* Counters since the last shpb_backend_counters_reset. */
typedef struct shpb_backend_counters {
    uint64_t opened;           /* connects that returned a connection */
    uint64_t closed;
    uint64_t connect_failures; /* injected and real */
    uint64_t checks;
    uint64_t check_failures;
} shpb_backend_counters;

typedef struct shpb_backend shpb_backend;

/* Starts the backend described by o (copied; o->spec too).  For tcp:// it
 * also makes one test connection.  Returns 0 and sets *out, or a negative
 * errno value after writing a one-line reason into err. */
int shpb_backend_start(shpb_backend **out, const shpb_backend_opts *o, char *err, size_t errlen);

/* Stops the embedded server (after all connections were closed by their
 * pools, its threads exit; stop waits for them) and frees b. */
void shpb_backend_stop(shpb_backend *b);

/* "embedded 127.0.0.1:40123", "tcp 127.0.0.1:7000", "redis 127.0.0.1:6379/0" or
 * "postgresql user@127.0.0.1:5432/db": never the password.  Valid until
 * shpb_backend_stop. */
const char *shpb_backend_describe(const shpb_backend *b);

/* The shp_ops callbacks.  ctx is the shpb_backend. */
int shpb_backend_connect(void *ctx, void **handle);
void shpb_backend_close(void *ctx, void *handle);
int shpb_backend_check(void *ctx, void *handle);

/* Writes nbytes (1..SHPB_MAX_ROUNDTRIP) on the connection and reads them
 * back.  Returns 0, or a negative errno value (-ECONNRESET at EOF): the
 * connection is then unusable. */
#define SHPB_MAX_ROUNDTRIP 65536
int shpb_backend_roundtrip(shpb_backend *b, void *handle, size_t nbytes);

/* redis:// and postgresql://: the adapter's reset hook (Redis RESET
 * pipeline; PostgreSQL rollback of a left-open transaction), delegated with
 * the shp_ops signature (ctx is the backend).  Every pool runs it on
 * release, so all pay the same cost; nonzero means close the connection.
 * has_reset is false (and reset returns 0) for embedded and tcp://. */
bool shpb_backend_has_reset(const shpb_backend *b);
int shpb_backend_reset(void *ctx, void *handle);
/* The adapter's prepare hook (collects a cleanup its reset sent), run on
 * hand-out by every pool; 0 when the adapter has none. */
bool shpb_backend_has_prepare(const shpb_backend *b);
int shpb_backend_prepare(void *ctx, void *handle);

/* True for redis:// and postgresql:// (the check mode and round-trip size
 * do not apply: the adapter checks, a round trip is one command). */
bool shpb_backend_is_adapter(const shpb_backend *b);

void shpb_backend_counters_reset(shpb_backend *b);
void shpb_backend_counters_read(shpb_backend *b, shpb_backend_counters *out);

/* Seeds the calling thread's connect-failure draws (a worker calls it with
 * its index, so runs are reproducible); threads that never call it (a pool's
 * reaper) get a stream of their own on first use. */
void shpb_backend_seed_thread(shpb_backend *b, uint64_t stream);

#endif
