//! The five channel kinds (10-notifications-clients.md §2): typed, validated configuration,
//! masking for the API, and each service's real HTTP API — paths, JSON fields, headers,
//! MarkdownV2 escaping, length cuts, success rules, 429 wait hints and health checks.
//!
//! Secrets (bot tokens, webhook URLs whose path is the credential, ntfy tokens, HMAC secrets)
//! live in [`SecretString`]s and never reach a log: transport errors are stripped of their URL.

use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use uuid::Uuid;
use waiaas_storage::{ChannelType, NotificationLevel};

use super::message::{Message, Topic, webhook_body};
use crate::base::clock::iso;
use crate::base::error::ErrorCode;
use crate::base::validation::{Invalid, Issue, from_value};

/// Send timeout (§1).
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Health-check timeout (§1).
pub(crate) const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest text / description a channel accepts.
const MAX_TEXT: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TelegramIn {
    bot_token: String,
    chat_id: Value,
    api_base_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WebhookUrlIn {
    webhook_url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NtfyIn {
    server_url: Option<String>,
    topic: String,
    auth_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookIn {
    url: String,
    secret: String,
}

/// A channel's configuration, validated.
pub(crate) enum ChannelConfig {
    Telegram { bot_token: SecretString, chat_id: String, api_base_url: String },
    Discord { webhook_url: SecretString },
    Ntfy { server_url: String, topic: String, auth_token: Option<SecretString> },
    Slack { webhook_url: SecretString },
    Webhook { url: SecretString, secret: SecretString },
}

fn bad(path: &str, message: impl Into<String>) -> Invalid {
    let message = message.into();
    Invalid {
        code: ErrorCode::InvalidChannelConfig,
        message: format!("Invalid channel config: {message}"),
        issues: vec![Issue { path: format!("config.{path}"), code: "invalid_value".into(), message }],
    }
}

/// An absolute `http://` or `https://` URL with a host.
fn http_url(path: &str, v: &str) -> Result<String, Invalid> {
    let ok = reqwest::Url::parse(v).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    if !ok {
        return Err(bad(path, format!("{path} must be an http:// or https:// URL")));
    }
    Ok(v.trim_end_matches('/').to_string())
}

impl ChannelConfig {
    /// Parses and validates `config` for a channel of type `kind` (unknown fields, missing
    /// fields, URLs that are not http(s), secrets of the wrong length are refused with
    /// `INVALID_CHANNEL_CONFIG` naming the field).
    pub(crate) fn parse(kind: ChannelType, config: &Value) -> Result<ChannelConfig, Invalid> {
        if !config.is_object() {
            return Err(bad("", "config must be a JSON object"));
        }
        let shape = |e: Invalid| {
            let mut e = e.under("config");
            e.code = ErrorCode::InvalidChannelConfig;
            e.message =
                format!("Invalid channel config: {}", e.issues.first().map(|i| i.message.as_str()).unwrap_or(""));
            e
        };
        Ok(match kind {
            ChannelType::Telegram => {
                let c: TelegramIn = from_value(config).map_err(shape)?;
                if c.bot_token.trim().is_empty() {
                    return Err(bad("botToken", "botToken must not be empty"));
                }
                let chat_id = match &c.chat_id {
                    Value::String(s) if !s.trim().is_empty() => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => return Err(bad("chatId", "chatId must be a non-empty string or a number")),
                };
                let base = c.api_base_url.as_deref().unwrap_or("https://api.telegram.org");
                ChannelConfig::Telegram {
                    bot_token: SecretString::from(c.bot_token),
                    chat_id,
                    api_base_url: http_url("apiBaseUrl", base)?,
                }
            }
            ChannelType::Discord => {
                let c: WebhookUrlIn = from_value(config).map_err(shape)?;
                ChannelConfig::Discord { webhook_url: SecretString::from(http_url("webhookUrl", &c.webhook_url)?) }
            }
            ChannelType::Slack => {
                let c: WebhookUrlIn = from_value(config).map_err(shape)?;
                ChannelConfig::Slack { webhook_url: SecretString::from(http_url("webhookUrl", &c.webhook_url)?) }
            }
            ChannelType::Ntfy => {
                let c: NtfyIn = from_value(config).map_err(shape)?;
                let topic_ok = !c.topic.is_empty()
                    && c.topic.len() <= 64
                    && c.topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !topic_ok {
                    return Err(bad("topic", "topic must be 1-64 characters of A-Z a-z 0-9 _ -"));
                }
                ChannelConfig::Ntfy {
                    server_url: http_url("serverUrl", c.server_url.as_deref().unwrap_or("https://ntfy.sh"))?,
                    topic: c.topic,
                    auth_token: c.auth_token.filter(|t| !t.is_empty()).map(SecretString::from),
                }
            }
            ChannelType::Webhook => {
                let c: WebhookIn = from_value(config).map_err(shape)?;
                let n = c.secret.chars().count();
                if !(16..=256).contains(&n) {
                    return Err(bad("secret", format!("secret must be 16-256 characters, got {n}")));
                }
                ChannelConfig::Webhook {
                    url: SecretString::from(http_url("url", &c.url)?),
                    secret: SecretString::from(c.secret),
                }
            }
        })
    }
}

/// The last four characters of a secret behind asterisks.
fn last4(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("****{tail}")
}

/// A URL whose path is the credential: scheme and host kept, the path masked but its last four
/// characters.
fn mask_url_path(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = match u.port() {
                Some(p) => format!("{}:{p}", u.host_str().unwrap_or("")),
                None => u.host_str().unwrap_or("").to_string(),
            };
            format!("{}://{host}/{}", u.scheme(), last4(u.path().trim_start_matches('/')))
        }
        Err(_) => "****".into(),
    }
}

/// The stored config with every secret masked (§2 "masked in API").
pub(crate) fn mask(kind: ChannelType, config: &Value) -> Value {
    let mut out: Map<String, Value> = config.as_object().cloned().unwrap_or_default();
    let mut apply = |key: &str, f: &dyn Fn(&str) -> String| {
        if let Some(Value::String(v)) = out.get(key).cloned() {
            out.insert(key.into(), Value::String(f(&v)));
        }
    };
    match kind {
        ChannelType::Telegram => apply("botToken", &last4),
        ChannelType::Discord | ChannelType::Slack => apply("webhookUrl", &mask_url_path),
        ChannelType::Ntfy => apply("authToken", &last4),
        ChannelType::Webhook => {
            apply("secret", &|_| "[REDACTED]".to_string());
            apply("url", &mask_url_path);
        }
    }
    Value::Object(out)
}

/// What one send achieved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SendResult {
    Delivered,
    /// Refused with 429: wait this long (the service's own hint) before retrying.
    RateLimited {
        retry_after: Duration,
    },
    Failed(String),
}

fn emoji(level: NotificationLevel) -> &'static str {
    match level {
        NotificationLevel::Critical => "🚨",
        NotificationLevel::Warning => "⚠️",
        NotificationLevel::Info => "ℹ️",
    }
}

/// Escapes every MarkdownV2 special character (Telegram Bot API, "MarkdownV2 style").
pub(crate) fn escape_markdown_v2(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if "_*[]()~`>#+-=|{}.!\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Cuts `s` to at most `max` characters without splitting an escape (`\x`).
fn cut_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    let trailing = out.chars().rev().take_while(|c| *c == '\\').count();
    if trailing % 2 == 1 {
        out.pop();
    }
    out
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn cut_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The Telegram text: level emoji, bold title, body, a metadata line, italic timestamp.
pub(crate) fn telegram_text(m: &Message) -> String {
    let mut t = format!("{} *{}*\n\n{}", emoji(m.level), escape_markdown_v2(&m.title), escape_markdown_v2(&m.body));
    let fields = m.metadata.fields();
    if !fields.is_empty() {
        let line: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        t.push_str(&format!("\n\n{}", escape_markdown_v2(&line.join(" | "))));
    }
    t.push_str(&format!("\n\n_{}_", escape_markdown_v2(&iso(m.created_at))));
    cut_chars(&t, MAX_TEXT)
}

fn color_int(level: NotificationLevel) -> u32 {
    match level {
        NotificationLevel::Critical => 0xFF0000,
        NotificationLevel::Warning => 0xFFA500,
        NotificationLevel::Info => 0x3498DB,
    }
}

/// The Discord webhook body.
pub(crate) fn discord_body(m: &Message) -> Value {
    let fields: Vec<Value> =
        m.metadata.fields().into_iter().map(|(k, v)| json!({"name": k, "value": v, "inline": true})).collect();
    json!({
        "username": "WAIaaS Security",
        "embeds": [{
            "title": m.title,
            "description": cut_chars(&m.body, MAX_TEXT),
            "color": color_int(m.level),
            "fields": fields,
            "footer": {"text": "WAIaaS"},
            "timestamp": iso(m.created_at),
        }],
    })
}

/// The Slack incoming-webhook body.
pub(crate) fn slack_body(m: &Message) -> Value {
    let color = match m.level {
        NotificationLevel::Critical => "#FF0000",
        NotificationLevel::Warning => "#FFA500",
        NotificationLevel::Info => "#3498DB",
    };
    let fields: Vec<Value> =
        m.metadata.fields().into_iter().map(|(k, v)| json!({"title": k, "value": v, "short": true})).collect();
    json!({
        "text": m.title,
        "attachments": [{"color": color, "title": m.title, "text": m.body, "fields": fields, "ts": m.created_at}],
    })
}

/// ntfy's `Priority` and `Tags` headers.
pub(crate) fn ntfy_headers(m: &Message) -> (u8, String) {
    let (priority, tag) = match m.level {
        NotificationLevel::Critical => (5, "rotating_light"),
        NotificationLevel::Warning => (4, "warning"),
        NotificationLevel::Info => (3, "information_source"),
    };
    let mut tags = vec![tag];
    match m.event.topic() {
        Topic::Transaction => tags.push("money_with_wings"),
        Topic::Emergency => tags.push("octagonal_sign"),
        Topic::Session => tags.push("key"),
        Topic::System => {}
    }
    (priority, tags.join(","))
}

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`.
pub(crate) fn webhook_signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait a 429 answer asks for: Telegram `parameters.retry_after`, Discord `retry_after`
/// (seconds, possibly fractional), else the `Retry-After` header; 1 s when none is given.
fn retry_after(headers: &reqwest::header::HeaderMap, body: &Value) -> Duration {
    let secs = body["parameters"]["retry_after"]
        .as_f64()
        .or_else(|| body["retry_after"].as_f64())
        .or_else(|| headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(1.0);
    Duration::from_secs_f64(secs.clamp(0.0, 3600.0))
}

/// A transport error without the URL (the URL can be the credential).
fn transport(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    format!("{kind}: {}", e.without_url())
}

impl ChannelConfig {
    /// Sends `m`. `delivery` is the WEBHOOK delivery id (UUID v4).
    pub(crate) async fn send(&self, http: &reqwest::Client, m: &Message, delivery: Uuid, now: u64) -> SendResult {
        let request = match self {
            ChannelConfig::Telegram { bot_token, chat_id, api_base_url } => {
                http.post(format!("{api_base_url}/bot{}/sendMessage", bot_token.expose_secret())).json(&json!({
                    "chat_id": chat_id,
                    "text": telegram_text(m),
                    "parse_mode": "MarkdownV2",
                    "disable_web_page_preview": true,
                }))
            }
            ChannelConfig::Discord { webhook_url } => http.post(webhook_url.expose_secret()).json(&discord_body(m)),
            ChannelConfig::Slack { webhook_url } => http.post(webhook_url.expose_secret()).json(&slack_body(m)),
            ChannelConfig::Ntfy { server_url, topic, auth_token } => {
                let (priority, tags) = ntfy_headers(m);
                let text = format!("{}\n\n{}", m.body, {
                    let f: Vec<String> = m.metadata.fields().iter().map(|(k, v)| format!("{k}: {v}")).collect();
                    f.join("\n")
                });
                let mut r = http
                    .post(format!("{server_url}/{topic}"))
                    .header("Title", ascii_header(&m.title))
                    .header("Priority", priority.to_string())
                    .header("Tags", tags)
                    .header("Content-Type", "text/plain; charset=utf-8")
                    .body(cut_bytes(text.trim_end(), MAX_TEXT).to_string());
                if let Some(t) = auth_token {
                    r = r.bearer_auth(t.expose_secret());
                }
                r
            }
            ChannelConfig::Webhook { url, secret } => {
                let body = serde_json::to_vec(&webhook_body(m, delivery)).expect("JSON");
                http.post(url.expose_secret())
                    .header("Content-Type", "application/json")
                    .header("X-WAIaaS-Event", m.event.as_str())
                    .header("X-WAIaaS-Delivery", delivery.to_string())
                    .header("X-WAIaaS-Timestamp", now.to_string())
                    .header("X-WAIaaS-Signature", webhook_signature(secret.expose_secret().as_bytes(), now, &body))
                    .body(body)
            }
        };
        let resp = match request.timeout(SEND_TIMEOUT).send().await {
            Ok(r) => r,
            Err(e) => return SendResult::Failed(transport(e)),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 429 {
            return SendResult::RateLimited { retry_after: retry_after(&headers, &body) };
        }
        let ok = match self {
            ChannelConfig::Telegram { .. } => status == 200 && body["ok"] == Value::Bool(true),
            ChannelConfig::Discord { .. } => status == 200 || status == 204,
            ChannelConfig::Slack { .. } => status == 200 && text.trim() == "ok",
            ChannelConfig::Ntfy { .. } => status == 200,
            ChannelConfig::Webhook { .. } => (200..300).contains(&status),
        };
        if ok {
            SendResult::Delivered
        } else {
            let detail = body["description"]
                .as_str()
                .or(body["message"].as_str())
                .map(str::to_string)
                .unwrap_or_else(|| cut_bytes(text.trim(), 200).to_string());
            SendResult::Failed(format!("HTTP {status}: {detail}"))
        }
    }

    /// The service's health check (§2): `Ok` or why not.
    pub(crate) async fn health_check(&self, http: &reqwest::Client, now: u64) -> Result<(), String> {
        let request = match self {
            ChannelConfig::Telegram { bot_token, api_base_url, .. } => {
                http.get(format!("{api_base_url}/bot{}/getMe", bot_token.expose_secret()))
            }
            ChannelConfig::Discord { webhook_url } => http.get(webhook_url.expose_secret()),
            ChannelConfig::Ntfy { server_url, .. } => http.get(format!("{server_url}/v1/health")),
            // Slack validates the URL without posting: an empty payload is refused as `no_text`.
            ChannelConfig::Slack { webhook_url } => http.post(webhook_url.expose_secret()).json(&json!({})),
            ChannelConfig::Webhook { .. } => {
                return match self.send(http, &Message::health_check(now), Uuid::new_v4(), now).await {
                    SendResult::Delivered => Ok(()),
                    SendResult::RateLimited { .. } => Err("HTTP 429".into()),
                    SendResult::Failed(e) => Err(e),
                };
            }
        };
        let resp = request.timeout(HEALTH_TIMEOUT).send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let healthy = match self {
            ChannelConfig::Telegram { .. } => status == 200 && body["ok"] == Value::Bool(true),
            ChannelConfig::Discord { .. } => status == 200,
            ChannelConfig::Ntfy { .. } => status == 200 && body["healthy"] == Value::Bool(true),
            ChannelConfig::Slack { .. } => status == 400 && text.trim() == "no_text",
            ChannelConfig::Webhook { .. } => unreachable!("handled above"),
        };
        if healthy { Ok(()) } else { Err(format!("HTTP {status}: {}", cut_bytes(text.trim(), 200))) }
    }
}

/// HTTP header values must be visible ASCII: other characters become `?`.
fn ascii_header(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_v2_escapes_every_special_character_and_cuts_whole_escapes() {
        assert_eq!(
            escape_markdown_v2("a_b*c[d](e)~f`g>h#i+j-k=l|m{n}o.p!q\\r"),
            r"a\_b\*c\[d\]\(e\)\~f\`g\>h\#i\+j\-k\=l\|m\{n\}o\.p\!q\\r"
        );
        // A cut never leaves a lone backslash at the end.
        assert_eq!(cut_chars(r"ab\.", 3), "ab");
        assert_eq!(cut_chars("abcdef", 4), "abcd");
    }

    #[test]
    fn configs_are_validated_with_the_field_named_and_masked() {
        let bad_cases = [
            (ChannelType::Webhook, json!({"url": "http://x.test/hook", "secret": "short"}), "config.secret"),
            (ChannelType::Webhook, json!({"url": "ftp://x.test/hook", "secret": "0123456789abcdef"}), "config.url"),
            (ChannelType::Webhook, json!({"secret": "0123456789abcdef"}), "config"),
            (ChannelType::Discord, json!({"webhookUrl": "http://x.test/a", "extra": 1}), "config.extra"),
            (ChannelType::Telegram, json!({"botToken": "t", "chatId": []}), "config.chatId"),
            (ChannelType::Ntfy, json!({"topic": "has space"}), "config.topic"),
        ];
        for (kind, cfg, path) in bad_cases {
            let e = ChannelConfig::parse(kind, &cfg).err().unwrap_or_else(|| panic!("{cfg} accepted"));
            assert_eq!(e.code, ErrorCode::InvalidChannelConfig);
            assert_eq!(e.issues[0].path, path, "{cfg}: {:?}", e.issues);
        }
        let m = mask(ChannelType::Telegram, &json!({"botToken": "123456:ABCDEF", "chatId": "42"}));
        assert_eq!(m, json!({"botToken": "****CDEF", "chatId": "42"}));
        let m =
            mask(ChannelType::Discord, &json!({"webhookUrl": "https://discord.test:8443/api/webhooks/1/secretpath"}));
        assert_eq!(m["webhookUrl"], "https://discord.test:8443/****path");
        let m = mask(ChannelType::Webhook, &json!({"url": "http://h.test/x/y", "secret": "0123456789abcdef"}));
        assert_eq!(m["secret"], "[REDACTED]");
    }

    #[test]
    fn ntfy_tags_follow_the_event_family() {
        let m = Message::kill_switch_activated("r", "admin", 0);
        assert_eq!(ntfy_headers(&m), (5, "rotating_light,octagonal_sign".into()));
    }
}
