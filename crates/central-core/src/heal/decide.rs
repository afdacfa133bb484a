//! The loop's side of a decision: it hands one service's state to the pure functions of
//! [`super::machine`] with what they need (its policy, target, a dependency that blocks it),
//! takes the new state back, and turns what they ask for into events and calls.

use super::hooks::HookPoint;
use super::machine::{self, Context, Observation, Out, Say, ServiceState, TargetKind};
use super::{Action, HealCall, HealLoop, Probed, Target, Tracked};
use crate::events::{CallFailure, HealEvent, Step, StepOutcome};
use crate::model::ServiceClass;

impl HealLoop {
    fn context(&self, i: usize) -> Context<'_> {
        let t = &self.services[i];
        Context {
            label: t.label.as_str(),
            policy: &t.policy,
            target: match &t.target {
                Target::Process(_) => TargetKind::Process {
                    can_repair: t.config.is_some(),
                },
                Target::Container { name, .. } => TargetKind::Container {
                    compose: matches!(name, container_runtime::ContainerRef::Compose(_)),
                },
                Target::Substrate(_) => TargetKind::Substrate,
            },
            monitor_only: t.monitor_only,
            throttle: t.throttle,
            notify: self.notify.is_some(),
        }
    }

    /// Runs `f` on service `i`'s state, keeps the new state, and returns the actions asked
    /// for (events go to `events`).
    fn with_state(
        &mut self,
        i: usize,
        now: u64,
        events: &mut Vec<HealEvent>,
        f: impl FnOnce(ServiceState, &Context<'_>, &mut fastrand::Rng) -> (ServiceState, Vec<Out>),
    ) -> Vec<Action> {
        let before = std::mem::take(&mut self.services[i].state);
        let mut rng = std::mem::replace(&mut self.rng, fastrand::Rng::with_seed(0));
        let (after, outs) = {
            let ctx = self.context(i);
            f(before.clone(), &ctx, &mut rng)
        };
        self.rng = rng;
        if after.persisted_differs(&before) {
            self.dirty = true;
        }
        self.services[i].state = after;
        let mut actions = Vec::new();
        for out in outs {
            match out {
                Out::Say(say) => events.push(self.to_event(i, say, now)),
                Out::Notify(say) => actions.push(Action::Notify {
                    index: i,
                    event: Box::new(self.to_event(i, say, now)),
                }),
                Out::Heal(step) => {
                    let t = &self.services[i];
                    let attempt = t.state.record.in_flight.as_ref().map_or(0, |a| a.attempt);
                    // Before what (re)starts the service's process; not before the substrate.
                    let before = (step != Step::HealSubstrate)
                        .then(|| t.hook_job(HookPoint::BeforeRestart, step, attempt))
                        .flatten();
                    actions.push(Action::Heal {
                        index: i,
                        call: heal_call(t, step),
                        before,
                    });
                }
                Out::AfterHeal { step, attempt } => {
                    if let Some(job) =
                        self.services[i].hook_job(HookPoint::AfterHeal, step, attempt)
                    {
                        actions.push(Action::Hooks { index: i, job });
                    }
                }
            }
        }
        actions
    }

    fn to_event(&self, i: usize, say: Say, now: u64) -> HealEvent {
        let mut e = self.event(i, say.kind, now, say.detail);
        e.step = say.step;
        e.endpoint_class = say.endpoint_class;
        e.attempt = say.attempt;
        e.error_kind = say.error_kind;
        e.cause = say.cause;
        e.outcome = say.outcome;
        e
    }

    /// Folds service `i`'s probe round into its state (and its manager's health); a verified
    /// heal may ask for its `after_heal` hooks.
    pub(super) fn observe_round(
        &mut self,
        i: usize,
        probed: &Probed,
        now: u64,
        events: &mut Vec<HealEvent>,
    ) -> Vec<Action> {
        self.track_manager(i, probed, now, events);
        self.with_state(i, now, events, |s, ctx, _| {
            machine::observe(s, probed, now, ctx.policy)
        })
    }

    /// One service's whole round on its own (the supervised loop): observe, then decide. At
    /// most one heal or notify, and a verified heal's hooks.
    pub(super) fn round(
        &mut self,
        i: usize,
        probed: &Probed,
        now: u64,
        events: &mut Vec<HealEvent>,
    ) -> Vec<Action> {
        self.track_manager(i, probed, now, events);
        let observation = Observation {
            probed: probed.clone(),
            blocked_by: self.blocked_by(i),
        };
        self.with_state(i, now, events, |s, ctx, rng| {
            machine::decide(s, &observation, now, ctx, rng)
        })
    }

    /// Bulkhead: the first down infra-critical dependency of `i` (for a container, any down
    /// dependency: its dependencies' health gates it), with the cause to report.
    fn blocked_by(&self, i: usize) -> Option<(usize, String)> {
        self.deps[i]
            .iter()
            .copied()
            .find(|&d| {
                (self.services[d].class == ServiceClass::InfraCritical || self.health_gated(i))
                    && self.services[d].state.is_failing()
            })
            .map(|d| {
                let dep = &self.services[d];
                (
                    d,
                    format!("dependency {} ({}) is down", dep.label, dep.class),
                )
            })
    }

    /// What to do about service `i` now: a heal or a notify, if anything.
    pub(super) fn decide(
        &mut self,
        i: usize,
        now: u64,
        events: &mut Vec<HealEvent>,
    ) -> Option<Action> {
        let blocked_by = self.blocked_by(i);
        let mut actions = self.with_state(i, now, events, |s, ctx, rng| {
            machine::act(s, blocked_by, None, now, ctx, rng)
        });
        debug_assert!(actions.len() <= 1, "one action per round");
        actions.pop()
    }

    /// Applies a heal call's result; may ask for a notify.
    pub(super) fn settle(
        &mut self,
        i: usize,
        result: Result<Option<StepOutcome>, CallFailure>,
        now: u64,
        events: &mut Vec<HealEvent>,
    ) -> Option<Action> {
        self.dirty = true;
        let result = result.map_err(|CallFailure { kind, detail }| (kind, detail));
        let mut actions = self.with_state(i, now, events, |s, ctx, _| {
            machine::settle(s, result, now, ctx)
        });
        actions.pop()
    }
}

/// The call that takes `step` for `t`: the one place a target and a rung become a port call.
pub(super) fn heal_call(t: &Tracked, step: Step) -> HealCall {
    match (&t.target, step) {
        (Target::Substrate(rt), _) => HealCall::EnsureRunning(rt.clone()),
        (Target::Container { runtime, name }, step) => {
            super::container::rung_call(runtime, name, step)
        }
        (Target::Process(m), Step::Repair) => match &t.config {
            Some(config) => HealCall::Repair(m.clone(), Box::new(config.clone())),
            None => HealCall::Restart(m.clone(), t.label.clone()),
        },
        (Target::Process(m), _) => HealCall::Restart(m.clone(), t.label.clone()),
    }
}
