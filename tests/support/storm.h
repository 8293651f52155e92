/*
 * storm.h - a 10 kHz SIGALRM storm at one thread, for tests of what signals
 * do to blocking calls (tests only; header-only, include after <cmocka.h>
 * and "testutil.h").
 */
#ifndef SHP_TEST_STORM_H
#define SHP_TEST_STORM_H

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A 10 kHz SIGALRM storm at the calling thread, from a timer of its own
 * (SIGEV_THREAD_ID), with a handler installed without SA_RESTART: every
 * blocking system call a signal lands in fails with EINTR.  It ends by
 * itself STORM_MAX_NS after it started, so that a call the storm keeps
 * from returning shows up as late instead of hanging the test.  One storm
 * at a time; storm_stop is safe when none runs (the teardown calls it). */
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif
#define STORM_PERIOD_NS (100 * 1000LL)
#define STORM_MAX_NS    (5 * 1000000000LL)
#define STORM_MARGIN_NS (100 * 1000000LL) /* allowed past a deadline under the storm */

static timer_t storm_timer;
static bool storm_on;
static int64_t storm_until;
static atomic_long storm_signals;

static void storm_handler(int sig)
{
    (void)sig;
    int saved = errno; /* the interrupted code reads errno next */
    atomic_fetch_add_explicit(&storm_signals, 1, memory_order_relaxed);
    if (now_ns() >= storm_until) {
        struct itimerspec off = { { 0, 0 }, { 0, 0 } };
        timer_settime(storm_timer, 0, &off, NULL); /* async-signal-safe */
    }
    errno = saved;
}

__attribute__((unused)) static void storm_start(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = storm_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART */
    assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGALRM;
    sev.sigev_notify_thread_id = gettid();
    assert_int_equal(timer_create(CLOCK_MONOTONIC, &sev, &storm_timer), 0);
    storm_until = now_ns() + STORM_MAX_NS;
    storm_on = true;
    struct itimerspec on = { { 0, STORM_PERIOD_NS }, { 0, STORM_PERIOD_NS } };
    assert_int_equal(timer_settime(storm_timer, 0, &on, NULL), 0);
}

__attribute__((unused)) static void storm_stop(void)
{
    if (!storm_on)
        return;
    storm_on = false;
    timer_delete(storm_timer);
}

/* Signals handled so far (all storms). */
__attribute__((unused)) static long storm_count(void)
{
    return atomic_load_explicit(&storm_signals, memory_order_relaxed);
}

#endif
