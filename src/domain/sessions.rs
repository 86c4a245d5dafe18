//! Sessions (04-auth.md §4–5): issuing a session token with resolved constraints, renewal,
//! revocation and rotation of the signing secret.
//!
//! The token is returned only by creation and renewal; the database keeps its SHA-256.
//! Renewal is a compare-and-swap on the presented token's hash inside one write transaction, so
//! of two concurrent renewals with the same token exactly one wins.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;
use waiaas_storage::{
    AgentRecord, AgentStatus, AllowedOperation, Amount, Chain, Hash32, OpCtx, RenewOutcome, RenewalRefusal,
    RotateOutcome, SessionConstraints, SessionRecord, StoreError, UsageStats,
};

use crate::adapters::notify::{Message, Notifier};
use crate::base::clock::{Clock, iso};
use crate::base::error::{Coded, ErrorCode, details};
use crate::base::validation::Invalid;
use crate::domain::auth::SessionContext;
use crate::domain::auth::jwt::{self, JwtKeys, Tokens};
use crate::runtime::{Db, Settings};

/// Why a session operation did not apply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("Agent {0} is suspended")]
    AgentSuspended(Uuid),
    #[error("Agent {0} is terminated")]
    AgentTerminated(Uuid),
    #[error("The agent already has {current} live sessions")]
    TooMany { limit: u64, current: u64 },
    #[error("Session {0} not found")]
    NotFound(String),
    #[error("Session {0} is already revoked")]
    AlreadyRevoked(Uuid),
    #[error("A session can only renew itself")]
    RenewalMismatch,
    /// A renewal guard refused, decided at daemon time `.1`.
    #[error("{}", refusal_text(.0))]
    Refused(RenewalRefusal, u64),
    #[error("Another renewal of this session won")]
    RenewalConflict,
    #[error("The secret was rotated less than 5 minutes ago")]
    RotationTooRecent { retry_after: u64 },
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn refusal_text(r: &RenewalRefusal) -> &'static str {
    match r {
        RenewalRefusal::LimitReached => "The session has reached its renewal limit",
        RenewalRefusal::AbsoluteLifetimeExceeded => "Renewing would pass the session's absolute lifetime",
        RenewalRefusal::TooEarly { .. } => "Renew after half of the session lifetime",
    }
}

impl Coded for SessionError {
    fn code(&self) -> ErrorCode {
        match self {
            SessionError::AgentSuspended(_) => ErrorCode::AgentSuspended,
            SessionError::AgentTerminated(_) => ErrorCode::AgentTerminated,
            SessionError::TooMany { .. } => ErrorCode::SessionLimitExceeded,
            SessionError::NotFound(_) => ErrorCode::SessionNotFound,
            SessionError::AlreadyRevoked(_) => ErrorCode::SessionAlreadyRevoked,
            SessionError::RenewalMismatch => ErrorCode::SessionRenewalMismatch,
            SessionError::Refused(RenewalRefusal::LimitReached, _) => ErrorCode::RenewalLimitReached,
            SessionError::Refused(RenewalRefusal::AbsoluteLifetimeExceeded, _) => {
                ErrorCode::SessionAbsoluteLifetimeExceeded
            }
            SessionError::Refused(RenewalRefusal::TooEarly { .. }, _) => ErrorCode::RenewalTooEarly,
            SessionError::RenewalConflict => ErrorCode::RenewalConflict,
            SessionError::RotationTooRecent { .. } => ErrorCode::RotationTooRecent,
            SessionError::Invalid(e) => e.code(),
            SessionError::Store(_) => ErrorCode::InternalError,
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            SessionError::TooMany { limit, current } => details([
                ("code", "MAX_SESSIONS_PER_AGENT".into()),
                ("limit", (*limit).into()),
                ("current", (*current).into()),
            ]),
            SessionError::NotFound(id) => details([("resource", "session".into()), ("id", id.clone().into())]),
            SessionError::Refused(RenewalRefusal::TooEarly { renewable_at }, _) => {
                details([("renewableAt", iso(*renewable_at).into())])
            }
            SessionError::Invalid(e) => e.details(),
            _ => Map::new(),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            SessionError::RotationTooRecent { retry_after } => Some(*retry_after),
            SessionError::Refused(RenewalRefusal::TooEarly { renewable_at }, now) => {
                Some(renewable_at.saturating_sub(*now).max(1))
            }
            _ => None,
        }
    }
}

/// Constraint fields of a session request (04-auth.md §4.2), before defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ConstraintRequest {
    pub(crate) max_amount_per_tx: Option<String>,
    pub(crate) max_total_amount: Option<String>,
    pub(crate) max_transactions: Option<u64>,
    pub(crate) allowed_operations: Option<Vec<String>>,
    pub(crate) allowed_destinations: Option<Vec<String>>,
    pub(crate) allowed_tokens: Option<Vec<String>>,
    pub(crate) allowed_contracts: Option<Vec<String>>,
    pub(crate) allowed_spenders: Option<Vec<String>>,
    pub(crate) expires_in: Option<u64>,
    pub(crate) max_renewals: Option<u32>,
    pub(crate) renewal_reject_window: Option<u64>,
}

fn range_check(field: &str, v: Option<u64>, lo: u64, hi: u64) -> Result<(), Invalid> {
    match v {
        Some(x) if !(lo..=hi).contains(&x) => {
            Err(Invalid::field(field, "out_of_range", format!("{field} must be between {lo} and {hi}")))
        }
        _ => Ok(()),
    }
}

fn amount(field: &str, v: Option<String>) -> Result<Option<Amount>, Invalid> {
    v.map(|s| Amount::parse(&s).map_err(|e| Invalid::field(field, "invalid_string", format!("{field}: {e}"))))
        .transpose()
}

fn addresses(field: &str, chain: Chain, v: Option<Vec<String>>) -> Result<Option<Vec<String>>, Invalid> {
    let Some(list) = v else { return Ok(None) };
    for (i, a) in list.iter().enumerate() {
        if crate::base::address::normalize(chain, a).is_none() {
            return Err(Invalid::field(
                &format!("{field}[{i}]"),
                "invalid_string",
                format!("{a} is not a valid {chain} address"),
            ));
        }
    }
    Ok(Some(list))
}

/// What a created session hands back (the token only here and at renewal).
pub(crate) struct Issued {
    pub(crate) session: SessionRecord,
    pub(crate) token: String,
}

/// The session service.
#[derive(Clone)]
pub(crate) struct Sessions {
    db: Db,
    clock: Clock,
    settings: Settings,
    tokens: Tokens,
    notifier: Arc<Notifier>,
}

/// Whether a session is close to its end (04-auth.md §4.5): three renewals or fewer left, or at
/// most a day of absolute lifetime.
fn expiring_soon(s: &SessionRecord, now: u64) -> bool {
    s.max_renewals.saturating_sub(s.renewal_count) <= 3 || s.absolute_expires_at.saturating_sub(now) <= 86_400
}

impl Sessions {
    pub(crate) fn new(db: Db, clock: Clock, settings: Settings, tokens: Tokens, notifier: Arc<Notifier>) -> Sessions {
        Sessions { db, clock, settings, tokens, notifier }
    }

    async fn agent_name(&self, agent: Uuid) -> String {
        match self.db.call(move |s| s.get_agent(agent)).await {
            Ok(Some(a)) => a.name,
            _ => agent.to_string(),
        }
    }

    /// Validates and resolves constraints with every default applied (04-auth.md §4.2).
    pub(crate) fn resolve(&self, c: ConstraintRequest, chain: Chain) -> Result<SessionConstraints, Invalid> {
        let security = self.settings.get().security.clone();
        range_check("expiresIn", c.expires_in, 300, 604_800)?;
        range_check("maxRenewals", c.max_renewals.map(u64::from), 0, 100)?;
        range_check("renewalRejectWindow", c.renewal_reject_window, 300, 86_400)?;
        if c.max_transactions == Some(0) {
            return Err(Invalid::field("maxTransactions", "too_small", "maxTransactions must be at least 1"));
        }
        let allowed_operations = match c.allowed_operations {
            None => None,
            Some(ops) if ops.is_empty() => {
                return Err(Invalid::field("allowedOperations", "too_small", "allowedOperations must not be empty"));
            }
            Some(ops) => {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                for (i, o) in ops.iter().enumerate() {
                    let up = o.to_uppercase();
                    let op: AllowedOperation = serde_json::from_value(Value::String(up.clone())).map_err(|_| {
                        Invalid::field(
                            &format!("allowedOperations[{i}]"),
                            "invalid_enum_value",
                            format!("unknown operation {o}"),
                        )
                    })?;
                    if !seen.insert(op) {
                        return Err(Invalid::field(
                            &format!("allowedOperations[{i}]"),
                            "duplicate",
                            format!("{up} is listed twice"),
                        ));
                    }
                    out.push(op);
                }
                Some(out)
            }
        };
        Ok(SessionConstraints {
            max_amount_per_tx: amount("maxAmountPerTx", c.max_amount_per_tx)?,
            max_total_amount: amount("maxTotalAmount", c.max_total_amount)?,
            max_transactions: c.max_transactions,
            allowed_operations,
            allowed_destinations: addresses("allowedDestinations", chain, c.allowed_destinations)?,
            allowed_tokens: addresses("allowedTokens", chain, c.allowed_tokens)?,
            allowed_contracts: addresses("allowedContracts", chain, c.allowed_contracts)?,
            allowed_spenders: addresses("allowedSpenders", chain, c.allowed_spenders)?,
            expires_in: c.expires_in.unwrap_or(security.session_ttl),
            max_renewals: c.max_renewals.unwrap_or(security.default_max_renewals),
            renewal_reject_window: c.renewal_reject_window.unwrap_or(security.default_renewal_reject_window),
        })
    }

    /// Issues a session for `agent` (04-auth.md §4.1): constraints resolved, a JWT signed with
    /// the current secret, the row written with `SESSION_ISSUED` while the agent is ACTIVE and
    /// below `max_sessions_per_agent` (checked in the same write transaction).
    pub(crate) async fn create(
        &self,
        agent: &AgentRecord,
        constraints: ConstraintRequest,
        ctx: &OpCtx,
    ) -> Result<Issued, SessionError> {
        agent_may_hold_sessions(agent)?;
        let constraints = self.resolve(constraints, agent.chain)?;
        let security = self.settings.get().security.clone();
        let now = self.clock.now();
        let id = self.clock.new_id();
        let absolute = now + security.session_absolute_lifetime;
        let exp = (now + constraints.expires_in).min(absolute);
        let token = self.tokens.issue(id, agent.id, now, exp);
        let rec = SessionRecord {
            id,
            agent_id: agent.id,
            token_hash: Hash32(jwt::token_hash(&token)),
            max_renewals: constraints.max_renewals,
            constraints,
            usage: UsageStats::default(),
            expires_at: exp,
            absolute_expires_at: absolute,
            renewal_count: 0,
            last_renewed_at: None,
            revoked_at: None,
            revoke_trigger: None,
            created_at: now,
        };
        let (r, ctx, max, agent_id) = (rec.clone(), ctx.clone(), security.max_sessions_per_agent, agent.id);
        match self.db.call(move |s| s.create_session(&r, max, &ctx)).await {
            Ok(()) => {
                self.notifier.emit(Message::session_created(&rec, &agent.name, now));
                Ok(Issued { session: rec, token })
            }
            Err(StoreError::Limit { limit, current, .. }) => Err(SessionError::TooMany { limit, current }),
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {
                // The agent changed since it was read: report what it is now.
                match self.db.call(move |s| s.get_agent(agent_id)).await? {
                    Some(a) => {
                        agent_may_hold_sessions(&a)?;
                        Err(SessionError::AgentTerminated(agent_id))
                    }
                    None => Err(SessionError::AgentTerminated(agent_id)),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Renews the caller's own session (04-auth.md §4.5): guards checked now and again inside
    /// the compare-and-swap on the presented token's hash; a new token with the same ids and
    /// the original lifetime.
    pub(crate) async fn renew(
        &self,
        caller: &SessionContext,
        raw_id: &str,
        ctx: &OpCtx,
    ) -> Result<Issued, SessionError> {
        // 1. Only the caller's own session.
        if raw_id != caller.session.id.to_string() {
            return Err(SessionError::RenewalMismatch);
        }
        let id = caller.session.id;
        // 2–5. The current row and the guards.
        let s = self
            .db
            .call(move |s| s.get_session(id))
            .await?
            .filter(|s| s.revoked_at.is_none())
            .ok_or_else(|| SessionError::NotFound(raw_id.to_string()))?;
        let now = self.clock.now();
        if let Some(r) = waiaas_storage::renewal_guard(&s, now) {
            self.refused(&s, &r, now).await;
            return Err(SessionError::Refused(r, now));
        }
        // 6. A new token with the same sid/jti/aid and the original lifetime.
        let exp = now + s.constraints.expires_in;
        let token = self.tokens.issue(id, s.agent_id, now, exp);
        let new_hash = jwt::token_hash(&token);
        // 7. Compare-and-swap on the presented token's hash.
        let (ctx, expected) = (ctx.clone(), caller.token_hash);
        let outcome = self.db.call(move |st| st.renew_session(id, &expected, new_hash, exp, &ctx)).await.map_err(
            |e| match e {
                StoreError::Conflict { .. } => SessionError::RenewalConflict,
                StoreError::NotFound { .. } => SessionError::NotFound(id.to_string()),
                other => other.into(),
            },
        )?;
        match outcome {
            RenewOutcome::Renewed(session) => {
                let name = caller.agent.name.clone();
                self.notifier.emit(Message::session_renewed(&session, &name, now));
                if expiring_soon(&session, now) {
                    self.notifier.emit(Message::session_expiring_soon(&session, &name, now));
                }
                Ok(Issued { session: *session, token })
            }
            RenewOutcome::Refused(r) => {
                self.refused(&s, &r, now).await;
                Err(SessionError::Refused(r, now))
            }
        }
    }

    /// A renewal refused for its limit or its absolute lifetime warns that the session ends.
    async fn refused(&self, s: &SessionRecord, r: &RenewalRefusal, now: u64) {
        if matches!(r, RenewalRefusal::LimitReached | RenewalRefusal::AbsoluteLifetimeExceeded) {
            let name = self.agent_name(s.agent_id).await;
            self.notifier.emit(Message::session_expiring_soon(s, &name, now));
        }
    }

    /// Revokes a session; the trigger is `renewal_rejected` within the reject window after a
    /// renewal, else `manual_revoke`.
    pub(crate) async fn revoke(&self, id: Uuid, ctx: &OpCtx) -> Result<SessionRecord, SessionError> {
        let c = ctx.clone();
        let s = self.db.call(move |s| s.revoke_session(id, None, &c)).await.map_err(|e| match e {
            StoreError::NotFound { .. } => SessionError::NotFound(id.to_string()),
            StoreError::Conflict { .. } => SessionError::AlreadyRevoked(id),
            other => other.into(),
        })?;
        let name = self.agent_name(s.agent_id).await;
        let m = if s.revoke_trigger.as_deref() == Some("renewal_rejected") {
            Message::session_renewal_rejected(&s, &name, ctx.now)
        } else {
            Message::session_revoked(&s, &name, ctx.now)
        };
        self.notifier.emit(m);
        Ok(s)
    }

    /// Rotates the signing secret (04-auth.md §5): previous ← current, current ← 32 new random
    /// bytes; tokens of the previous secret keep working for 300 s. Returns when the previous
    /// secret stops working.
    pub(crate) async fn rotate_secret(&self, ctx: &OpCtx) -> Result<u64, SessionError> {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, bytes.as_mut());
        let new = zeroize::Zeroizing::new(hex::encode(bytes.as_ref()));
        let ctx = ctx.clone();
        let (outcome, secrets) = self
            .db
            .call(move |s| {
                let o = s.rotate_jwt_secret(&new, &ctx)?;
                Ok((o, s.jwt_secrets()?))
            })
            .await?;
        match outcome {
            RotateOutcome::TooRecent { retry_after } => Err(SessionError::RotationTooRecent { retry_after }),
            RotateOutcome::Rotated { previous_expires_at } => {
                let keys = secrets
                    .as_ref()
                    .and_then(JwtKeys::from_secrets)
                    .ok_or(StoreError::Invariant("the rotated secret is not 64 hex characters"))?;
                self.tokens.replace(keys);
                Ok(previous_expires_at)
            }
        }
    }
}

/// Only ACTIVE agents get sessions.
fn agent_may_hold_sessions(a: &AgentRecord) -> Result<(), SessionError> {
    match a.status {
        AgentStatus::Active => Ok(()),
        AgentStatus::Suspended => Err(SessionError::AgentSuspended(a.id)),
        AgentStatus::Terminated => Err(SessionError::AgentTerminated(a.id)),
    }
}
