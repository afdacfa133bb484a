//! The decision's tables and its invariants as properties.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::model::{Backoff, Breaker, Hysteresis};

fn policy(failures: u32, passes: u32, grace_s: u64, threshold: u32) -> HealPolicy {
    HealPolicy {
        hysteresis: Hysteresis::new(failures, passes).unwrap(),
        backoff: Backoff::new(Duration::from_secs(10), Duration::from_secs(60), 2.0, 0.0).unwrap(),
        breaker: Breaker::new(
            threshold,
            Duration::from_secs(600),
            Duration::from_secs(300),
        )
        .unwrap(),
        grace: Duration::from_secs(grace_s),
        start_grace: Duration::from_secs(2),
        ..HealPolicy::default()
    }
}

fn ctx(policy: &HealPolicy) -> Context<'_> {
    Context {
        label: "svc",
        policy,
        target: TargetKind::Process { can_repair: false },
        throttle: None,
        notify: false,
        monitor_only: false,
    }
}

fn probed(failure: Option<ProbeFailure>, manager_silent: bool) -> Probed {
    Probed {
        summary: ProbeSummary {
            at_ms: 0,
            passed: failure.is_none(),
            failure,
            endpoint_class: failure.is_none().then_some(EndpointClass::Localhost),
            detail: String::new(),
            duration_ms: 0,
        },
        run_state: None,
        pid: None,
        process: None,
        manager_silent,
        drift: None,
    }
}

fn round(
    s: ServiceState,
    p: Probed,
    now: u64,
    policy: &HealPolicy,
) -> (ServiceState, Vec<EventKind>, bool) {
    let obs = Observation {
        probed: p,
        blocked_by: None,
    };
    let (s, outs) = decide(s, &obs, now, &ctx(policy), &mut fastrand::Rng::with_seed(1));
    let kinds = outs
        .iter()
        .filter_map(|o| match o {
            Out::Say(say) => Some(say.kind),
            _ => None,
        })
        .collect();
    let heal = outs.iter().any(|o| matches!(o, Out::Heal(_)));
    (s, kinds, heal)
}

use EventKind::*;
use ProbeFailure::*;

/// One round from a fresh state with 1-failure hysteresis: (probe failure, manager silent) ->
/// (events, heal?).
#[test]
fn one_round_from_healthy() {
    let p = policy(1, 1, 0, 3);
    let table: Vec<(Option<ProbeFailure>, bool, Vec<EventKind>, bool)> = vec![
        (None, false, vec![], false),
        (
            Some(NotRunning),
            false,
            vec![ProbeFailed, HealStarted],
            true,
        ),
        (
            Some(Unreachable),
            false,
            vec![ProbeFailed, HealStarted],
            true,
        ),
        // Unknown: nothing at all.
        (Some(ManagerUnavailable), true, vec![], false),
        // A hang seen by HTTP while the manager is silent: reported, held, not healed.
        (
            Some(Timeout),
            true,
            vec![ProbeFailed, HealSuppressed],
            false,
        ),
        (
            Some(Starting),
            false,
            vec![ProbeFailed, HealSuppressed],
            false,
        ),
        (
            Some(SupervisorRestarting),
            false,
            vec![ProbeFailed, HealSuppressed],
            false,
        ),
        (
            Some(BinaryNotFound),
            false,
            vec![ProbeFailed, HealSuppressed],
            false,
        ),
    ];
    for (failure, silent, events, heal) in table {
        let (_, got, healed) = round(ServiceState::default(), probed(failure, silent), 1_000, &p);
        assert_eq!((got, healed), (events, heal), "{failure:?} silent={silent}");
    }
}

/// Hysteresis counts health probes; a pushed exit the probe confirms skips it; a failing
/// health probe within the start grace does not count.
#[test]
fn hysteresis_exit_facts_and_start_grace() {
    let p = policy(3, 1, 0, 3);
    let (s, got, heal) = round(
        ServiceState::default(),
        probed(Some(Unreachable), false),
        0,
        &p,
    );
    assert_eq!((got, heal), (vec![ProbeFailed], false));
    assert_eq!(s.hyst.failures, 1);

    let pushed = ServiceState {
        exit_pushed: true,
        ..ServiceState::default()
    };
    let (s, got, heal) = round(pushed.clone(), probed(Some(NotRunning), false), 0, &p);
    assert_eq!((got, heal), (vec![ProbeFailed, HealStarted], true));
    assert!(!s.exit_pushed, "the fact was used");
    // A service with only an HTTP probe: the refused connection after the pushed exit.
    let (_, got, heal) = round(pushed.clone(), probed(Some(Unreachable), false), 0, &p);
    assert_eq!((got, heal), (vec![ProbeFailed, HealStarted], true));
    // The exit was pushed but it answers (someone restarted it already): nothing.
    let (s, got, heal) = round(pushed, probed(None, false), 0, &p);
    assert_eq!((got, heal, s.hyst.failures), (vec![], false, 0));

    // systemd's own `Restart=` ran first: the round finds a new process that does not answer
    // yet. Not a fact, and its failing health probe is graced; the same round with the old
    // pid (a stale push) or no new process is still judged.
    let mut respawned = probed(Some(Unreachable), false);
    respawned.run_state = Some(RunState::Running);
    respawned.pid = Some(43);
    let before = ServiceState {
        exit_pushed: true,
        pid: Some(42),
        ..ServiceState::default()
    };
    let (s, got, heal) = round(before.clone(), respawned.clone(), 0, &p);
    assert_eq!((got, heal, s.hyst.failures), (vec![], false, 0));
    assert_eq!(
        s.start_grace_until, 2_000,
        "the new process gets its start grace"
    );
    let (s, got, heal) = round(s, respawned.clone(), 2_000, &p);
    assert_eq!(
        (got, heal, s.hyst.failures),
        (vec![ProbeFailed], false, 1),
        "after its grace, counted as any health probe"
    );
    let mut stale = respawned;
    stale.pid = Some(42);
    let (_, got, heal) = round(before, stale, 0, &p);
    assert_eq!((got, heal), (vec![ProbeFailed, HealStarted], true));

    let starting = ServiceState {
        start_grace_until: 2_000,
        ..ServiceState::default()
    };
    let (s, got, _) = round(
        starting.clone(),
        probed(Some(Unreachable), false),
        1_999,
        &p,
    );
    assert_eq!((got, s.hyst.failures), (vec![], 0));
    let (_, got, _) = round(starting.clone(), probed(Some(NotRunning), false), 1_999, &p);
    assert_eq!(
        got,
        vec![ProbeFailed],
        "the process probe is a fact, not graced"
    );
    let (s, got, _) = round(starting, probed(Some(Unreachable), false), 2_000, &p);
    assert_eq!((got, s.hyst.failures), (vec![ProbeFailed], 1));
}

/// An attempt in flight: within its grace nothing more; after, a verdict; found starting
/// (an agent restarted mid-attempt), watched without a verdict; passing, it succeeded.
#[test]
fn an_attempt_in_flight() {
    let p = policy(1, 1, 5, 3);
    let (s, _, heal) = round(
        ServiceState::default(),
        probed(Some(NotRunning), false),
        0,
        &p,
    );
    assert!(heal);
    let started = s.record.in_flight.clone().unwrap();
    assert_eq!(started.started_ms, 0);
    assert_eq!(s.record.next_allowed_ms, 10_000, "cool-down from the start");

    let (_, got, heal) = round(s.clone(), probed(Some(NotRunning), false), 4_999, &p);
    assert_eq!((got, heal), (vec![ProbeFailed], false), "within grace");

    let (w, got, heal) = round(s.clone(), probed(Some(Starting), false), 6_000, &p);
    assert_eq!((got, heal), (vec![ProbeFailed, HealSuppressed], false));
    assert_eq!(
        w.record.in_flight,
        Some(started.clone()),
        "watched, not judged"
    );
    let (_, got, _) = round(w, probed(None, false), 7_000, &p);
    assert_eq!(got, vec![ProbeRecovered, HealSucceeded]);

    let (f, got, heal) = round(s, probed(Some(NotRunning), false), 6_000, &p);
    assert_eq!(
        (got, heal),
        (vec![ProbeFailed, HealFailed], false),
        "backoff"
    );
    assert_eq!(f.breaker.failures(), 1);
}

#[derive(Debug, Clone)]
enum Step_ {
    Probe {
        failure: Option<ProbeFailure>,
        silent: bool,
        pushed: bool,
    },
    Settle(bool),
    Wait(u64),
    /// A person's verb: stopped (`false`) or running again (`true`).
    Request(bool),
}

fn failure() -> impl Strategy<Value = Option<ProbeFailure>> {
    prop_oneof![
        Just(None),
        Just(Some(NotRunning)),
        Just(Some(Unreachable)),
        Just(Some(Timeout)),
        Just(Some(Starting)),
        Just(Some(SupervisorRestarting)),
        Just(Some(NotInstalled)),
        Just(Some(ManagerUnavailable)),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step_>> {
    prop::collection::vec(
        prop_oneof![
            4 => (failure(), any::<bool>(), any::<bool>()).prop_map(|(failure, silent, pushed)| {
                // Only a silent manager yields an unknown round.
                let silent = silent || failure == Some(ManagerUnavailable);
                Step_::Probe { failure, silent, pushed }
            }),
            1 => any::<bool>().prop_map(Step_::Settle),
            2 => (0u64..20_000).prop_map(Step_::Wait),
            1 => any::<bool>().prop_map(Step_::Request),
        ],
        1..80,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Over any run of rounds, calls and time: never a second heal while one is in flight
    /// (neither while its call runs nor before the attempt has a verdict); never a heal, a
    /// verdict or a breaker count in a round whose manager did not answer; an unknown round
    /// changes no counter; a cool-down starts when an attempt starts and is respected; an
    /// attempt found starting is watched, not failed; a service stopped by request is never
    /// healed and says nothing until it is started again; a monitor-only one is never acted on.
    #[test]
    fn the_decision_keeps_its_invariants(
        failures in 1u32..4,
        passes in 1u32..3,
        grace in 0u64..8,
        threshold in 1u32..4,
        monitor_only in any::<bool>(),
        steps in steps(),
    ) {
        let p = policy(failures, passes, grace, threshold);
        let c = Context { monitor_only, ..ctx(&p) };
        let mut rng = fastrand::Rng::with_seed(3);
        let mut s = ServiceState::default();
        let mut now = 0u64;
        let mut call_running = false;
        for step in steps {
            match step {
                Step_::Wait(ms) => now += ms,
                Step_::Request(running) => {
                    // The loop runs a verb only when no call of the service is running.
                    if call_running {
                        continue;
                    }
                    let desired = if running { Desired::Running } else { Desired::Stopped };
                    s = request(s, desired, now, &p);
                    prop_assert!(s.record.in_flight.is_none() && s.hold.is_none());
                }
                Step_::Settle(ok) => {
                    if !call_running {
                        continue;
                    }
                    call_running = false;
                    let result = if ok { Ok(None) } else { Err((FailureKind::Timeout, String::new())) };
                    let (next, outs) = settle(s, result, now, &c);
                    prop_assert!(!outs.iter().any(|o| matches!(o, Out::Heal(_))));
                    s = next;
                }
                Step_::Probe { failure, silent, pushed } => {
                    // The loop does not probe or decide a service whose call is running.
                    if call_running {
                        continue;
                    }
                    s.exit_pushed |= pushed;
                    let before = s.clone();
                    let obs = Observation { probed: probed(failure, silent), blocked_by: None };
                    let (next, outs) = decide(s, &obs, now, &c, &mut rng);
                    let heal = outs.iter().any(|o| matches!(o, Out::Heal(_)));
                    prop_assert!(!(monitor_only && heal), "a monitor-only service acted on");
                    let judged = outs.iter().any(|o| matches!(o, Out::Say(x) if x.kind == HealFailed));
                    if !before.record.desired.is_running() {
                        prop_assert!(outs.is_empty(), "a service stopped by request: {:?}", outs);
                        prop_assert_eq!(&next.record, &before.record);
                    }
                    if silent {
                        prop_assert!(!heal, "a heal through a silent manager");
                        prop_assert!(!judged, "a verdict while the manager is silent");
                        prop_assert_eq!(next.breaker.failures(), before.breaker.failures());
                    }
                    if failure == Some(ManagerUnavailable) {
                        prop_assert_eq!(&next.hyst, &before.hyst, "an unknown round counted");
                        prop_assert_eq!(&next.record, &before.record);
                        // At most the hold is said (once), nothing about the service's health.
                        prop_assert!(outs.iter().all(|o| matches!(
                            o,
                            Out::Say(x) if x.kind == HealSuppressed
                                && x.cause.as_deref() == Some("manager-unavailable")
                        )), "{:?}", outs);
                    }
                    // Watched for `observe_max`; past it the loop's own ladder applies, by design.
                    let within_observe_max = before
                        .observing_since
                        .is_none_or(|since| now.saturating_sub(since) < p.observe_max.as_millis() as u64);
                    if failure == Some(Starting) && before.record.in_flight.is_some() && within_observe_max {
                        prop_assert!(!judged, "an attempt found starting was failed");
                    }
                    if heal {
                        prop_assert!(now >= before.record.next_allowed_ms, "cool-down ignored");
                        if let Some(old) = &before.record.in_flight {
                            prop_assert!(judged, "a second heal while {old:?} is in flight");
                            prop_assert!(now >= old.started_ms + p.grace.as_millis() as u64);
                        }
                        let attempt = next.record.in_flight.as_ref().expect("recorded");
                        prop_assert_eq!(attempt.started_ms, now, "cool-down from the start");
                        prop_assert!(next.record.next_allowed_ms >= now);
                        call_running = true;
                    }
                    s = next;
                }
            }
        }
    }
}
