//! Master password sources (01-daemon.md §3).
//!
//! Priority: the environment variable named by `--password-env` (removed from the process
//! environment as soon as it is read), then `--password-file` / `WAIAAS_MASTER_PASSWORD_FILE`
//! (first line, trimmed), then an interactive prompt when stdin is a TTY. The password lives in a
//! zeroizing [`SecretString`] and is never logged.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use super::{CliError, PasswordArgs};

pub(crate) use crate::runtime::config::DEV_PASSWORD;
use crate::runtime::config::MAX_PASSWORD_BYTES;

/// Reads and removes the environment variable `var`.
///
/// Must be called before any other thread exists: removing an environment variable is only
/// sound while the process is single-threaded. `main` guarantees that by calling commands
/// before building any runtime.
pub(crate) fn take_env(var: &str) -> Option<SecretString> {
    let value = std::env::var(var).ok().filter(|v| !v.is_empty());
    if value.is_some() {
        // SAFETY: called from the main thread before any runtime or helper thread is started
        // (see the function docs), so no other thread can read the environment concurrently.
        unsafe { std::env::remove_var(var) };
    }
    value.map(SecretString::from)
}

/// First line of `path`, trimmed. Warns when the file is readable by others.
pub(crate) fn read_file(path: &Path) -> Result<SecretString, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::general(format!("Error: cannot read password file {}: {e}", path.display())))?;
    if let Ok(mode) = waiaas_backends::fsutil::mode_of(path)
        && mode & 0o077 != 0
    {
        eprintln!("Warning: password file {} has mode {mode:04o}; use 0600.", path.display());
    }
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if line.is_empty() {
        return Err(CliError::general(format!("Error: password file {} is empty", path.display())));
    }
    Ok(SecretString::from(line))
}

/// The password file named by the flag or by `WAIAAS_MASTER_PASSWORD_FILE`.
pub(crate) fn file_source(args: &PasswordArgs) -> Option<PathBuf> {
    args.password_file
        .clone()
        .or_else(|| std::env::var_os("WAIAAS_MASTER_PASSWORD_FILE").filter(|v| !v.is_empty()).map(PathBuf::from))
}

/// Prompts on the terminal without echo.
pub(crate) fn prompt(label: &str) -> Result<SecretString, CliError> {
    rpassword::prompt_password(label)
        .map(SecretString::from)
        .map_err(|e| CliError::general(format!("Error: cannot read the password: {e}")))
}

/// Whether an interactive prompt is possible.
pub(crate) fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// Resolves the password from `env_value` (already taken), the file, or a prompt.
pub(crate) fn obtain(
    args: &PasswordArgs,
    env_value: Option<SecretString>,
    confirm: bool,
) -> Result<SecretString, CliError> {
    if let Some(pw) = env_value {
        return Ok(pw);
    }
    if let Some(path) = file_source(args) {
        return read_file(&path);
    }
    if interactive() {
        let pw = prompt("Master password: ")?;
        if confirm {
            let again = prompt("Confirm master password: ")?;
            if again.expose_secret() != pw.expose_secret() {
                return Err(CliError::general("Error: Passwords do not match."));
            }
        }
        return Ok(pw);
    }
    Err(CliError::general("No TTY detected and WAIAAS_MASTER_PASSWORD / WAIAAS_MASTER_PASSWORD_FILE not set"))
}

/// Checks the rules of 01-daemon.md §3.1 for a new password (`init`).
pub(crate) fn check_new(pw: &SecretString) -> Result<(), CliError> {
    let s = pw.expose_secret();
    if s.len() > MAX_PASSWORD_BYTES {
        return Err(CliError::general("Error: Master password too long (maximum 128 bytes)."));
    }
    let chars = s.chars().count();
    if s != DEV_PASSWORD && chars < 12 {
        return Err(CliError::general(format!(
            "Error: Master password too short (minimum 12 characters, got {chars})."
        )));
    }
    Ok(())
}
