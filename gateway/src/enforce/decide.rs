//! The decision: `policy::rules::decide` asked with the facts, the backend's clock asked to
//! vouch for an allow that rests on an ended lock, and the one recorder of every answer.

use chrono::{DateTime, Utc};
use http::HeaderMap;
use policy::rules::{Action, Decision, Facts, decide};

use crate::backend::{Permit, ReadMethod};
use crate::enforce::clock::Agreement;
use crate::error::GatewayError;
use crate::s3::target::Target;

use crate::enforce::Gateway;

impl Gateway {
    /// Asks the policy, and records the answer.
    pub(crate) async fn decide(
        &self,
        action: Action,
        facts: &Facts,
    ) -> Result<Permit, GatewayError> {
        let now = self.locks.now();
        // An answer is recorded here; an error (the clock cannot vouch) goes back up, and the
        // front records it with every other refusal, once.
        let decision = self.decide_at(action, facts, now).await?;
        self.record(now, None, Some(action), refusal_of(&Ok(decision)));
        Permit::granted(decision).map_err(GatewayError::Denied)
    }

    /// The permit for one more backend request that a decided request needs (a record it
    /// writes or removes): the same decision asked again, not recorded a second time.
    pub(crate) async fn permit_again(
        &self,
        action: Action,
        facts: &Facts,
    ) -> Result<Permit, GatewayError> {
        let decision = self.decide_at(action, facts, self.locks.now()).await?;
        Permit::granted(decision).map_err(GatewayError::Denied)
    }

    /// The one place a decision is recorded, whoever made it (the policy, or a refusal before
    /// it): the `wormgate::audit` log target, the decision log of `/audit/events` and the
    /// denial metrics. `key` names the key of a batch (DeleteObjects) when the request's own
    /// path names none.
    pub(crate) fn record(
        &self,
        now: DateTime<Utc>,
        key: Option<&str>,
        action: Option<Action>,
        reason: Option<String>,
    ) {
        if let Some(label) = &reason {
            tracing::info!(target: "wormgate::audit", key, ?action, reason = %label, "denied");
        } else {
            tracing::debug!(target: "wormgate::audit", key, ?action, "allowed");
        }
        self.telemetry.decision(now, key, reason);
    }

    /// The policy's answer at `now`; an `Allow` that rests on a lock having ended stands only
    /// if the backend's clock confirms `now` (see `clock`).
    pub(crate) async fn decide_at(
        &self,
        action: Action,
        facts: &Facts,
        now: DateTime<Utc>,
    ) -> Result<Decision, GatewayError> {
        let decision = decide(action, facts, &self.locks.policy, now);
        if decision.is_allowed()
            && policy::rules::allowed_by_expiry(action, facts, &self.locks.policy, now)
        {
            self.confirm_time(now).await?;
        }
        Ok(decision)
    }

    /// Has the backend's clock vouch for `now`: a fresh `Date` reading (taken with one
    /// `HEAD /` if the latest is stale or disagrees) within the tolerance.
    ///
    /// # Errors
    /// `ClockUntrusted` when the clocks disagree or the backend cannot be asked.
    pub(crate) async fn confirm_time(&self, now: DateTime<Utc>) -> Result<(), GatewayError> {
        let time = &self.locks.time;
        let mut agreement = time.agreement(now);
        if agreement != Agreement::Agrees {
            let asked = self
                .read(ReadMethod::Head, &Target::default(), None, HeaderMap::new())
                .await;
            if let Err(e) = asked {
                time.forget_reading();
                self.telemetry.clock_refusals.inc();
                tracing::error!(error = %e, "an expiry decision is refused: the backend's clock cannot be read");
                return Err(GatewayError::ClockUntrusted(format!(
                    "the backend cannot be asked for its time: {e}"
                )));
            }
            agreement = time.agreement(now);
        }
        match agreement {
            Agreement::Agrees => Ok(()),
            Agreement::NeedReading => {
                self.telemetry.clock_refusals.inc();
                tracing::error!("an expiry decision is refused: the backend sends no Date header");
                Err(GatewayError::ClockUntrusted(
                    "the backend sends no Date header".into(),
                ))
            }
            Agreement::Disagrees { gateway_ahead_secs } => {
                self.telemetry.clock_refusals.inc();
                self.telemetry.clock_skew.set(gateway_ahead_secs);
                tracing::error!(
                    gateway_ahead_secs,
                    tolerance_secs = time.tolerance().num_seconds(),
                    gateway_now = %now.to_rfc3339(),
                    "an expiry decision is refused: the gateway's clock disagrees with the backend's Date"
                );
                Err(GatewayError::ClockUntrusted(format!(
                    "the gateway's clock is {gateway_ahead_secs} s ahead of the backend's"
                )))
            }
        }
    }
}

/// The label a decision is recorded with: `None` for an allow.
pub(crate) fn refusal_of(outcome: &Result<Decision, GatewayError>) -> Option<String> {
    match outcome {
        Ok(Decision::Allow(_)) => None,
        Ok(Decision::Deny { reason }) => Some(crate::enforce::telemetry::reason_label(reason)),
        Err(e) => Some(e.refusal_label()),
    }
}
