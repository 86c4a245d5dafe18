//! Notifications (10-notifications-clients.md §1–4) against the recording receiver
//! (`support::receiver`): each channel kind's real wire format, 429 retries with the service's
//! own wait hint, fallback by priority, ALL_FAILED, signed webhooks verified by Python's `hmac`,
//! parallel broadcasts, deduplication, the minimum-channels rule under concurrency, retention
//! and bad input.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::receiver::Receiver;
use crate::support::{Opts, TestDaemon};

const SECRET: &str = "whsec-0123456789abcdef";

/// A dev-mode daemon with notifications on and `min_channels = 1` (unless `extra` sets it).
async fn daemon(extra: &[(&'static str, String)]) -> TestDaemon {
    let sets_min = extra.iter().any(|(s, l)| *s == "notifications" && l.contains("min_channels"));
    let base = if sets_min { "enabled = true" } else { "enabled = true\nmin_channels = 1" };
    let mut config = vec![("notifications", base.to_string())];
    config.extend(extra.iter().cloned());
    TestDaemon::start(Opts { dev: true, config, ..Opts::default() }).await
}

/// `POST /v1/owner/notification-channels`, asserting 201.
async fn channel(d: &TestDaemon, kind: &str, name: &str, config: Value, priority: i32) -> Value {
    let (st, v) = d
        .master(
            "POST",
            "/v1/owner/notification-channels",
            Some(json!({"type": kind, "name": name, "config": config, "priority": priority})),
        )
        .await;
    assert_eq!(st, 201, "create {kind} channel: {v}");
    v
}

/// A WEBHOOK channel at `/hooks/<name>` of `r`.
async fn webhook(d: &TestDaemon, r: &Receiver, name: &str, priority: i32) -> Value {
    r.behave(&format!("/hooks/{name}"), json!({"secret": SECRET})).await;
    channel(d, "WEBHOOK", name, json!({"url": r.url(&format!("/hooks/{name}")), "secret": SECRET}), priority).await
}

/// A Solana agent (no node needed: Solana adapters connect in the background).
async fn agent(d: &TestDaemon, name: &str) -> String {
    d.create_agent(json!({"name": name, "chain": "solana"})).await["id"].as_str().unwrap().to_string()
}

/// Creates a session (the daemon emits `SESSION_CREATED`); returns its id.
async fn session(d: &TestDaemon, agent: &str) -> String {
    d.create_session(agent, json!({})).await["sessionId"].as_str().unwrap().to_string()
}

/// Notification-log entries (oldest first), optionally of one event.
async fn log(d: &TestDaemon, event: Option<&str>) -> Vec<Value> {
    let q = match event {
        Some(e) => format!("/v1/owner/notification-log?limit=100&order=asc&event={e}"),
        None => "/v1/owner/notification-log?limit=100&order=asc".to_string(),
    };
    let (st, v) = d.master("GET", &q, None).await;
    assert_eq!(st, 200, "{v}");
    v["entries"].as_array().unwrap().clone()
}

/// Waits until the log holds an entry for `reference` with `status` and returns every entry of
/// that reference.
async fn wait_log(d: &TestDaemon, reference: &str, status: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows: Vec<Value> = log(d, None).await.into_iter().filter(|e| e["referenceId"] == reference).collect();
        if rows.iter().any(|e| e["status"] == status) {
            return rows;
        }
        assert!(Instant::now() < deadline, "no {status} entry for {reference}: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The shared part of each kind's test (ACC-236, ACC-237): `primary` (priority 10, the channel
/// under test, whose requests start with `prefix`) delivers and is the only one used; a 429
/// with a 1 s hint is retried once after about 1 s; a failure falls through to a WEBHOOK
/// fallback (priority 0); when both fail the log gets ALL_FAILED and the audit
/// NOTIFICATION_ALL_FAILED.
async fn priority_retry_fallback(d: &TestDaemon, r: &Receiver, prefix: &str, agent_id: &str) {
    let fallback = webhook(d, r, "fallback", 0).await;
    // Priority: only the primary is used.
    let s1 = session(d, agent_id).await;
    let rows = wait_log(d, &s1, "DELIVERED").await;
    assert_eq!(rows.len(), 1, "one channel, the highest priority: {rows:?}");
    assert_ne!(rows[0]["channelId"], fallback["id"]);
    assert!(r.requests_to("/hooks/fallback").await.iter().all(|q| q["json"]["event"] == "HEALTH_CHECK"));

    // ACC-237: a 429 with a 1 s hint is retried once, after the hint.
    r.behave(prefix, json!({"mode": "429", "times": 1, "retry_after": 1})).await;
    let before = r.requests_to(prefix).await.len();
    let s2 = session(d, agent_id).await;
    let rows = wait_log(d, &s2, "DELIVERED").await;
    assert_eq!((rows.len(), rows[0]["retryCount"].as_u64()), (1, Some(1)), "{rows:?}");
    let sent = r.requests_to(prefix).await;
    let (first, second) = (&sent[before], &sent[before + 1]);
    let gap = second["t"].as_f64().unwrap() - first["t"].as_f64().unwrap();
    assert!((0.9..5.0).contains(&gap), "retried after {gap} s");

    // A failure falls through to the next channel by priority.
    r.behave(prefix, json!({"mode": "fail"})).await;
    let s3 = session(d, agent_id).await;
    let rows = wait_log(d, &s3, "DELIVERED").await;
    let statuses: Vec<&str> = rows.iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["FAILED", "DELIVERED"], "{rows:?}");
    assert_eq!(rows[1]["channelId"], fallback["id"]);
    assert!(rows[0]["error"].as_str().unwrap().starts_with("HTTP "), "{rows:?}");

    // Nobody delivers: ALL_FAILED in the log (no channel) and a critical audit row.
    r.behave("/hooks/fallback", json!({"mode": "fail", "secret": SECRET})).await;
    let s4 = session(d, agent_id).await;
    let rows = wait_log(d, &s4, "ALL_FAILED").await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows[2]["channelId"].is_null());
    let audit = d.audit("NOTIFICATION_ALL_FAILED").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0]["severity"].as_str(), audit[0]["details"]["event"].as_str()),
        (Some("critical"), Some("SESSION_CREATED"))
    );
    r.behave(prefix, json!({"mode": "ok"})).await;
    r.behave("/hooks/fallback", json!({"mode": "ok", "secret": SECRET})).await;
}

// 10-notifications-clients.md §2 TELEGRAM; ACC-234, ACC-236, ACC-237.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_speaks_the_bot_api() {
    let r = Receiver::start();
    let d = daemon(&[]).await;
    // A token the Bot API refuses fails the health check: 400, nothing stored.
    let (st, v) = d
        .master(
            "POST",
            "/v1/owner/notification-channels",
            Some(json!({"type": "TELEGRAM", "name": "t", "config": {"botToken": "bad-token", "chatId": "1", "apiBaseUrl": r.url("")}})),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("INVALID_CHANNEL_CONFIG")), "{v}");
    assert!(v["details"]["error"].as_str().unwrap().contains("401"), "{v}");
    let token = "123456:ABC-DEF_secret";
    let c = channel(
        &d,
        "TELEGRAM",
        "telegram",
        json!({"botToken": token, "chatId": "-100777", "apiBaseUrl": r.url("")}),
        10,
    )
    .await;
    assert_eq!(c["config"]["botToken"], "****cret", "masked: {c}");
    assert_eq!(r.requests_to(&format!("/bot{token}/getMe")).await.len(), 1, "health-checked at creation");
    let a = agent(&d, "bot_1-a.b").await;
    let s = session(&d, &a).await;
    let sent = r.wait_for(&format!("/bot{token}/sendMessage"), 1).await;
    let q = &sent[0];
    assert_eq!(q["method"], "POST");
    assert!(q["headers"]["content-type"].as_str().unwrap().starts_with("application/json"));
    let j = &q["json"];
    assert_eq!(
        (j["chat_id"].as_str(), j["parse_mode"].as_str(), j["disable_web_page_preview"].as_bool()),
        (Some("-100777"), Some("MarkdownV2"), Some(true))
    );
    let text = j["text"].as_str().unwrap();
    assert!(text.starts_with("ℹ️ *Session created*\n\n"), "{text}");
    // Every MarkdownV2 special character is escaped, e.g. in the agent name and the dates.
    assert!(text.contains(r"bot\_1\-a\.b"), "{text}");
    assert!(text.contains(&format!("Session: {}", &s[..8])), "{text}");
    let last = text.lines().last().unwrap();
    assert!(last.starts_with('_') && last.ends_with("Z_") && last.contains(r"\-"), "italic escaped timestamp: {last}");
    assert!(text.chars().count() <= 4096);
    priority_retry_fallback(&d, &r, &format!("/bot{token}/sendMessage"), &a).await;
}

// §2 DISCORD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_posts_embeds_to_the_webhook() {
    let r = Receiver::start();
    let d = daemon(&[]).await;
    let url = r.url("/api/webhooks/1234/secret-token-path");
    let c = channel(&d, "DISCORD", "discord", json!({"webhookUrl": url}), 10).await;
    assert_eq!(c["config"]["webhookUrl"], format!("http://127.0.0.1:{}/****path", r.port), "masked: {c}");
    assert_eq!(r.requests_to("/api/webhooks/1234").await[0]["method"], "GET", "health check: GET the webhook");
    let a = agent(&d, "disc").await;
    session(&d, &a).await;
    let sent = r.wait_for("/api/webhooks/1234/secret-token-path", 2).await;
    let q = &sent[1];
    assert_eq!(q["method"], "POST");
    let j = &q["json"];
    assert_eq!(j["username"], "WAIaaS Security");
    let e = &j["embeds"][0];
    assert_eq!(
        (e["title"].as_str(), e["color"].as_u64(), e["footer"]["text"].as_str()),
        (Some("Session created"), Some(0x3498DB), Some("WAIaaS"))
    );
    assert!(e["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(e["description"].as_str().unwrap().contains("disc"));
    assert!(
        e["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "Agent" && f["value"] == "disc" && f["inline"] == true)
    );
    priority_retry_fallback(&d, &r, "/api/webhooks/1234/secret-token-path", &a).await;
}

// §2 NTFY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_posts_plain_text_with_title_priority_and_tags() {
    let r = Receiver::start();
    let d = daemon(&[]).await;
    let c = channel(
        &d,
        "NTFY",
        "ntfy",
        json!({"serverUrl": r.url(""), "topic": "waiaas-alerts", "authToken": "tk_ntfysecret"}),
        10,
    )
    .await;
    assert_eq!(c["config"]["authToken"], "****cret");
    assert_eq!(r.requests_to("/v1/health").await.len(), 1, "health: GET /v1/health");
    let a = agent(&d, "ntfy-agent").await;
    session(&d, &a).await;
    let sent = r.wait_for("/waiaas-alerts", 1).await;
    let q = &sent[0];
    let h = &q["headers"];
    assert_eq!(
        (q["method"].as_str(), h["title"].as_str(), h["priority"].as_str(), h["tags"].as_str()),
        (Some("POST"), Some("Session created"), Some("3"), Some("information_source,key"))
    );
    assert_eq!(h["authorization"], "Bearer tk_ntfysecret");
    assert!(h["content-type"].as_str().unwrap().starts_with("text/plain"));
    assert!(q["body"].as_str().unwrap().contains("ntfy-agent") && q["json"].is_null(), "plain text: {q}");
    priority_retry_fallback(&d, &r, "/waiaas-alerts", &a).await;
}

// §2 SLACK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_posts_attachments_and_health_checks_with_no_text() {
    let r = Receiver::start();
    let d = daemon(&[]).await;
    let url = r.url("/services/T000/B000/XXXXsecret");
    let c = channel(&d, "SLACK", "slack", json!({"webhookUrl": url}), 10).await;
    assert_eq!(c["config"]["webhookUrl"], format!("http://127.0.0.1:{}/****cret", r.port));
    let probe = &r.requests_to("/services/").await[0];
    assert_eq!((probe["method"].as_str(), probe["json"].clone()), (Some("POST"), json!({})), "the no_text probe");
    let a = agent(&d, "slack-agent").await;
    session(&d, &a).await;
    let sent = r.wait_for("/services/T000/B000/XXXXsecret", 2).await;
    let j = &sent[1]["json"];
    assert_eq!(j["text"], "Session created");
    let att = &j["attachments"][0];
    assert_eq!((att["color"].as_str(), att["title"].as_str()), (Some("#3498DB"), Some("Session created")));
    assert!(att["text"].as_str().unwrap().contains("slack-agent") && att["ts"].is_u64());
    assert!(att["fields"].as_array().unwrap().iter().all(|f| f["short"] == true));
    priority_retry_fallback(&d, &r, "/services/T000/B000/XXXXsecret", &a).await;
}

// §2 WEBHOOK; ACC-235: the signature is checked by Python's hmac, and a tampered body fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_and_verified_independently() {
    let r = Receiver::start();
    let d = daemon(&[]).await;
    let c = webhook(&d, &r, "main", 10).await;
    assert_eq!(c["config"]["secret"], "[REDACTED]");
    assert!(!c.to_string().contains(SECRET));
    let health = &r.requests_to("/hooks/main").await[0];
    assert_eq!(
        (health["json"]["event"].as_str(), health["signature_valid"].as_bool()),
        (Some("HEALTH_CHECK"), Some(true))
    );
    let a = agent(&d, "hooked").await;
    let s = session(&d, &a).await;
    let sent = r.wait_for("/hooks/main", 2).await;
    let q = &sent[1];
    let h = &q["headers"];
    let j = &q["json"];
    assert_eq!(q["signature_valid"], true, "Python hmac accepts the signature");
    assert_eq!(h["x-waiaas-event"], "SESSION_CREATED");
    assert_eq!(h["x-waiaas-delivery"], j["id"], "delivery id = body id");
    assert_eq!(uuid::Uuid::parse_str(j["id"].as_str().unwrap()).unwrap().get_version_num(), 4);
    assert_eq!(
        (j["event"].as_str(), j["level"].as_str(), j["referenceId"].as_str()),
        (Some("SESSION_CREATED"), Some("INFO"), Some(s.as_str()))
    );
    assert_eq!(j["metadata"]["agentName"], "hooked");
    assert!(j["createdAt"].as_str().unwrap().ends_with('Z') && j["title"].is_string() && j["body"].is_string());
    let (ts, sig, body) = (
        h["x-waiaas-timestamp"].as_str().unwrap(),
        h["x-waiaas-signature"].as_str().unwrap(),
        q["body"].as_str().unwrap(),
    );
    assert!(sig.starts_with("sha256="));
    assert!(r.verify(SECRET, ts, body, sig).await);
    let tampered = body.replacen("hooked", "hacked", 1);
    assert!(!r.verify(SECRET, ts, &tampered, sig).await, "a tampered body does not verify");
    assert!(!r.verify("another-secret-123456", ts, body, sig).await);
    // The channel under test falls back to another webhook.
    priority_retry_fallback(&d, &r, "/hooks/main", &a).await;
}

// ACC-238: the same event and reference within dedup_ttl is delivered once — also under 50
// concurrent emits — and SESSION_EXPIRING_SOON at most once per session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_delivered_once() {
    let r = Receiver::start();
    let d = daemon(&[]).await;
    webhook(&d, &r, "dedup", 0).await;
    let a = agent(&d, "dup").await;
    // A session with no renewals left: every renewal is refused and warns that it expires.
    let s = d.create_session(&a, json!({"maxRenewals": 0})).await;
    let token = s["token"].as_str().unwrap().to_string();
    let sid = s["sessionId"].as_str().unwrap().to_string();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (http, url, token) = (d.http.clone(), d.url(&format!("/v1/sessions/{sid}/renew")), token.clone());
            tokio::spawn(async move { http.put(url).bearer_auth(token).send().await.unwrap().status().as_u16() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 403, "RENEWAL_LIMIT_REACHED");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let warned: Vec<Value> = r
        .requests_to("/hooks/dedup")
        .await
        .into_iter()
        .filter(|q| q["json"]["event"] == "SESSION_EXPIRING_SOON")
        .collect();
    assert_eq!(warned.len(), 1, "50 concurrent emits, one delivery");
    assert_eq!(log(&d, Some("SESSION_EXPIRING_SOON")).await.len(), 1);
    // Another owner removal of the same agent within dedup_ttl is not sent again.
    let owner = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM";
    for _ in 0..2 {
        let (st, v) = d.master("PATCH", &format!("/v1/agents/{a}"), Some(json!({"owner": owner}))).await;
        assert_eq!(st, 200, "{v}");
        let (st, v) = d.master("PATCH", &format!("/v1/agents/{a}"), Some(json!({"owner": null}))).await;
        assert_eq!(st, 200, "{v}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(log(&d, Some("OWNER_REMOVED")).await.len(), 1);
}

// ACC-239 (with the integrity trigger, the one activation this build has): KILL_SWITCH_ACTIVATED
// reaches every enabled channel in parallel — three channels that each take 1 s are all done
// well under 3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_reach_every_channel_in_parallel() {
    let r = Receiver::start();
    let d = daemon(&[("security", "integrity_check_interval = 60".to_string())]).await;
    for name in ["b1", "b2", "b3"] {
        webhook(&d, &r, name, 0).await;
        r.behave(&format!("/hooks/{name}"), json!({"mode": "delay", "delay": 1, "secret": SECRET})).await;
    }
    let a = d.create_agent(json!({"name": "victim", "chain": "solana"})).await;
    std::fs::write(d.path().join(format!("keystore/{}.json", a["id"].as_str().unwrap())), "{}").unwrap();
    let t0 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    d.advance(60).await;
    // Every route but the allow-listed ones is locked now: watch the receiver, then read the
    // log from the database once the daemon stopped.
    let mut arrived = Vec::new();
    for n in ["b1", "b2", "b3"] {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let q = r.requests_to(&format!("/hooks/{n}")).await;
            if let Some(ks) = q.iter().find(|q| q["json"]["event"] == "KILL_SWITCH_ACTIVATED") {
                assert_eq!(ks["json"]["level"], "CRITICAL");
                arrived.push(ks["t"].as_f64().unwrap());
                break;
            }
            assert!(Instant::now() < deadline, "channel {n} never got the broadcast");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (first, last) =
        (arrived.iter().cloned().fold(f64::MAX, f64::min), arrived.iter().cloned().fold(f64::MIN, f64::max));
    assert!(last - first < 0.5, "all three were sent at once (spread {} s)", last - first);
    // Each channel answers 1 s after the request arrives: the broadcast is done 1 s after the
    // last arrival, well under the 3 s three channels in a row would take.
    let done = last + 1.0 - t0;
    assert!(done < 2.6, "three 1 s channels in parallel took {done:.2} s");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut d = d;
    d.terminate();
    let q = waiaas_storage::LogQuery { event: Some("KILL_SWITCH_ACTIVATED".into()), limit: 10, ..Default::default() };
    let (rows, _) = d.store().list_notification_log(&q).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|e| e.status == waiaas_storage::NotificationStatus::Delivered), "{rows:?}");
}

// ACC-240: 20 concurrent disables of different channels with min_channels = 10: exactly ten
// succeed, ten get MIN_CHANNELS_REQUIRED, and nothing is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minimum_holds_under_concurrent_disables() {
    let r = Receiver::start();
    let d = daemon(&[("notifications", "min_channels = 10".to_string())]).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(webhook(&d, &r, &format!("m{i}"), 0).await["id"].as_str().unwrap().to_string());
    }
    let tasks: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let (http, url, pw) =
                (d.http.clone(), d.url(&format!("/v1/owner/notification-channels/{id}")), d.password());
            tokio::spawn(async move {
                // Half disable with DELETE, half with PUT enabled:false: one rule for both.
                let req = if i % 2 == 0 { http.delete(url) } else { http.put(url).json(&json!({"enabled": false})) };
                let resp = req.header("X-Master-Password", pw).send().await.unwrap();
                let st = resp.status().as_u16();
                (st, resp.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let (st, v) = t.await.unwrap();
        match st {
            200 => ok += 1,
            400 => assert_eq!(v["code"], "MIN_CHANNELS_REQUIRED", "{v}"),
            other => panic!("{other}: {v}"),
        }
    }
    assert_eq!(ok, 10);
    let (_, list) = d.master("GET", "/v1/owner/notification-channels", None).await;
    let list = list["channels"].as_array().unwrap();
    assert_eq!(list.len(), 20, "no physical delete");
    assert_eq!(list.iter().filter(|c| c["enabled"] == true).count(), 10);
    assert_eq!(d.audit("NOTIFICATION_CHANNEL_DISABLED").await.len(), 10);
    // Re-enabling is always allowed; an unknown id is 404.
    let (st, _) = d
        .master(
            "PUT",
            &format!("/v1/owner/notification-channels/{}", list[0]["id"].as_str().unwrap()),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) =
        d.master("DELETE", "/v1/owner/notification-channels/0190b5a0-0000-7000-8000-000000000000", None).await;
    assert_eq!((st, v["code"].as_str()), (404, Some("CHANNEL_NOT_FOUND")));
}

// Bad input: malformed configs are refused with the field named and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_channel_configs_are_refused_with_the_field_named() {
    let r = Receiver::start();
    let d = daemon(&[]).await;
    let hook = r.url("/hooks/x");
    let cases = [
        (json!({"type": "WEBHOOK", "name": "a", "config": {"url": hook}}), 400, "INVALID_CHANNEL_CONFIG", "config"),
        (
            json!({"type": "WEBHOOK", "name": "a", "config": {"url": hook, "secret": "short"}}),
            400,
            "INVALID_CHANNEL_CONFIG",
            "config.secret",
        ),
        (
            json!({"type": "WEBHOOK", "name": "a", "config": {"url": "ftp://127.0.0.1/x", "secret": SECRET}}),
            400,
            "INVALID_CHANNEL_CONFIG",
            "config.url",
        ),
        (
            json!({"type": "DISCORD", "name": "a", "config": {"webhookUrl": hook, "colour": "red"}}),
            400,
            "INVALID_CHANNEL_CONFIG",
            "config.colour",
        ),
        (json!({"type": "TELEGRAM", "name": "a", "config": {"chatId": "1"}}), 400, "INVALID_CHANNEL_CONFIG", "config"),
        (
            json!({"type": "NTFY", "name": "a", "config": {"topic": "a b"}}),
            400,
            "INVALID_CHANNEL_CONFIG",
            "config.topic",
        ),
        (json!({"type": "SMS", "name": "a", "config": {}}), 400, "VALIDATION_ERROR", "type"),
        (
            json!({"type": "WEBHOOK", "name": "", "config": {"url": hook, "secret": SECRET}}),
            400,
            "VALIDATION_ERROR",
            "name",
        ),
        (
            json!({"type": "WEBHOOK", "name": "a", "config": {"url": hook, "secret": SECRET}, "extra": 1}),
            400,
            "VALIDATION_ERROR",
            "extra",
        ),
        (
            json!({"type": "WEBHOOK", "name": "a", "config": {"url": hook, "secret": SECRET}, "priority": 5000}),
            400,
            "VALIDATION_ERROR",
            "priority",
        ),
    ];
    for (body, status, code, path) in cases {
        let (st, v) = d.master("POST", "/v1/owner/notification-channels", Some(body.clone())).await;
        assert_eq!((st, v["code"].as_str()), (status, Some(code)), "{body}: {v}");
        let issue_path = v["details"]["issues"][0]["path"].as_str().unwrap_or_default();
        assert!(
            issue_path == path || issue_path.starts_with(&format!("{path}.")) || issue_path.ends_with(path),
            "{body}: named {issue_path:?}, not {path}"
        );
    }
    let (_, list) = d.master("GET", "/v1/owner/notification-channels", None).await;
    assert_eq!(list["channels"], json!([]), "nothing stored");
    assert!(d.audit("NOTIFICATION_CHANNEL_CREATED").await.is_empty());
    assert!(r.requests_to("/hooks/").await.is_empty(), "invalid configs are not even health-checked");
}

// ACC-107: revoking a renewed session within its reject window is a rejected renewal and says so;
// ACC-241: log rows past retention are deleted by the retention worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_rejection_is_sent_and_old_log_rows_expire() {
    let r = Receiver::start();
    let d = daemon(&[("notifications", "log_retention_days = 7".to_string())]).await;
    webhook(&d, &r, "sess", 0).await;
    let a = agent(&d, "renewer").await;
    let s = d.create_session(&a, json!({"expiresIn": 600})).await;
    let sid = s["sessionId"].as_str().unwrap().to_string();
    d.advance(301).await;
    let (st, v) = d.bearer("PUT", &format!("/v1/sessions/{sid}/renew"), s["token"].as_str().unwrap(), None).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = d.master("DELETE", &format!("/v1/sessions/{sid}"), None).await;
    assert_eq!((st, v["trigger"].as_str()), (200, Some("renewal_rejected")), "{v}");
    // (The clock advance also woke the channel-health worker: its probes are left out.)
    let deadline = Instant::now() + Duration::from_secs(15);
    let sent = loop {
        let sent: Vec<Value> =
            r.requests_to("/hooks/sess").await.into_iter().filter(|q| q["json"]["event"] != "HEALTH_CHECK").collect();
        if sent.len() >= 3 || Instant::now() > deadline {
            break sent;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let events: Vec<&str> = sent.iter().map(|q| q["json"]["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["SESSION_CREATED", "SESSION_RENEWED", "SESSION_RENEWAL_REJECTED"]);
    let renewed = &sent[1]["json"];
    assert_eq!(renewed["referenceId"], format!("{sid}:1"));
    // The log rows are written after the delivery returns, so they may trail the receiver.
    let deadline = Instant::now() + Duration::from_secs(15);
    while log(&d, None).await.len() < 3 {
        assert!(Instant::now() < deadline, "the three deliveries were not logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Eight days later the retention worker (woken by the clock) deletes them.
    d.advance(8 * 86_400).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    // Only rows older than the retention window must go (a delivery logged after the clock
    // moved is new and stays).
    let cutoff = crate::support::owner::daemon_now(&d).await - 7 * 86_400;
    let old = |rows: Vec<Value>| {
        rows.into_iter()
            .filter(|r| {
                let at = r["sentAt"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                at.is_none_or(|t| t.timestamp() < cutoff)
            })
            .collect::<Vec<_>>()
    };
    loop {
        let left = old(log(&d, None).await);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "log rows past retention were not deleted: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// The daemon keeps serving when every channel hangs: emits are queued, never awaited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_channel_never_blocks_a_response() {
    let r = Receiver::start();
    let d = daemon(&[]).await;
    webhook(&d, &r, "slowpoke", 0).await;
    r.behave("/hooks/slowpoke", json!({"mode": "hang", "secret": SECRET})).await;
    let a = agent(&d, "fast").await;
    let t0 = Instant::now();
    for _ in 0..5 {
        let s = session(&d, &a).await;
        let (st, _) = d.master("DELETE", &format!("/v1/sessions/{s}"), None).await;
        assert_eq!(st, 200);
    }
    // A delivery that blocked its request would cost the 10 s send timeout each time.
    assert!(t0.elapsed() < Duration::from_secs(5), "ten emitting requests took {:?}", t0.elapsed());
    let (_, status) = d.master("GET", "/v1/admin/status", None).await;
    assert_eq!(status["notifications"]["queue"]["dropped"], 0, "{status}");
    assert_eq!(status["notifications"]["enabledChannels"], 1);
}

/// A channel's `lastHealthCheck`, read from the listing.
async fn last_check(d: &TestDaemon, id: &str) -> Value {
    let (_, v) = d.master("GET", "/v1/owner/notification-channels", None).await;
    v["channels"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap()["lastHealthCheck"].clone()
}

/// Advances the dev clock by `secs` and waits until the health worker checked `id` again.
async fn health_run(d: &TestDaemon, id: &str, secs: u64) {
    let before = last_check(d, id).await;
    d.advance(secs).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while last_check(d, id).await == before {
        if Instant::now() > deadline {
            let (_, st) = d.master("GET", "/v1/admin/status", None).await;
            panic!("the channel-health worker did not run: {} {}", st["workers"], last_check(d, id).await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// §4 health worker: three failed checks in a row → CHANNEL_UNHEALTHY through the other
// channels, once until the channel recovers; channels are never disabled automatically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_channel_is_reported_once_through_the_others() {
    let r = Receiver::start();
    let d = daemon(&[("notifications", "health_check_interval = 60".to_string())]).await;
    let sick = webhook(&d, &r, "sick", 10).await["id"].as_str().unwrap().to_string();
    webhook(&d, &r, "well", 0).await;
    r.behave("/hooks/sick", json!({"mode": "fail", "secret": SECRET})).await;
    for _ in 0..4 {
        health_run(&d, &sick, 60).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reported = |reqs: Vec<Value>| reqs.into_iter().filter(|q| q["json"]["event"] == "CHANNEL_UNHEALTHY").count();
    assert_eq!(reported(r.requests_to("/hooks/well").await), 1, "announced once, through the other channel");
    assert_eq!(reported(r.requests_to("/hooks/sick").await), 0);
    let (_, list) = d.master("GET", "/v1/owner/notification-channels", None).await;
    let c = list["channels"].as_array().unwrap().iter().find(|c| c["id"] == sick.as_str()).unwrap().clone();
    assert_eq!((c["enabled"].as_bool(), c["lastHealthStatus"].as_bool()), (Some(true), Some(false)), "never disabled");
    // Once it recovered, a new run of failures is announced again.
    r.behave("/hooks/sick", json!({"mode": "ok", "secret": SECRET})).await;
    health_run(&d, &sick, 60).await;
    r.behave("/hooks/sick", json!({"mode": "fail", "secret": SECRET})).await;
    for _ in 0..3 {
        health_run(&d, &sick, 60).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(reported(r.requests_to("/hooks/well").await), 2);
}

// TX_FAILED (§3): a decided transaction that ends FAILED tells the owner; the pipeline's
// response is not delayed by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_transaction_is_notified() {
    let anvil = crate::support::nodes::Anvil::start();
    let r = Receiver::start();
    let rpc = ("rpc", format!("ethereum_testnet = \"{}\"\nethereum_testnet_chain_id = 31337", anvil.url));
    let d = daemon(&[rpc]).await;
    webhook(&d, &r, "tx", 0).await;
    let a = d.create_agent(json!({"name": "broke", "chain": "ethereum"})).await;
    let token = d.create_session(a["id"].as_str().unwrap(), json!({})).await["token"].as_str().unwrap().to_string();
    let (st, v) = d
        .bearer(
            "POST",
            "/v1/transactions/send",
            &token,
            Some(json!({"to": crate::support::owner::EVM_ADDR_1, "amount": "1000"})),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("INSUFFICIENT_BALANCE")), "{v}");
    let tx = v["details"]["transactionId"].as_str().unwrap();
    let rows = wait_log(&d, tx, "DELIVERED").await;
    assert_eq!(rows[0]["event"], "TX_FAILED");
    let sent = r.requests_to("/hooks/tx").await;
    let m = &sent.iter().find(|q| q["json"]["event"] == "TX_FAILED").unwrap()["json"];
    assert_eq!((m["level"].as_str(), m["metadata"]["txId"].as_str()), (Some("WARNING"), Some(tx)));
    assert!(m["body"].as_str().unwrap().contains("INSUFFICIENT_BALANCE"), "{m}");
    assert_eq!(
        (m["metadata"]["amount"].as_str(), m["metadata"]["symbol"].as_str()),
        (Some("0.000000000000001"), Some("ETH"))
    );
}

// `waiaas channel add|list|update|test|disable` (01-daemon.md §4.10) mirror the routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channel_cli_mirrors_the_routes() {
    let r = Receiver::start();
    let d = daemon(&[("notifications", "min_channels = 1".to_string())]).await;
    r.behave("/hooks/cli", json!({"secret": SECRET})).await;
    let file = d.path().join("channel.json");
    std::fs::write(
        &file,
        json!({"type": "WEBHOOK", "name": "from-cli", "config": {"url": r.url("/hooks/cli"), "secret": SECRET}})
            .to_string(),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut c = d.cli();
        c.env("WAIAAS_MASTER_PASSWORD", d.password()).args(args);
        crate::support::run(c, Duration::from_secs(30))
    };
    let out = run(&["channel", "add", "--file", file.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", crate::support::text(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["config"]["secret"], "[REDACTED]");
    let out = run(&["channel", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["channels"][0]["id"], id);
    let out = run(&["channel", "list"]);
    assert!(crate::support::text(&out.stdout).contains("from-cli"));
    std::fs::write(&file, json!({"name": "renamed", "priority": 7}).to_string()).unwrap();
    let out = run(&["channel", "update", id, "--file", file.to_str().unwrap(), "--json"]);
    let updated: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((updated["name"].as_str(), updated["priority"].as_i64()), (Some("renamed"), Some(7)));
    let out = run(&["channel", "test", id]);
    assert!(
        out.status.success() && crate::support::text(&out.stdout).contains("delivered"),
        "{}",
        crate::support::text(&out.stderr)
    );
    assert!(r.requests_to("/hooks/cli").await.iter().any(|q| q["json"]["event"] == "TEST"));
    // The last enabled channel with min_channels = 1: refused, exit 1 with the API code.
    let out = run(&["channel", "disable", id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        crate::support::text(&out.stderr).contains("MIN_CHANNELS_REQUIRED"),
        "{}",
        crate::support::text(&out.stderr)
    );
    let out = run(&["channel", "test", "0190b5a0-0000-7000-8000-000000000000", "--json"]);
    assert!(crate::support::text(&out.stderr).contains("CHANNEL_NOT_FOUND"));
}

// Issue #22: approval delivery under a flood of INFO events. 500 sessions are created in a
// burst (500 SESSION_CREATED, INFO), then an APPROVAL-tier send follows: its
// TX_APPROVAL_REQUEST (WARNING) reaches the owner's one channel within its 10 s bound — it may
// take the bucket's urgent reserve, which the INFO flood cannot — for every channel kind; the
// pending-approvals listing says the owner was told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_requests_get_through_a_flood_of_info_events_on_every_channel_kind() {
    use crate::support::owner::{EVM_ADDR_0, EVM_KEY_0, Msg};
    let anvil = crate::support::nodes::Anvil::start();
    let r = Receiver::start();
    r.behave("/hooks/owner", json!({"secret": SECRET})).await;
    let token = "123456:ABC-DEF_secret";
    let kinds = [
        (
            "TELEGRAM",
            json!({"botToken": token, "chatId": "-1", "apiBaseUrl": r.url("")}),
            format!("/bot{token}/sendMessage"),
        ),
        ("DISCORD", json!({"webhookUrl": r.url("/api/webhooks/9/flood")}), "/api/webhooks/9/flood".to_string()),
        ("NTFY", json!({"serverUrl": r.url(""), "topic": "flood"}), "/flood".to_string()),
        ("SLACK", json!({"webhookUrl": r.url("/services/T/B/flood")}), "/services/T/B/flood".to_string()),
        ("WEBHOOK", json!({"url": r.url("/hooks/owner"), "secret": SECRET}), "/hooks/owner".to_string()),
    ];
    for (kind, config, path) in kinds {
        let mut opts = crate::support::evm::opts(&anvil, &[]);
        opts.config.push(("notifications", "enabled = true\nmin_channels = 1".into()));
        opts.config.push((
            "security",
            "max_sessions_per_agent = 50\nrate_limit_global_ip_rpm = 10000\nrate_limit_session_rpm = 5000".into(),
        ));
        let d = TestDaemon::start(opts).await;
        channel(&d, kind, "owner", config, 10).await;
        // The owner's agent: a verified (LOCKED) owner, and 1 ETH is APPROVAL.
        let a = d.create_agent(json!({"chain": "ethereum", "owner": EVM_ADDR_0})).await;
        let aid = a["id"].as_str().unwrap().to_string();
        let m = Msg::new(&d, "ethereum", EVM_ADDR_0, "verify_owner", &format!("agent:{aid}"), "31337").await;
        let (st, v) = d.bearer("POST", &format!("/v1/owner/agents/{aid}/verify"), &m.evm(EVM_KEY_0), None).await;
        assert_eq!(st, 200, "{v}");
        crate::support::evm::send_eth(&anvil.url, a["address"].as_str().unwrap(), 2 * crate::support::api::ETH);
        d.policy(json!({"agentId": aid, "type": "SPENDING_LIMIT", "priority": 10, "rules": {
            "instant_max": "1", "notify_max": "1", "delay_max": "1", "delay_seconds": 60, "approval_timeout": 600}}))
            .await;
        let t = d.create_session(&aid, json!({})).await["token"].as_str().unwrap().to_string();
        // The flood: 10 agents × 50 sessions, 25 requests at a time.
        let mut flooders = Vec::new();
        for i in 0..10 {
            flooders.push(agent(&d, &format!("flood-{i}")).await);
        }
        let jobs: Vec<&String> = flooders.iter().flat_map(|a| std::iter::repeat_n(a, 50)).collect();
        for chunk in jobs.chunks(25) {
            futures_util::future::join_all(chunk.iter().map(|a| d.create_session(a, json!({})))).await;
        }
        let started = Instant::now();
        let (st, v) = crate::support::api::send(&d, &t, json!({"to": EVM_ADDR_0, "amount": "1000"})).await;
        assert_eq!((st, v["tier"].as_str()), (202, Some("APPROVAL")), "{kind}: {v}");
        let tx = v["transactionId"].as_str().unwrap().to_string();
        // The log filtered by event: the flood's 500 rows come first in the unfiltered one.
        let took = loop {
            let rows = log(&d, Some("TX_APPROVAL_REQUEST")).await;
            if rows.iter().any(|e| e["referenceId"] == tx.as_str() && e["status"] == "DELIVERED") {
                break started.elapsed();
            }
            assert!(started.elapsed() < Duration::from_secs(15), "{kind}: not delivered: {rows:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(took < Duration::from_secs(10), "{kind}: the approval request took {took:?}");
        assert!(
            r.requests_to(&path).await.iter().any(|q| q.to_string().contains(&tx[..8])),
            "{kind}: the service received the approval request"
        );
        // The flood did hit the limiter: most SESSION_CREATED were refused, none of them urgent.
        let limited = log(&d, Some("SESSION_CREATED")).await.iter().filter(|e| e["status"] == "RATE_LIMITED").count();
        assert!(limited > 0, "{kind}: the INFO flood was rate limited");
        let (_, pending) = d.master("GET", "/v1/owner/pending-approvals", None).await;
        let item = pending["transactions"].as_array().unwrap().iter().find(|i| i["txId"] == tx.as_str()).cloned();
        assert_eq!(item.map(|i| i["ownerNotified"].clone()), Some(json!(true)), "{kind}: {pending}");
    }
}
