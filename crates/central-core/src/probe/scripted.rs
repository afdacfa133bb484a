//! [`ScriptedProbe`]: a probe a test or an embedding program drives by hand.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{Probe, ProbeFailure, ProbeResult};
use crate::inventory::EndpointClass;

#[derive(Debug)]
struct Script {
    queued: VecDeque<ProbeResult>,
    steady: ProbeResult,
    hang: bool,
    calls: usize,
}

/// A probe whose answers are set by hand: a queue of results, then a steady answer. Clones share
/// the script, so a test keeps one clone and hands the other to the loop.
#[derive(Debug, Clone)]
pub struct ScriptedProbe {
    script: Arc<Mutex<Script>>,
    timeout: Duration,
}

impl ScriptedProbe {
    /// A probe that passes until told otherwise.
    pub fn passing() -> Self {
        ScriptedProbe {
            script: Arc::new(Mutex::new(Script {
                queued: VecDeque::new(),
                steady: ProbeResult::pass(EndpointClass::Localhost, "scripted pass"),
                hang: false,
                calls: 0,
            })),
            timeout: Duration::from_secs(5),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on, pass (`true`) or fail as unhealthy (`false`).
    pub fn set_passing(&self, passing: bool) {
        self.set_steady(if passing {
            ProbeResult::pass(EndpointClass::Localhost, "scripted pass")
        } else {
            ProbeResult::fail(ProbeFailure::Unhealthy, "scripted failure")
        });
    }

    /// From now on, answer `result`.
    pub fn set_steady(&self, result: ProbeResult) {
        let mut s = self.lock();
        s.queued.clear();
        s.steady = result;
    }

    /// Answers these (`true` pass, `false` fail) first, in order, then the steady answer.
    pub fn queue(&self, rounds: &[bool]) {
        let mut s = self.lock();
        for &p in rounds {
            s.queued.push_back(if p {
                ProbeResult::pass(EndpointClass::Localhost, "scripted pass")
            } else {
                ProbeResult::fail(ProbeFailure::Unhealthy, "scripted failure")
            });
        }
    }

    /// Never answer (the loop's deadline ends each check).
    pub fn set_hang(&self, hang: bool) {
        self.lock().hang = hang;
    }

    /// How many checks ran.
    pub fn calls(&self) -> usize {
        self.lock().calls
    }
}

#[async_trait]
impl Probe for ScriptedProbe {
    fn describe(&self) -> String {
        "scripted".into()
    }

    fn deadline(&self) -> Duration {
        self.timeout
    }

    async fn check(&self) -> ProbeResult {
        let (hang, result) = {
            let mut s = self.lock();
            s.calls += 1;
            let r = s.queued.pop_front().unwrap_or_else(|| s.steady.clone());
            (s.hang, r)
        };
        if hang {
            std::future::pending::<()>().await;
        }
        result
    }
}
