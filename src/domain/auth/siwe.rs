//! EIP-4361 (Sign-In with Ethereum) messages, parsed in-house (04-auth.md §7.2).
//!
//! The parser covers the whole EIP-4361 grammar — optional `scheme://` prefix, optional
//! statement, optional `Expiration Time`, `Not Before`, `Request ID` and `Resources` — and the
//! same layout with the account word `Solana` (SIWS), where the chain id is a network name.
//! Parsing is strict: lines in the fixed order, `\n` separators, no trailing newline, no extra
//! lines; any deviation is an error naming the line. [`SiweMessage::to_string`] renders the exact
//! text back, so `parse(render(m)) == m` and `render(parse(s)) == s`.

use std::fmt;
use std::str::FromStr;

/// The account word of the first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Account {
    Ethereum,
    Solana,
}

impl Account {
    fn word(self) -> &'static str {
        match self {
            Account::Ethereum => "Ethereum",
            Account::Solana => "Solana",
        }
    }
}

/// A parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SiweMessage {
    pub(crate) scheme: Option<String>,
    pub(crate) domain: String,
    pub(crate) account: Account,
    pub(crate) address: String,
    pub(crate) statement: Option<String>,
    pub(crate) uri: String,
    pub(crate) version: String,
    pub(crate) chain_id: String,
    pub(crate) nonce: String,
    pub(crate) issued_at: String,
    pub(crate) expiration_time: Option<String>,
    pub(crate) not_before: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) resources: Vec<String>,
}

/// A malformed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed sign-in message, line {line}: {what}")]
pub(crate) struct ParseError {
    pub(crate) line: usize,
    pub(crate) what: String,
}

fn err(line: usize, what: impl Into<String>) -> ParseError {
    ParseError { line, what: what.into() }
}

fn valid_domain(d: &str) -> bool {
    // An RFC 3986 authority: no whitespace, no path or query characters.
    !d.is_empty() && d.chars().all(|c| c.is_ascii_alphanumeric() || "-._~:@[]!$&'()*+,;=%".contains(c))
}

fn valid_rfc3339(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// Parses an RFC 3339 time to unix seconds.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp())
}

impl FromStr for SiweMessage {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains('\r') {
            return Err(err(0, "carriage returns are not allowed; lines end with \\n"));
        }
        let lines: Vec<&str> = s.split('\n').collect();
        let mut i = 0;
        let line = |i: usize| lines.get(i).copied().ok_or_else(|| err(i + 1, "message ends too early"));

        // Line 1: [scheme "://"] domain " wants you to sign in with your <Account> account:"
        let first = line(i)?;
        let (head, account) = if let Some(h) = first.strip_suffix(" wants you to sign in with your Ethereum account:") {
            (h, Account::Ethereum)
        } else if let Some(h) = first.strip_suffix(" wants you to sign in with your Solana account:") {
            (h, Account::Solana)
        } else {
            return Err(err(1, "expected '<domain> wants you to sign in with your Ethereum|Solana account:'"));
        };
        let (scheme, domain) = match head.split_once("://") {
            Some((sch, d)) => {
                if sch.is_empty()
                    || !sch.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    || !sch.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                {
                    return Err(err(1, "invalid scheme"));
                }
                (Some(sch.to_string()), d)
            }
            None => (None, head),
        };
        if !valid_domain(domain) {
            return Err(err(1, "invalid domain"));
        }
        i += 1;

        // Line 2: address.
        let address = line(i)?;
        let address_ok = match account {
            Account::Ethereum => {
                address.len() == 42 && address.starts_with("0x") && address[2..].bytes().all(|b| b.is_ascii_hexdigit())
            }
            Account::Solana => {
                (32..=44).contains(&address.len()) && bs58::decode(address).into_vec().is_ok_and(|b| b.len() == 32)
            }
        };
        if !address_ok {
            return Err(err(2, "invalid address"));
        }
        if account == Account::Ethereum && waiaas_backends::seam::parse_evm_address(address).is_none() {
            return Err(err(2, "invalid EIP-55 checksum"));
        }
        i += 1;

        // Blank line, then an optional statement line and another blank line.
        if !line(i)?.is_empty() {
            return Err(err(i + 1, "expected an empty line after the address"));
        }
        i += 1;
        let statement = if line(i)?.is_empty() {
            i += 1;
            None
        } else {
            let st = line(i)?.to_string();
            i += 1;
            if !line(i)?.is_empty() {
                return Err(err(i + 1, "expected an empty line after the statement"));
            }
            i += 1;
            Some(st)
        };

        let field = |name: &str, i: &mut usize| -> Result<String, ParseError> {
            let l = line(*i)?;
            let v = l.strip_prefix(name).ok_or_else(|| err(*i + 1, format!("expected '{name}'")))?;
            *i += 1;
            Ok(v.to_string())
        };
        let uri = field("URI: ", &mut i)?;
        if uri.is_empty() || !uri.contains(':') || uri.contains(' ') {
            return Err(err(i, "invalid URI"));
        }
        let version = field("Version: ", &mut i)?;
        if version != "1" {
            return Err(err(i, "Version must be 1"));
        }
        let chain_id = field("Chain ID: ", &mut i)?;
        let chain_ok = match account {
            Account::Ethereum => !chain_id.is_empty() && chain_id.bytes().all(|b| b.is_ascii_digit()),
            Account::Solana => !chain_id.is_empty() && chain_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        };
        if !chain_ok {
            return Err(err(i, "invalid Chain ID"));
        }
        let nonce = field("Nonce: ", &mut i)?;
        if nonce.len() < 8 || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(err(i, "Nonce must be at least 8 alphanumeric characters"));
        }
        let issued_at = field("Issued At: ", &mut i)?;
        if !valid_rfc3339(&issued_at) {
            return Err(err(i, "Issued At is not an RFC 3339 time"));
        }
        let optional = |name: &str, i: &mut usize| -> Option<String> {
            let l = lines.get(*i)?;
            let v = l.strip_prefix(name)?;
            *i += 1;
            Some(v.to_string())
        };
        let expiration_time = optional("Expiration Time: ", &mut i);
        if expiration_time.as_deref().is_some_and(|t| !valid_rfc3339(t)) {
            return Err(err(i, "Expiration Time is not an RFC 3339 time"));
        }
        let not_before = optional("Not Before: ", &mut i);
        if not_before.as_deref().is_some_and(|t| !valid_rfc3339(t)) {
            return Err(err(i, "Not Before is not an RFC 3339 time"));
        }
        let request_id = optional("Request ID: ", &mut i);
        if request_id.as_deref().is_some_and(|r| r.is_empty() || r.chars().any(char::is_whitespace)) {
            return Err(err(i, "invalid Request ID"));
        }
        let mut resources = Vec::new();
        if lines.get(i) == Some(&"Resources:") {
            i += 1;
            while let Some(r) = lines.get(i).and_then(|l| l.strip_prefix("- ")) {
                if r.is_empty() || !r.contains(':') || r.contains(' ') {
                    return Err(err(i + 1, "invalid resource URI"));
                }
                resources.push(r.to_string());
                i += 1;
            }
            if resources.is_empty() {
                return Err(err(i + 1, "Resources: needs at least one '- <uri>' line"));
            }
        }
        if i != lines.len() {
            return Err(err(i + 1, "unexpected content (or a trailing newline)"));
        }
        Ok(SiweMessage {
            scheme,
            domain: domain.to_string(),
            account,
            address: address.to_string(),
            statement,
            uri,
            version,
            chain_id,
            nonce,
            issued_at,
            expiration_time,
            not_before,
            request_id,
            resources,
        })
    }
}

impl fmt::Display for SiweMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.scheme {
            write!(f, "{s}://")?;
        }
        write!(
            f,
            "{} wants you to sign in with your {} account:\n{}\n\n",
            self.domain,
            self.account.word(),
            self.address
        )?;
        // EIP-4361: `LF [statement LF] LF` — without a statement the two empty lines remain.
        match &self.statement {
            Some(st) => write!(f, "{st}\n\n")?,
            None => f.write_str("\n")?,
        }
        write!(
            f,
            "URI: {}\nVersion: {}\nChain ID: {}\nNonce: {}\nIssued At: {}",
            self.uri, self.version, self.chain_id, self.nonce, self.issued_at
        )?;
        if let Some(v) = &self.expiration_time {
            write!(f, "\nExpiration Time: {v}")?;
        }
        if let Some(v) = &self.not_before {
            write!(f, "\nNot Before: {v}")?;
        }
        if let Some(v) = &self.request_id {
            write!(f, "\nRequest ID: {v}")?;
        }
        if !self.resources.is_empty() {
            f.write_str("\nResources:")?;
            for r in &self.resources {
                write!(f, "\n- {r}")?;
            }
        }
        Ok(())
    }
}

/// The owner message of 04-auth.md §7.2.
#[allow(clippy::too_many_arguments)]
pub(crate) fn owner_message(
    domain: &str,
    account: Account,
    address: &str,
    action: &str,
    target: &str,
    chain_id: &str,
    nonce: &str,
    issued_at: &str,
    expiration_time: &str,
) -> SiweMessage {
    SiweMessage {
        scheme: None,
        domain: domain.into(),
        account,
        address: address.into(),
        statement: Some(format!("WAIaaS Owner Action: {action} {target}")),
        uri: format!("http://{domain}"),
        version: "1".into(),
        chain_id: chain_id.into(),
        nonce: nonce.into(),
        issued_at: issued_at.into(),
        expiration_time: Some(expiration_time.into()),
        not_before: None,
        request_id: Some(target.into()),
        resources: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EVM: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
    const SOL: &str = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM";

    fn template() -> String {
        owner_message(
            "localhost:3100",
            Account::Ethereum,
            EVM,
            "approve_tx",
            "tx:0190b5a0-0000-7000-8000-000000000000",
            "31337",
            "0123456789abcdef0123456789abcdef",
            "2025-01-31T12:00:00Z",
            "2025-01-31T12:05:00Z",
        )
        .to_string()
    }

    #[test]
    fn the_spec_template_round_trips() {
        let text = template();
        assert_eq!(
            text,
            "localhost:3100 wants you to sign in with your Ethereum account:\n0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\n\nWAIaaS Owner Action: approve_tx tx:0190b5a0-0000-7000-8000-000000000000\n\nURI: http://localhost:3100\nVersion: 1\nChain ID: 31337\nNonce: 0123456789abcdef0123456789abcdef\nIssued At: 2025-01-31T12:00:00Z\nExpiration Time: 2025-01-31T12:05:00Z\nRequest ID: tx:0190b5a0-0000-7000-8000-000000000000"
        );
        let m: SiweMessage = text.parse().unwrap();
        assert_eq!(m.to_string(), text);
        let sol = owner_message(
            "127.0.0.1:3100",
            Account::Solana,
            SOL,
            "recover",
            "system",
            "devnet",
            "abcdef0123456789",
            "2025-01-31T12:00:00.123Z",
            "2025-01-31T12:05:00Z",
        )
        .to_string();
        let m: SiweMessage = sol.parse().unwrap();
        assert_eq!((m.account, m.chain_id.as_str()), (Account::Solana, "devnet"));
        assert_eq!(m.to_string(), sol);
    }

    #[test]
    fn the_full_grammar_parses() {
        let text = "https://example.com wants you to sign in with your Ethereum account:\n0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\n\n\nURI: https://example.com/login\nVersion: 1\nChain ID: 1\nNonce: 32891756\nIssued At: 2021-09-30T16:25:24Z\nExpiration Time: 2021-10-01T16:25:24Z\nNot Before: 2021-09-30T16:25:24Z\nRequest ID: some-request\nResources:\n- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/\n- https://example.com/my-web2-claim.json";
        let m: SiweMessage = text.parse().unwrap();
        assert_eq!(m.scheme.as_deref(), Some("https"));
        assert_eq!(m.statement, None);
        assert_eq!(m.resources.len(), 2);
        assert_eq!(m.not_before.as_deref(), Some("2021-09-30T16:25:24Z"));
        assert_eq!(m.to_string(), text);
    }

    #[test]
    fn malformed_messages_are_refused_with_the_line() {
        let t = template();
        let cases: Vec<(String, usize)> = vec![
            (t.replace("Ethereum account:", "Bitcoin account:"), 1),
            (t.replace(EVM, "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266"), 2),
            (t.replace("Version: 1", "Version: 2"), 7),
            (t.replace("Chain ID: 31337", "Chain ID: devnet"), 8),
            (t.replace("Nonce: 0123456789abcdef0123456789abcdef", "Nonce: short"), 9),
            (t.replace("Issued At: 2025-01-31T12:00:00Z", "Issued At: yesterday"), 10),
            (format!("{t}\n"), 13),
            (t.replace('\n', "\r\n"), 0),
            (t.replace("\n\nURI", "\nURI"), 5),
        ];
        for (text, line) in cases {
            let e = text.parse::<SiweMessage>().unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        /// Fuzz: arbitrary text never panics the parser.
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC*") {
            let _ = s.parse::<SiweMessage>();
        }

        /// Fuzz: valid messages with random edits never panic, and whatever parses renders back
        /// to exactly its input.
        #[test]
        fn edited_messages_never_panic_and_round_trip(pos in 0usize..400, insert in "[\\x00-\\x7f]{0,3}", cut in 0usize..5) {
            let t = template();
            let pos = pos.min(t.len());
            let mut edited = t[..pos].to_string();
            edited.push_str(&insert);
            edited.push_str(&t[(pos + cut).min(t.len())..]);
            if let Ok(m) = edited.parse::<SiweMessage>() {
                prop_assert_eq!(m.to_string(), edited);
            }
        }
    }
}
