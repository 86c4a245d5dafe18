//! `waiaas health [--url URL] [--verbose]` (12-operations.md §1): the container's HEALTHCHECK and a
//! scriptable probe. `GET /health` on the configured port (or `--url`): exit 0 when the answer is
//! HTTP 200 and its status is not `unhealthy`, else 1. Silent unless `--verbose`, so it needs no
//! curl in the image and prints nothing into the container's health log.

use std::path::Path;
use std::time::Duration;

use clap::Args;

use crate::cli::CliError;

#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    /// The health URL (default: http://127.0.0.1:<configured port>/health).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Print the answer (or why there is none).
    #[arg(long)]
    verbose: bool,
}

pub(crate) fn run(dir: &Path, args: HealthArgs) -> Result<(), CliError> {
    let url = args.url.clone().unwrap_or_else(|| {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let port = crate::runtime::config::load(dir, &Default::default(), &env).map(|c| c.daemon.port).unwrap_or(3100);
        format!("http://127.0.0.1:{port}/health")
    });
    let rt = crate::cli::runtime()?;
    let probe = rt.block_on(async {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().map_err(|e| e.to_string())?;
        let r = client.get(&url).send().await.map_err(|e| format!("no answer from {url}: {e}"))?;
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.map_err(|e| format!("{url} answered {status}, not JSON: {e}"))?;
        Ok::<_, String>((status, body))
    });
    let healthy = match &probe {
        Ok((200, body)) => body["status"] != "unhealthy",
        _ => false,
    };
    if args.verbose {
        match &probe {
            Ok((status, body)) => println!("{url}: HTTP {status} {body}"),
            Err(e) => println!("{e}"),
        }
    }
    if healthy { Ok(()) } else { Err(CliError::general(String::new())) }
}
