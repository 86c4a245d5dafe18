//! `waiaas init --quickstart` (01-daemon.md §4.12): init, start in the background, create an
//! agent and a session, print the token. Each step's failure leaves exactly what the spec says.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use rand::RngCore;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::cli::local::init::InitArgs;
use crate::cli::remote::client::DaemonClient;
use crate::cli::{CliError, password};

fn stop_daemon(dir: &Path) {
    if let Ok(exe) = std::env::current_exe() {
        let _ = Command::new(exe).arg("--data-dir").arg(dir).arg("stop").status();
    }
}

pub(crate) fn run(dir: &Path, mut args: InitArgs) -> Result<(), CliError> {
    let chain =
        args.chain.clone().ok_or_else(|| CliError::general("Error: --chain is required for quickstart mode."))?;
    // Password: --password, --password-file, the environment, else generated and saved.
    let env_pw = password::take_env(&args.password_source.password_env);
    let mut generated = false;
    let pw: SecretString = if args.dev {
        SecretString::from(password::DEV_PASSWORD)
    } else if let Some(p) = args.password.take() {
        SecretString::from(p)
    } else if let Some(f) = &args.password_source.password_file {
        password::read_file(f)?
    } else if let Some(p) = env_pw {
        p
    } else {
        let mut bytes = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        generated = true;
        SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    };

    println!("[1/4] Initializing {}...", dir.display());
    let init = InitArgs {
        non_interactive: true,
        password_source: Default::default(),
        master_password: Some(pw.expose_secret().to_string()),
        json: false,
        force: args.force,
        quickstart: false,
        chain: None,
        network: None,
        owner: None,
        agent_name: String::new(),
        expires_in: 0,
        password: None,
        dev: false,
        quiet: true,
    };
    let existed = dir.exists();
    if let Err(e) = crate::cli::local::init::run(dir, init) {
        if !existed || args.force {
            let _ = std::fs::remove_dir_all(dir);
        }
        return Err(e);
    }
    if generated {
        let path = dir.join(".master-password");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| CliError::general(format!("Error: cannot write {}: {e}", path.display())))?;
        use std::io::Write;
        writeln!(f, "{}", pw.expose_secret()).map_err(|e| CliError::general(format!("Error: {e}")))?;
        println!("Next time: waiaas start --password-file {}", path.display());
    }

    println!("[2/4] Starting the daemon...");
    let exe = std::env::current_exe().map_err(|e| CliError::general(format!("Error: {e}")))?;
    let mut start = Command::new(exe);
    start.arg("--data-dir").arg(dir).arg("start").arg("-d");
    if args.dev {
        start.arg("--dev");
    } else {
        start.env("WAIAAS_MASTER_PASSWORD", pw.expose_secret());
    }
    let started = start.status().map(|s| s.success()).unwrap_or(false);
    if !started {
        return Err(CliError::general("Init succeeded. Run 'waiaas start' manually."));
    }

    let env: Vec<(String, String)> = std::env::vars().collect();
    let port = crate::runtime::config::load(dir, &Default::default(), &env).map(|c| c.daemon.port).unwrap_or(3100);
    let rt = crate::cli::runtime()?;
    let client = DaemonClient::new(port, Some(pw));

    println!("[3/4] Creating agent {}...", args.agent_name);
    let mut body = json!({"name": args.agent_name, "chain": chain});
    if let Some(n) = &args.network {
        body["network"] = json!(n);
    }
    if let Some(o) = &args.owner {
        body["owner"] = json!(o);
    }
    let agent = match rt.block_on(client.call(Method::POST, "/v1/agents", Some(&body))) {
        Ok(a) => a,
        Err(e) => {
            stop_daemon(dir);
            return Err(e);
        }
    };
    println!(
        "      {} on {}/{}",
        agent["address"].as_str().unwrap_or(""),
        agent["chain"].as_str().unwrap_or(""),
        agent["network"].as_str().unwrap_or("")
    );

    println!("[4/4] Creating a session...");
    let body = json!({"agentId": agent["id"], "expiresIn": args.expires_in});
    let session = match rt.block_on(client.call(Method::POST, "/v1/sessions", Some(&body))) {
        Ok(s) => s,
        Err(e) => {
            stop_daemon(dir);
            return Err(e);
        }
    };
    let token = session["token"].as_str().unwrap_or_default();
    println!();
    println!("Session token (expires {}):", session["expiresAt"].as_str().unwrap_or(""));
    println!("{token}");
    println!();
    print!("{}", next_steps(dir, port, token, generated.then(|| dir.join(".master-password")).as_deref()));
    Ok(())
}

/// The commands to try next, each runnable as printed in a non-interactive shell: the program
/// as it was invoked, the data directory spelled out, and the operator's password named by its
/// file when quickstart generated one (a dev-mode or scripted password needs no flag or comes
/// from the caller's `WAIAAS_MASTER_PASSWORD`).
fn next_steps(dir: &Path, port: u16, token: &str, password_file: Option<&Path>) -> String {
    let exe = std::env::args().next().unwrap_or_else(|| "waiaas".into());
    let waiaas = format!("{} --data-dir {}", shell_word(&exe), shell_word(&dir.display().to_string()));
    let pw =
        password_file.map(|p| format!(" --password-file {}", shell_word(&p.display().to_string()))).unwrap_or_default();
    format!(
        "Next steps, each runnable as printed (the daemon runs in the background on port {port}):\n\
         export WAIAAS_SESSION_TOKEN=\"{token}\"\n\
         curl -s -H \"Authorization: Bearer $WAIAAS_SESSION_TOKEN\" http://127.0.0.1:{port}/v1/wallet/address\n\
         {waiaas} agent list{pw}\n\
         {waiaas} status\n\
         {waiaas} stop\n"
    )
}

/// `s` as one POSIX shell word: as is when it has no special characters, else single-quoted.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_./-=:@%+,".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
