//! waiaas: a self-hosted wallet daemon for AI agents.
//!
//! AI agents ask the daemon over REST to move funds on EVM chains and Solana; every request
//! passes a policy engine that decides how much human oversight it needs, and keys live behind
//! one signer seam (`waiaas-backends`). State lives in one redb file (`waiaas-storage`).
//!
//! This library is the daemon and the CLI; `main.rs` only parses arguments through [`run`] and
//! maps the result to an exit code.
//!
//! The folders of `src/` are the layers, and calls point down only:
//!
//! ```text
//!   cli/         the command line: local commands, API clients, the MCP server
//!    │ daemon/   the running process: start sequence, lock, logging, signals, shutdown
//!    │  │ http/  the REST API: routes, middleware, the error envelope, OpenAPI
//!    ▼  ▼  ▼
//!   app/         composition root: wires the services, owns the background workers
//!    ▼
//!   domain/      agents, sessions, auth, pipeline, policy admin, backup, emergency
//!    ▼      ╲
//!   adapters/ ╲  chain nodes, notification services, price oracles
//!    ▼         ▼
//!   runtime/     config, database handle, settings, signers, scheduler   rules/ (pure)
//!    ▼                                                                     ▼
//!   base/        addresses, clock, error codes, validation, units, data directory
//!
//!   below all of them: waiaas-storage (redb, every atomic operation), waiaas-backends (signer seam)
//! ```
//!
//! `scripts/check-layers.sh` holds the same table, one line per folder, and fails the test
//! command when a file names a layer it may not; `docs/architecture.md` says where each kind of
//! change goes.
mod adapters;
mod app;
mod base;
mod cli;
mod daemon;
mod domain;
#[doc(hidden)]
pub mod fuzz;
mod http;
mod rules;
mod runtime;

pub use cli::{CliError, run};

#[doc(hidden)]
pub mod bench_support {
    //! Entry points for `benches/` only: not an API, no stability promise.

    use waiaas_backends::keystore::master::MasterFile;

    /// masterAuth as the daemon runs it (cache, semaphore, lockout).
    pub struct MasterAuthProbe(crate::domain::auth::master::MasterAuth);

    impl MasterAuthProbe {
        /// A verifier for `file` with an empty cache.
        pub fn new(file: MasterFile) -> Self {
            MasterAuthProbe(crate::domain::auth::master::MasterAuth::new(file))
        }

        /// Fills the cache as a successful start does.
        pub fn prime(&self, password: &[u8]) {
            self.0.prime(password)
        }

        /// One `X-Master-Password` check; true when accepted.
        pub async fn verify(&self, header: &str) -> bool {
            matches!(self.0.verify(Some(header), 0).await, crate::domain::auth::master::MasterOutcome::Ok)
        }
    }

    /// The policy engine on a fixed agent, request and policy set.
    pub struct PolicyProbe {
        agent: waiaas_storage::AgentRecord,
        /// The effective records, as the decision snapshot hands them over.
        records: Vec<waiaas_storage::PolicyRecord>,
        typed: Vec<crate::rules::policy::Policy>,
        tx: waiaas_storage::TransactionRecord,
        prices: crate::rules::policy::usd::Prices,
    }

    impl PolicyProbe {
        /// `records` as stored, for `agent`, deciding `tx`.
        pub fn new(
            agent: waiaas_storage::AgentRecord,
            records: Vec<waiaas_storage::PolicyRecord>,
            tx: waiaas_storage::TransactionRecord,
        ) -> Self {
            let records = waiaas_storage::scope::effective(&agent, &records);
            let typed = crate::domain::pipeline::decide::typed(&records).expect("the bench's policies parse");
            PolicyProbe { agent, records, typed, tx, prices: Default::default() }
        }

        /// How many policies the engine evaluates after scope resolution.
        pub fn effective(&self) -> usize {
            self.typed.len()
        }

        /// The engine alone, on already-typed policies; returns the tier (or the denial) name.
        pub fn evaluate(&self) -> &'static str {
            Self::name(crate::rules::policy::evaluate(
                &self.ctx(&self.typed),
                &crate::rules::policy::Op::of(&self.tx),
                &[],
            ))
        }

        /// What the decision closure does with the snapshot's effective policies: parse each
        /// stored rules document, then evaluate.
        pub fn parse_evaluate(&self) -> &'static str {
            let typed = crate::domain::pipeline::decide::typed(&self.records).expect("parse");
            Self::name(crate::rules::policy::evaluate(&self.ctx(&typed), &crate::rules::policy::Op::of(&self.tx), &[]))
        }

        fn ctx<'a>(&'a self, policies: &'a [crate::rules::policy::Policy]) -> crate::rules::policy::Context<'a> {
            crate::rules::policy::Context {
                chain: self.agent.chain,
                owner: self.agent.owner_state(),
                policies,
                rate_1h: Default::default(),
                rate_24h: Default::default(),
                now: 1_750_000_000,
                defaults: crate::rules::policy::Defaults { delay_seconds: 300, approval_timeout: 3600 },
                notifications_available: true,
                prices: &self.prices,
            }
        }

        fn name(d: crate::rules::policy::Decision) -> &'static str {
            match d {
                crate::rules::policy::Decision::Allow(a) => a.tier.as_str(),
                crate::rules::policy::Decision::Deny(_) => "denied",
            }
        }
    }
}

#[doc(hidden)]
pub mod testkit {
    //! Entry points for the integration tests only: not an API, no stability promise.

    use serde_json::{Value, json};
    use waiaas_storage::{AgentRecord, Chain, TransactionRecord};

    use crate::adapters::chains::ChainAdapter;
    use crate::adapters::chains::types::{BuildOptions, BuildRequest, Priority, UnsignedInner, UnsignedTx};

    async fn adapter(agent: &AgentRecord, rpc_url: &str) -> Result<Box<dyn ChainAdapter>, String> {
        let clock = crate::base::clock::Clock::default();
        let timeout = std::time::Duration::from_secs(10);
        let a: Box<dyn ChainAdapter> = match agent.chain {
            Chain::Ethereum => Box::new(
                crate::adapters::chains::evm::EvmAdapter::new(
                    agent.network,
                    rpc_url,
                    timeout,
                    None,
                    "ETH".into(),
                    clock.clone(),
                )
                .map_err(|e| e.to_string())?,
            ),
            Chain::Solana => Box::new(crate::adapters::chains::solana::SolanaAdapter::new(
                agent.network,
                rpc_url,
                timeout,
                clock.clone(),
            )),
        };
        a.connect(clock.now()).await.map_err(|e| e.to_string())?;
        Ok(a)
    }

    async fn describe(
        agent: &AgentRecord,
        rpc_url: &str,
        build: BuildRequest,
        priority: Priority,
    ) -> Result<Value, String> {
        let a = adapter(agent, rpc_url).await?;
        let tx =
            a.build(&build, &BuildOptions { priority, ..BuildOptions::default() }).await.map_err(|e| e.to_string())?;
        Ok(unsigned(&tx))
    }

    /// What the live request `body` builds into for `agent` against the node at `rpc_url`
    /// (see [`unsigned`]).
    pub async fn build_live(agent: &AgentRecord, body: &[u8], rpc_url: &str) -> Result<Value, String> {
        let v = crate::domain::pipeline::request::validate(body, agent).map_err(|e| e.to_string())?;
        describe(agent, rpc_url, v.build, v.priority).await
    }

    /// What stage 5 builds from a stored row (its canonical request, through the function the
    /// pipeline itself uses).
    pub async fn build_stored(agent: &AgentRecord, row: &TransactionRecord, rpc_url: &str) -> Result<Value, String> {
        let (build, priority) =
            crate::domain::pipeline::request::rebuild(&row.request, agent).map_err(|e| e.to_string())?;
        describe(agent, rpc_url, build, priority).await
    }

    /// An unsigned transaction with what decides its effect — recipient, value, calldata, chain
    /// id (EVM); fee payer and every instruction but the compute-budget pair (Solana) — and
    /// without what every build refreshes: nonce, gas and fee bids, blockhash.
    pub(crate) fn unsigned(tx: &UnsignedTx) -> Value {
        match &tx.inner {
            UnsignedInner::Evm { tx: t, approve_reset } => {
                let one = |t: &alloy::consensus::TxEip1559| {
                    json!({"chainId": t.chain_id, "to": format!("{:?}", t.to), "value": t.value.to_string(),
                           "input": format!("0x{}", hex::encode(&t.input))})
                };
                json!({"tx": one(t), "approveReset": approve_reset.as_deref().map(one)})
            }
            UnsignedInner::Solana(s) => {
                let keys = s.message.static_account_keys();
                let budget = solana_compute_budget_interface::id();
                let instructions: Vec<Value> = s
                    .message
                    .instructions()
                    .iter()
                    .filter(|ix| keys[ix.program_id_index as usize] != budget)
                    .map(|ix| {
                        let accounts: Vec<Value> = ix
                            .accounts
                            .iter()
                            .map(|&i| {
                                let i = i as usize;
                                json!({"key": keys[i].to_string(), "signer": s.message.is_signer(i),
                                       "writable": s.message.is_maybe_writable_with_reserved_addresses(i, None::<&std::collections::HashSet<solana_sdk::pubkey::Pubkey>>)})
                            })
                            .collect();
                        json!({"program": keys[ix.program_id_index as usize].to_string(), "accounts": accounts,
                               "data": hex::encode(&ix.data)})
                    })
                    .collect();
                json!({"payer": keys[0].to_string(), "instructions": instructions})
            }
        }
    }
}
