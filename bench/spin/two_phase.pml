/*
 * Two-phase commit (Lamport's TLA+ TwoPhase spec) in Promela, written as the
 * SPIN side of a side-by-side benchmark with Interleave.
 *
 * The model is built so that SPIN's "states, stored" equals the number of
 * distinct reachable states TLC reports for TwoPhase:
 *
 *   N   = 3    4     5     6      7        8
 *   TLC = 288  1568  8832  50816  296448   1745408
 *
 * How that exactness is achieved:
 *  - One process, one `do` loop, and every option is a single `d_step`.
 *    A d_step is one indivisible SPIN transition and its interior states are
 *    never stored, so one TLA+ step is exactly one SPIN step, and the process
 *    pc is always the loop head: it contributes no extra states.
 *  - The first statement of each d_step is the TLA+ enabling condition, so an
 *    option is executable exactly when the TLA+ action is enabled.
 *  - The global encoding is a bijection with the TLA+ state: rmState as one
 *    byte per RM, tmState as a byte, and the three message kinds as bit sets
 *    (the set msgs contains [type |-> "Prepared", rm |-> r] iff bit r of
 *    msgPrepared is set; commit/abort messages are single flags).
 *  - The initial state is given by the declarations, so there is no extra
 *    "init" step.
 *
 * N is a preprocessor constant: `spin -DN=8 -a two_phase.pml` selects the
 * size. RM-indexed actions are expanded by the C preprocessor for r < N; the
 * file supports 1 <= N <= 12.
 */

#ifndef N
#define N 3
#endif

#if N < 1 || N > 12
#error "two_phase.pml supports 1 <= N <= 12"
#endif

/* rmState values */
#define WORKING   0
#define PREPARED  1
#define COMMITTED 2
#define ABORTED   3

/* tmState values (TLA+ "init" is TM_INIT) */
#define TM_INIT      0
#define TM_COMMITTED 1
#define TM_ABORTED   2

#define ALL_RMS ((1 << N) - 1)

byte rmState[N];          /* all WORKING initially */
byte tmState;             /* TM_INIT */
unsigned tmPrepared  : N; /* bit r: RM r is in tmPrepared */
unsigned msgPrepared : N; /* bit r: [type |-> "Prepared", rm |-> r] \in msgs */
bit msgCommit;            /* [type |-> "Commit"] \in msgs */
bit msgAbort;             /* [type |-> "Abort"]  \in msgs */

/*
 * The five RM-indexed TLA+ actions for RM r, as options of the main loop.
 * Written as a macro because Promela has no parameterised guarded choice
 * that stays a single step (select() inside atomic would create stored
 * intermediate states).
 */
#define RM_ACTIONS(r)                                                        \
	/* TMRcvPrepared(r) */                                                  \
	:: d_step { tmState == TM_INIT && (msgPrepared & (1 << r)) != 0 ->      \
	            tmPrepared = tmPrepared | (1 << r) }                        \
	/* RMPrepare(r) */                                                      \
	:: d_step { rmState[r] == WORKING ->                                    \
	            rmState[r] = PREPARED;                                      \
	            msgPrepared = msgPrepared | (1 << r) }                      \
	/* RMChooseToAbort(r) */                                                \
	:: d_step { rmState[r] == WORKING -> rmState[r] = ABORTED }             \
	/* RMRcvCommitMsg(r) */                                                 \
	:: d_step { msgCommit -> rmState[r] = COMMITTED }                       \
	/* RMRcvAbortMsg(r) */                                                  \
	:: d_step { msgAbort -> rmState[r] = ABORTED }

active proctype TwoPhase()
{
	/* The loop never terminates (TMAbort or RMRcv*Msg is always enabled),
	 * but label its head as a valid end state anyway so that a future edit
	 * that creates a deadlock is reported as such rather than as a bogus
	 * "invalid end state". */
end:
	do
	/* TMCommit */
	:: d_step { tmState == TM_INIT && tmPrepared == ALL_RMS ->
	            tmState = TM_COMMITTED; msgCommit = 1 }
	/* TMAbort */
	:: d_step { tmState == TM_INIT -> tmState = TM_ABORTED; msgAbort = 1 }
	RM_ACTIONS(0)
#if N > 1
	RM_ACTIONS(1)
#endif
#if N > 2
	RM_ACTIONS(2)
#endif
#if N > 3
	RM_ACTIONS(3)
#endif
#if N > 4
	RM_ACTIONS(4)
#endif
#if N > 5
	RM_ACTIONS(5)
#endif
#if N > 6
	RM_ACTIONS(6)
#endif
#if N > 7
	RM_ACTIONS(7)
#endif
#if N > 8
	RM_ACTIONS(8)
#endif
#if N > 9
	RM_ACTIONS(9)
#endif
#if N > 10
	RM_ACTIONS(10)
#endif
#if N > 11
	RM_ACTIONS(11)
#endif
	od
}
