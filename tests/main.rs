//! The one integration-test binary: every test here runs the real `waiaas` binary against real
//! local components (redb files, anvil, surfnet-local, Speculos) started by `support`.

mod support;

/// A test that gets a freshly initialised, running daemon `$d` (see `support::TestDaemon`).
/// Optional `opts` customise the start (dev mode, config lines, environment).
macro_rules! daemon_test {
    ($(#[$m:meta])* $name:ident, |$d:ident| $body:block) => {
        daemon_test!($(#[$m])* $name, crate::support::Opts::default(), |$d| $body);
    };
    ($(#[$m:meta])* $name:ident, $opts:expr, |$d:ident| $body:block) => {
        $(#[$m])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            #[allow(unused_mut)]
            let mut $d = crate::support::TestDaemon::start($opts).await;
            $body
        }
    };
}

mod agents;
mod auth_matrix;
mod clients;
mod console;
mod crash_matrix;
mod emergency;
mod evm;
mod ha;
mod ha_chain;
mod http_layer;
mod keys;
mod keystore_cli;
mod ledger;
mod lifecycle;
mod nodes;
mod notify;
mod operations;
mod owner;
mod policy;
mod queue;
mod rebuild;
mod run_local;
mod sessions;
mod solana;
mod storage_api;
