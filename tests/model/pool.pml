/*
 * pool.pml - a Promela model of shardpool's idle-connection protocol, checked
 * exhaustively by spin (tests/model/model.mk: make model).
 *
 * WHAT IS MODELLED.  One pool, max_size 2, one shard, two connection slots,
 * three application threads (pids 0-2, `t`), optionally the reaper and a
 * shp_pool_evict caller.  Each model step is one shared-memory access of
 * the code (or one wq_lock critical section, see ATOMICITY):
 *
 *   model                                   code
 *   thread, acquire: tlc claim              tlc_claim: CAS CACHED -> IN_USE
 *   thread, slow: sweep load + pop          acquire_slow: sweep_seq, shp__steal
 *   thread, sweep_wait                      acquire_slow's wait for an even sweep_seq
 *   thread, reserve                         shp__reserve (CAS on cap.live)
 *   thread, enqueue                         wait_turn: lock, enqueue, nwaiters++, unlock
 *   thread, end_wait loop                   wait_turn's sleep: a verdict, the 1 ms
 *                                           recheck (shp__fence_heavy + shp__tcache_flush
 *                                           (parked_fresh)), the deadline
 *   thread, timedout                        wait_turn's unlink under wq_lock, -ETIMEDOUT
 *   thread, create                          shp__create(IN_USE) + its wake_waiters
 *   thread, acquired                        shp_release / release_impl: the stale check
 *                                           (release_retire), release_idle's tests
 *   thread, park; re-check; unpark          release_idle's store of CACHED, compiler
 *                                           barrier, nwaiters re-load; release_unpark
 *   thread, push                            release_push (CAS IN_USE -> IDLE)
 *   thread, retire                          release_retire / shp_release_broken
 *   put_idle_to                             put_idle_to + handoff (strict FIFO), the
 *                                           push, shp__stack_fence_after_push, re-check
 *   wake_waiters                            shp__wake_waiters: steal or reserve per waiter
 *   uncache                                 shp__tcache_flush with shp__put_idle's refusal
 *   close_conn                              shp__close: cap.live--, wake_waiters
 *   reaper                                  a pass: shp__tcache_flush(parked_due), reap_shard
 *                                           (take the list, judge, KEEP -> shp__put_idle,
 *                                           closes after the section)
 *   evict                                   shp_pool_evict: evict_gen++, shp__rcu_sync,
 *                                           shp__tcache_flush(NULL), the reaper kick
 *
 * MEMORY MODEL.  x86-64 (TSO), the platform whose fences pool_internal.h and
 * stack.h describe, with membarrier available (the fast configuration: the
 * releaser's side of the asymmetric fence is a compiler barrier).  Every
 * shared write the protocol reads across threads is a locked instruction
 * (CAS, fetch_add, exchange, mutex) except one: the park, a plain store of
 * CACHED.  It goes to the parking thread's store buffer sb[t]; that thread's
 * own loads see it (LDST), other threads see it only once it has drained.
 * It drains when its thread executes a locked instruction (DRAIN), when any
 * thread runs membarrier (MEMBARRIER: the waiter's recheck, both ends of a
 * grace period), or at any time before another thread reads that
 * connection's state: such a read first chooses whether it has drained
 * (SEE; once seen it stays).  Nothing but those reads can tell when a buffer
 * drains, so draining at them is draining at any time.  Nothing between the
 * park and the releaser's nwaiters re-load drains it: that is the weak side.
 * membarrier is one atomic step that drains every buffer: every store issued
 * before it is seen by the caller's later loads.  The other plain stores
 * (c->state IN_USE/IDLE/CLOSING/CLOSED by its owner, w->conn under the lock)
 * are atomic here: no reader tells those states apart (uncache looks for
 * CACHED only) or the lock orders them.
 *
 * RCU.  Only as far as evict's argument uses it: a read-side section
 * (insec[p]) around each generation check and the push or park it guards -
 * the release (stale check .. park or push), shp__tcache_flush, reap_shard's
 * sweep.  shp__rcu_sync is urcu-bp's synchronize_rcu: membarrier, wait until
 * every process that was inside a section has left it (gpw), membarrier.
 * The acquire's sections only protect memory reclamation, which the model
 * does not need: connection slots are type-stable, as the spare list makes
 * them in the code, so a stale pointer (a thread-cache hint) meets a CAS on
 * a state it no longer matches, or a later connection in the same slot,
 * which a CAS may claim exactly as the code's may.
 *
 * ABSTRACTIONS, and why the model keeps every behaviour that matters:
 *  - ck_stack push and pop are atomic (their ABA safety is tested by
 *    tests/stress/aba.c, not here).  One shard: every argument about a push
 *    and a later steal is per shard, and one shard makes every pop race
 *    every push.  release_idle's "shard has other idle connections" and its
 *    first nwaiters load are read in one step: the park decision is a
 *    heuristic, and either outcome is explored.
 *  - The futex handshake (WAITING -> SLEEPING, futex_wait on the word) is a
 *    sleep that ends when the word holds a verdict: the futex compares the
 *    word and sleeps in one step, and waiter_signal changes the word before
 *    it wakes.  The yields before sleeping only delay.
 *  - Time: the 1 ms recheck and the deadline are transitions the scheduler
 *    may take at any moment after the enqueue, in either order (which is
 *    every relation between 1 ms and the other threads' delays).  With
 *    LIVENESS a wait may have no deadline: that is the wait the liveness
 *    property speaks of.  The reaper's idle-timeout takes (parked_due on a
 *    connection unused for a whole interval, CLOSE_IDLE) are 100 ms or more
 *    away, far beyond the 1 ms bound: they are off unless -DREAP_FRESH.
 *  - Left out: handoff_after_ns > 0 (SHP__W_RETRY), validation and health
 *    checks (an owner takes its connection through CHECKING and back: no
 *    change of owner), connect failures, the breaker, max_connecting,
 *    lifetimes and max_uses (closes like the ones modelled), refill
 *    (min_size 0; the pool starts with both connections idle on the shard),
 *    shutdown and destroy, metrics.  any_due is taken as always true.
 *  - acquire_slow retries a sweep once (the code: up to 8); the shard-home
 *    pop that finds nothing is the same read as acquire_slow's first steal,
 *    so the model goes straight to the steal.
 *
 * ATOMICITY.  A step holds at most one access that another process can
 * observe, plus local work; thread-local data (the thread-cache slot, tlc[])
 * is local.  Merged: rcu_lock with the section's first access and
 * rcu_unlock with its last (a grace period cannot tell them apart from
 * sections that start later or end earlier); a wq_lock critical section
 * (its lock-free readers read one location each, so none can see it half
 * done); the nwaiters load before handoff or before taking the lock in
 * wake_waiters with the locked step (if the queue empties meanwhile, the
 * locked step finds it empty, as the code does); uncache's state load with
 * the want() test (if the state changes between them the CAS fails anyway)
 * and its CAS with shp__put_idle's stale check.
 *
 * GHOSTS.  holders[c] (a bit per owning process), onsh[c], parked[c] (in a
 * thread cache, visible or not yet) and alive[c] (counted in cap.live)
 * follow each connection; the monitor checks, in every reachable state:
 *   I1 (double_owner):  at most one of: on the shard, parked, one owner;
 *   lost (lost_conn):   a live connection is on the shard, parked, or owned
 *                       (a borrower, a waiter it was handed to, the reaper,
 *                       a creator, a closer);
 *   stuck:              when nothing can move, every thread has returned or
 *                       sleeps in the queue, and no lock or pass is held.
 * Liveness (LTL no_starvation, with LIVENESS): never, for good, a waiter
 * without a deadline asleep while a connection is idle (on the shard or
 * parked, visible or not) or capacity is free.  Spin extends a run that
 * stops with its last state forever, so this also judges the final states.
 *
 * CONFIGURATIONS (make model runs each with the verdict it must get):
 *   default       3 threads (rounds 2, 2, 1), LIVENESS (a thread may keep
 *                 its last connection for good, a wait may have no
 *                 deadline), BROKEN_RELEASE (a last release may be
 *                 shp_release_broken: capacity goes to a waiter); pan -a:
 *                 assertions and no_starvation.  No reaper, no evict.
 *   MODEL_EVICT   2 threads (one round each), the reaper (one pass) and
 *                 evict; safety only (assertions, invalid end states).
 *                 Why two models: 3 threads with both the reaper and evict
 *                 do not finish in minutes, and neither needs the other's
 *                 third thread: the waiter race needs three threads and no
 *                 evict; evict's race needs one reaper pass and a push.
 *   BUG1_UNFIXED  reap_shard ignores a refused shp__put_idle (issue 9 bug 1):
 *                 must give lost_conn.
 *   NO_PARK_RECHECK  release_idle without its nwaiters re-load and
 *                 release_unpark: must give a no_starvation violation.
 *   NO_MEMBARRIER the waiter's recheck without shp__fence_heavy: must give
 *                 a no_starvation violation (only the store buffer makes
 *                 it one: with -DPARK_SC, a park seen at once, it holds).
 *   UNPARK_PLAIN  release_unpark takes its connection back with a load and
 *                 a store instead of the CAS: must give double_owner.
 * make model-big (not in make check) checks larger ones: ROUNDS2=2; MODEL_EVICT
 * with LIVENESS; MODEL_EVICT with REAP_FRESH, REAP_KICKED, BROKEN_RELEASE.
 */

/* ------------------------------------------------------------ configurations */
#ifdef MODEL_EVICT               /* reaper + evict, safety */
#define WITH_REAPER
#define WITH_EVICT
#ifndef ROUNDS0
#define ROUNDS0 1
#endif
#ifndef ROUNDS1
#define ROUNDS1 1
#endif
#ifndef ROUNDS2
#define ROUNDS2 0
#endif
#else                            /* waiters: safety and liveness */
#define LIVENESS
#define BROKEN_RELEASE
#ifndef ROUNDS0
#define ROUNDS0 2
#endif
#ifndef ROUNDS1
#define ROUNDS1 2
#endif
#ifndef ROUNDS2
#define ROUNDS2 1
#endif
#endif
#ifndef RPASSES
#define RPASSES 1                /* reaper passes on its timer */
#endif
#define NT     3         /* application threads: ids 0..2 */
#define NC     2         /* connection slots = max_size */
#define MAXSZ  2
#define REAPER 3
#define EVICT  4
#define NP     5
#define NONE   7

/* c->state as memory holds it */
#define S_FREE     0     /* closed (its slot free for a new connection) */
#define S_IDLE     1
#define S_INUSE    2
#define S_CACHED   3

/* a waiter's word; W_NONE: not queued */
#define W_NONE  0
#define W_WAIT  1        /* SHP__W_WAITING or SHP__W_SLEEPING */
#define W_CONN  2
#define W_GRANT 3

/* ------------------------------------------------------------ shared state */
byte st[NC] = S_IDLE;    /* c->state in memory */
byte stk[NC];            /* the shard's stack, stk[0] the bottom; set by init */
byte sp = NC;
byte live = NC;          /* SHP__CAP_LIVE(p->cap); the pool starts prefilled */
byte nwaiters;
byte wq[NT] = NONE;      /* waiting thread ids, wq[0] the oldest */
byte wqn;
byte wq_lock = NONE;     /* which process holds p->wq_lock */
byte word[NT];           /* struct shp__waiter.word */
byte wconn[NT];          /* struct shp__waiter.conn */
byte sb[NP];             /* store buffer: 1 + the connection whose parking store
                            (CACHED) other threads have not seen yet; 0: empty */
#ifdef WITH_EVICT
bit  gen[NC];            /* c->gen, mod 2 (one evict) */
bit  egen;               /* p->evict_gen */
bit  insec[NP];          /* inside a read-side section */
bit  gpw[NP];            /* the grace period in progress waits for this reader */
bit  kick;               /* p->rp_kick */
#endif
#ifdef WITH_REAPER
byte sweep;              /* p->sweep_seq */
#endif

/* ghost state */
bit  alive[NC] = 1;      /* made and not yet closed: counted in cap.live */
bit  onsh[NC] = 1;       /* on the shard stack */
bit  parked[NC];         /* parked in a thread cache (CACHED, maybe not yet seen) */
byte holders[NC];        /* bit per process that owns it */
bit  waitinf[NT];        /* the current wait of this thread has no deadline */
bit  fin[NT];            /* the thread has returned */
bit  rbusy;              /* the reaper is in a pass */
bit  edone;              /* evict has returned */
bit  lost_conn;          /* the monitor's verdicts */
bit  double_owner;
bit  stuck;

/* ------------------------------------------------------------ helpers */
#define BIT(p)        (1 << (p))
#define GAIN(c, p)    holders[c] = holders[c] | BIT(p)
#define DROP(c, p)    holders[c] = holders[c] & (~BIT(p))
#define PLACES(c)     (onsh[c] + parked[c] + (holders[c] != 0))
#define MULTI(c)      (((holders[c] & (holders[c] - 1)) != 0) || PLACES(c) > 1)
#define OWNERS_OK     (!MULTI(0) && !MULTI(1))
#define LISTED_OK     ((!alive[0] || PLACES(0) > 0) && (!alive[1] || PLACES(1) > 0))

#ifdef WITH_EVICT
#define STALE(c)      (gen[c] != egen)
#define RLOCK(p)      insec[p] = 1
#define RUNLOCK(p)    insec[p] = 0; gpw[p] = 0
#else
#define STALE(c)      false
#define RLOCK(p)      skip
#define RUNLOCK(p)    skip
#endif

/* Process p reads c->state: its own buffered store, else memory - where
 * another thread's buffered store of c may or may not have arrived (SEE
 * chooses; once seen, for good). */
#define LDST(p, c)    ((sb[p] == (c) + 1) -> S_CACHED : st[c])
#define SEE(p, c) \
    if \
    :: p != 0 && sb[0] == (c) + 1 -> st[c] = S_CACHED; sb[0] = 0 \
    :: p != 1 && sb[1] == (c) + 1 -> st[c] = S_CACHED; sb[1] = 0 \
    :: p != 2 && sb[2] == (c) + 1 -> st[c] = S_CACHED; sb[2] = 0 \
    :: true \
    fi

/* A locked instruction of p (CAS, fetch_add, exchange, mutex) first drains
 * p's store buffer. */
#define DRAIN(p) \
    if \
    :: sb[p] != 0 -> st[sb[p] - 1] = S_CACHED; sb[p] = 0 \
    :: else \
    fi

/* membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): every store issued before
 * it is seen by the caller's later loads. */
#define MEMBARRIER \
    if :: sb[0] != 0 -> st[sb[0] - 1] = S_CACHED; sb[0] = 0 :: else fi; \
    if :: sb[1] != 0 -> st[sb[1] - 1] = S_CACHED; sb[1] = 0 :: else fi; \
    if :: sb[2] != 0 -> st[sb[2] - 1] = S_CACHED; sb[2] = 0 :: else fi

/* ck_stack pop (ABA-safe double-width CAS: atomic here) and push by p */
#define POP(c, p)     sp--; c = stk[sp]; stk[sp] = 0; onsh[c] = 0; GAIN(c, p)
#define PUSH(c, p)    stk[sp] = c; sp++; onsh[c] = 1; DROP(c, p)

/* The oldest waiter leaves the queue (wq_lock held). */
#define DEQUEUE_HEAD  wq[0] = wq[1]; wq[1] = wq[2]; wq[2] = NONE; wqn--; nwaiters--

/* ------------------------------------------------------------ the pool */

/* shp__wake_waiters(p): to each waiter, oldest first, a connection stolen
 * from the shard, else a reserved slot.  stop: 0 on entry and exit; 4 while
 * p holds wq_lock, 2 after a steal found nothing. */
inline wake_waiters(p, c, stop)
{
    do
    :: atomic { stop == 0 && nwaiters == 0 -> break }
    :: atomic {
        ((stop == 0 && nwaiters != 0 && wq_lock == NONE) || stop == 4) ->
            wq_lock = p; DRAIN(p);
            if
            :: wqn == 0 -> stop = 0; wq_lock = NONE; break
            :: wqn > 0 && sp > 0 ->
                POP(c, p); st[c] = S_INUSE; DROP(c, p); GAIN(c, wq[0]);
                wconn[wq[0]] = c; word[wq[0]] = W_CONN; DEQUEUE_HEAD; c = 0; stop = 4
            :: wqn > 0 && sp == 0 -> stop = 2
            fi
       }
    :: atomic {
        stop == 2 ->
            if
            :: live < MAXSZ -> live++; word[wq[0]] = W_GRANT; DEQUEUE_HEAD; stop = 4
            :: else -> stop = 0; wq_lock = NONE; break
            fi
       }
    od
}

/* put_idle_to(p, c, sh): owned c (IDLE) handed to the oldest waiter
 * (handoff, strict FIFO), else pushed, then the waiter check after the
 * push. */
inline put_idle_to(p, c, c2, stop)
{
    atomic {
        if
        :: nwaiters == 0
        :: nwaiters != 0 && wq_lock == NONE ->
            DRAIN(p);
            if
            :: wqn > 0 ->
                st[c] = S_INUSE; DROP(c, p); GAIN(c, wq[0]); wconn[wq[0]] = c;
                word[wq[0]] = W_CONN; DEQUEUE_HEAD; stop = 3
            :: else
            fi
        fi
    };
    if
    :: atomic { stop == 3 -> stop = 0 }
    :: atomic { stop == 0 -> DRAIN(p); PUSH(c, p) };
       wake_waiters(p, c2, stop)
    fi
}

/* shp__close(p, c, why): owned c closed, its capacity to a waiter. */
inline close_conn(p, c, c2, stop)
{
    atomic { st[c] = S_FREE; alive[c] = 0; DROP(c, p); live-- };
    wake_waiters(p, c2, stop)
}

/* shp__tcache_flush(p, want, arg): each CACHED connection that want() takes goes
 * back by CAS through shp__put_idle; the refused (stale) ones are closed
 * after the read-side section.  want: 0 parked_fresh (acquirers, waiters),
 * 1 parked_due (the reaper), 2 NULL (evict).  c: 0 on entry and exit. */
inline uncache(p, want, c, ok, stale, c2, stop)
{
    do
    :: c == NC -> c = 0; break
    :: else ->
        atomic {
            RLOCK(p);
            SEE(p, c);
            if
            :: LDST(p, c) == S_CACHED ->
                if
                :: want == 0 -> ok = !STALE(c)
                :: want == 1 && STALE(c) -> ok = 1
#ifdef REAP_FRESH
                :: want == 1 && !STALE(c) -> ok = 1   /* not released since the last pass */
#endif
                :: want == 1 && !STALE(c) -> ok = 0
                :: want == 2 -> ok = 1
                fi
            :: else
            fi
        };
        if
        :: ok ->
            atomic {
                DRAIN(p);
                SEE(p, c);
                if
                :: st[c] == S_CACHED -> st[c] = S_IDLE; parked[c] = 0; GAIN(c, p);
                    /* shp__put_idle's stale check */
                    if
                    :: STALE(c) -> stale = stale | BIT(c); ok = 0
                    :: else
                    fi
                :: else -> ok = 0
                fi
            };
            if
            :: ok -> put_idle_to(p, c, c2, stop); ok = 0
            :: else
            fi
        :: else
        fi;
        c++
    od;
    atomic {
        RUNLOCK(p);
        if
        :: stale == 0 -> c = NC
        :: else
        fi
    };
    do
    :: c == NC -> c = 0; break
    :: else ->
        if
        :: stale & BIT(c) -> close_conn(p, c, c2, stop)
        :: else
        fi;
        c++
    od;
    stale = 0
}

/* ------------------------------------------------------------ application threads */

proctype thread(byte t; byte rounds)
{
    byte i, c, slot, c2, stop, ok, stale, sw;
    bit uncached, sretry, rechecked, dl;

acquire:
    /* ---- shp_acquire: tlc_claim (CAS CACHED -> IN_USE), else a pop from
     * the home shard (the first steal below: a pop that finds the shard
     * empty changes nothing, so the model goes straight to acquire_slow) */
    if
    :: atomic {
        i < rounds && slot != 0 ->
            i++; c = slot - 1; slot = 0; DRAIN(t); SEE(t, c);
            if
            :: st[c] == S_CACHED -> st[c] = S_INUSE; parked[c] = 0; GAIN(c, t); goto acquired
            :: else -> c = 0
            fi
       }
    :: atomic { i < rounds && slot == 0 -> i++ }
    :: i == rounds -> goto end_thread
    fi;

    /* ---- acquire_slow: steal, wait out a sweep, uncache once, reserve, wait */
slow:
    atomic {
#ifdef WITH_REAPER
        sw = sweep;
#endif
        if
        :: sp > 0 -> DRAIN(t); POP(c, t); st[c] = S_INUSE; uncached = 0; sretry = 0; sw = 0; goto acquired
        :: else
        fi
    };
#ifdef WITH_REAPER
    atomic {
        if
        :: !sretry && ((sw & 1) || sweep != sw) -> sretry = 1; sw = 0; goto sweep_wait
        :: else -> sw = 0
        fi
    };
#endif
    if
    :: !uncached ->
        uncached = 1;
        uncache(t, 0, c, ok, stale, c2, stop);
        goto slow
    :: else
    fi;
    atomic {
        uncached = 0; sretry = 0;
        if
        :: live < MAXSZ -> live++; goto create
        :: else
        fi
    };

    /* ---- wait_turn: queued and counted under the lock, then claims what
     * was freed meanwhile, then sleeps until a verdict, the recheck or the
     * deadline */
    atomic {
        wq_lock == NONE -> DRAIN(t);
        wq[wqn] = t; wqn++; nwaiters++; word[t] = W_WAIT
#ifdef LIVENESS
        ;
        if
        :: waitinf[t] = 1
        :: waitinf[t] = 0
        fi
#endif
    };
    wake_waiters(t, c2, stop);
end_wait:
    do
    :: atomic { word[t] == W_CONN -> c = wconn[t]; wconn[t] = 0; word[t] = W_NONE; waitinf[t] = 0; rechecked = 0; goto acquired }
    :: atomic { word[t] == W_GRANT -> word[t] = W_NONE; waitinf[t] = 0; rechecked = 0; goto create }
    :: atomic {
        word[t] == W_WAIT && !rechecked ->
            /* SHP__PARK_RECHECK_NS after the enqueue, or the deadline if sooner */
            rechecked = 1;
            if
            :: !waitinf[t] -> dl = 1   /* it is the deadline */
            :: true                    /* it is the recheck */
            fi
#ifndef NO_MEMBARRIER
            ; MEMBARRIER
#endif
       };
       uncache(t, 0, c, ok, stale, c2, stop);
       if
       :: dl -> dl = 0; goto timedout
       :: else
       fi
    :: atomic { word[t] == W_WAIT && rechecked && !waitinf[t] -> goto timedout }
    od;
timedout:
    atomic {
        wq_lock == NONE -> DRAIN(t);
        if
        :: word[t] == W_WAIT ->    /* still queued: unlinked, -ETIMEDOUT */
            if
            :: wq[0] == t -> wq[0] = wq[1]; wq[1] = wq[2]
            :: wq[1] == t -> wq[1] = wq[2]
            :: wq[2] == t
            fi;
            wq[2] = NONE; wqn--; nwaiters--; word[t] = W_NONE; waitinf[t] = 0; rechecked = 0;
            goto acquire
        :: else -> goto end_wait   /* served meanwhile */
        fi
    };

sweep_wait:
#ifdef WITH_REAPER
    if
    :: (sweep & 1) == 0        /* the sweep ended */
    :: true                    /* or the bounded wait gave up */
    fi;
#endif
    goto slow;

create:
    /* shp__create(p, &c, SHP__IN_USE) on the reserved slot */
    atomic {
        if
        :: !alive[0] -> c = 0
        :: else -> c = 1
        fi;
#ifdef WITH_EVICT
        gen[c] = egen;
#endif
        st[c] = S_INUSE; alive[c] = 1; GAIN(c, t)
    };
    wake_waiters(t, c2, stop);

acquired:
    /* ---- borrowed; the last one may be kept for good (a long borrow).
     * shp_release: stale -> release_retire; release_idle parks only in a
     * free slot, when the shard holds other idle connections and nobody
     * waits: one load of each */
    atomic {
#ifdef LIVENESS
        if
        :: i == rounds -> if :: goto end_thread :: true fi
        :: else
        fi;
#endif
#ifdef BROKEN_RELEASE
        /* shp_release_broken: closed, its capacity to a waiter */
        if
        :: i == rounds -> if :: DRAIN(t); goto retire :: true fi
        :: else
        fi;
#endif
        RLOCK(t);
        if
        :: STALE(c) ->             /* CAS IN_USE -> CLOSING, closed outside the section */
            DRAIN(t); RUNLOCK(t); goto retire
        :: else
        fi;
        if
        :: slot != 0 -> DRAIN(t); st[c] = S_IDLE; goto push   /* release_push's CAS */
        :: else
        fi
    };
    atomic {
        if
        :: sp == 0 || nwaiters != 0 -> DRAIN(t); st[c] = S_IDLE; goto push
        :: else
        fi
    };
    /* park: a plain store of CACHED (buffered), then a compiler barrier */
#ifndef PARK_SC
    atomic { sb[t] = c + 1; parked[c] = 1; DROP(c, t); slot = c + 1 };
#else
    atomic { st[c] = S_CACHED; parked[c] = 1; DROP(c, t); slot = c + 1 };  /* seen at once */
#endif
#ifndef NO_PARK_RECHECK
    atomic {
        if
        :: nwaiters == 0 -> RUNLOCK(t); c = 0; goto acquire
        :: else
        fi
    };
#ifndef UNPARK_PLAIN
    /* release_unpark: takes it back by CAS unless it was claimed */
    atomic {
        slot = 0; DRAIN(t); SEE(t, c);
        if
        :: st[c] == S_CACHED -> st[c] = S_IDLE; parked[c] = 0; GAIN(c, t)
        :: else -> RUNLOCK(t); c = 0; goto acquire
        fi
    };
#else
    /* broken on purpose: a load, then a plain store, instead of the CAS */
    atomic {
        slot = 0; SEE(t, c);
        if
        :: LDST(t, c) == S_CACHED
        :: else -> RUNLOCK(t); c = 0; goto acquire
        fi
    };
    atomic { DRAIN(t); st[c] = S_IDLE; parked[c] = 0; GAIN(c, t) };
#endif
    put_idle_to(t, c, c2, stop);
#endif
    atomic { RUNLOCK(t); c = 0; goto acquire };
push:
    /* release_push (its CAS IN_USE -> IDLE made above) */
    put_idle_to(t, c, c2, stop);
    atomic { RUNLOCK(t); c = 0; goto acquire };
retire:
    close_conn(t, c, c2, stop);
    atomic { c = 0; goto acquire };
end_thread:
    fin[t] = 1
}

/* ------------------------------------------------------------ the reaper */
#ifdef WITH_REAPER
proctype reaper()
{
    byte passes = RPASSES;
    byte c, c2, ok, stale, stop, k, n, work;
    byte tk[NC];

end_reaper:
    if
    :: passes > 0 -> passes--; rbusy = 1
#ifdef WITH_EVICT
#ifdef REAP_KICKED
    :: kick -> kick = 0; rbusy = 1
#endif
#endif
    fi;
    /* shp__tcache_flush(p, parked_due, &ps) */
    uncache(REAPER, 1, c, ok, stale, c2, stop);

    /* reap_shard: the shard's idle list taken inside a read-side section */
    atomic { sweep++; RLOCK(REAPER) };
    do
    :: atomic { sp > 0 -> POP(c, REAPER); tk[n] = c; n++; c = 0 }
    :: atomic { sp == 0 -> k = n; n = 0; break }
    od;
    /* judged bottom first; KEEP goes back on the shard */
    do
    :: atomic { k == 0 -> c = 0; break }
    :: atomic {
        k > 0 ->
            k--; c = tk[k]; tk[k] = 0;
            if
            :: STALE(c) -> work = work | BIT(c); c = 0   /* CLOSE_LIFETIME (evicted) */
#ifdef REAP_FRESH
            :: !STALE(c) -> work = work | BIT(c); c = 0  /* CLOSE_IDLE */
#endif
            :: !STALE(c) -> ok = 1                       /* KEEP */
            fi
       };
       if
       :: ok ->
            /* shp__put_idle: refuses c if evict made it stale since */
            atomic {
                if
                :: STALE(c) ->
#ifdef BUG1_UNFIXED
                    DROP(c, REAPER);                     /* the refusal ignored */
#else
                    work = work | BIT(c);                /* closed with the rest */
#endif
                    ok = 0; c = 0
                :: else
                fi
            };
            if
            :: ok -> put_idle_to(REAPER, c, c2, stop); ok = 0; c = 0
            :: else
            fi
       :: else
       fi
    od;
swept:
    atomic { RUNLOCK(REAPER); sweep++ };
    /* the closes, outside the section */
    do
    :: c == NC -> c = 0; break
    :: else ->
        if
        :: work & BIT(c) -> close_conn(REAPER, c, c2, stop)
        :: else
        fi;
        c++
    od;
    atomic { work = 0; rbusy = 0 };
    goto end_reaper
}
#endif

/* ------------------------------------------------------------ shp_pool_evict */
#ifdef WITH_EVICT
proctype evict()
{
    byte c, c2, ok, stale, stop;

    egen = 1;                  /* under reg_lock */
    /* shp__rcu_sync (urcu-bp): membarrier, wait for every reader inside a
     * section now, membarrier */
    atomic { MEMBARRIER; gpw[0] = insec[0]; gpw[1] = insec[1]; gpw[2] = insec[2]; gpw[3] = insec[3] };
    atomic { gpw[0] + gpw[1] + gpw[2] + gpw[3] == 0 -> MEMBARRIER };
    uncache(EVICT, 2, c, ok, stale, c2, stop);
    atomic { kick = 1; edone = 1 }   /* shp__reaper_kick_wait */
}
#endif

/* ------------------------------------------------------------ the monitor */

/* When nothing can move, every thread has returned or sleeps in its
 * queue, and nobody holds a lock or is inside a pass. */
#ifdef WITH_EVICT
#define EVICT_DONE edone
#else
#define EVICT_DONE true
#endif
#define VALID_END ((fin[0] || word[0] == W_WAIT) && (fin[1] || word[1] == W_WAIT) && \
                   (fin[2] || word[2] == W_WAIT) && wq_lock == NONE && !rbusy && EVICT_DONE)

/* I1 and "never on no list while counted live", in every reachable state;
 * no deadlock. */
active proctype monitor()
{
end_monitor:
    if
    :: atomic {
        !(OWNERS_OK && LISTED_OK) ->
            double_owner = !OWNERS_OK;
            lost_conn = !LISTED_OK;
            assert(!double_owner);
            assert(!lost_conn)
       }
    :: atomic { timeout -> stuck = !VALID_END; assert(!stuck) }
    fi
}

init
{
    atomic {
        stk[1] = 1;
        run thread(0, ROUNDS0); run thread(1, ROUNDS1); run thread(2, ROUNDS2);
#ifdef WITH_REAPER
        run reaper();
#endif
#ifdef WITH_EVICT
        run evict();
#endif
    }
}

/* No waiter without a deadline sleeps for good while a connection is idle
 * (on the shard, or parked) or capacity is free. */
#define IDLE_AVAIL (sp > 0 || st[0] == S_CACHED || st[1] == S_CACHED || sb[0] != 0 || sb[1] != 0 || sb[2] != 0 || live < MAXSZ)
#define ASLEEP     ((word[0] == W_WAIT && waitinf[0]) || (word[1] == W_WAIT && waitinf[1]) || (word[2] == W_WAIT && waitinf[2]))
ltl no_starvation { [] <> !(ASLEEP && IDLE_AVAIL) }
