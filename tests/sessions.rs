//! masterAuth, sessionAuth, sessions and JWT rotation against the real daemon (04-auth.md
//! §2–§6; ACC-086 … ACC-113). Time-dependent cases run in dev mode and move the daemon's clock.

use base64::Engine;
use serde_json::{Value, json};

use crate::support::{Opts, TestDaemon};

fn dev() -> Opts {
    Opts { dev: true, ..Opts::default() }
}

fn b64json(part: &str) -> Value {
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn iso_secs(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap().timestamp()
}

async fn agent_and_session(d: &TestDaemon, extra: Value) -> (Value, Value) {
    let agent = d.create_agent(json!({})).await;
    let session = d.create_session(agent["id"].as_str().unwrap(), extra).await;
    (agent, session)
}

// ACC-086, ACC-087: required, wrong (audited), lockout after five failures, reset by success.
daemon_test!(master_password_failures_lock_out_after_five, |d| {
    let body = Some(json!({"agentId": "01a20720-0000-7000-8000-000000000000"}));
    let (s, v) = d.call("POST", "/v1/sessions", &[], body.clone()).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("MASTER_PASSWORD_REQUIRED")));
    let wrong = [("X-Master-Password", "not the password".to_string())];
    // Four failures, then the right password resets the counter.
    for _ in 0..4 {
        let (s, v) = d.call("POST", "/v1/sessions", &wrong, body.clone()).await;
        assert_eq!((s, v["code"].as_str()), (401, Some("INVALID_MASTER_PASSWORD")));
    }
    let (s, _) = d.master("GET", "/v1/admin/status", None).await;
    assert_eq!(s, 200);
    for _ in 0..4 {
        let (s, _) = d.call("GET", "/v1/admin/status", &wrong, None).await;
        assert_eq!(s, 401, "the counter was reset by the success");
    }
    // The fifth consecutive failure locks; the sixth request is 429 even with the right password.
    let (s, _) = d.call("GET", "/v1/admin/status", &wrong, None).await;
    assert_eq!(s, 401);
    let r = d.http.get(d.url("/v1/admin/status")).header("X-Master-Password", d.password()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1790..=1800).contains(&retry), "Retry-After {retry}");
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "MASTER_PASSWORD_LOCKED");
    let mut d = d;
    d.terminate();
    let store = d.store();
    assert_eq!(store.audit_by_event("AUTH_FAILED").unwrap().len(), 9);
    assert_eq!(store.audit_by_event("MASTER_AUTH_LOCKED").unwrap().len(), 1);
});

// ACC-088: after the first success, further requests run no Argon2id.
daemon_test!(master_auth_cache_runs_no_argon2id, |d| {
    let count = |v: &Value| v["masterAuth"]["argon2Verifications"].as_u64().unwrap();
    let (_, before) = d.master("GET", "/v1/admin/status", None).await;
    for _ in 0..100 {
        assert_eq!(d.master("GET", "/v1/admin/audit-log/verify", None).await.0, 200);
    }
    let (_, after) = d.master("GET", "/v1/admin/status", None).await;
    assert_eq!(count(&after), count(&before), "cache hits only");
    // A cache miss does run one (the counter is real).
    d.call("GET", "/v1/admin/status", &[("X-Master-Password", "a different password".into())], None).await;
    let (_, last) = d.master("GET", "/v1/admin/status", None).await;
    assert_eq!(count(&last), count(&after) + 1);
});

// ACC-089, ACC-090, ACC-091, ACC-092, ACC-097, ACC-099.
daemon_test!(sessions_issue_hs256_tokens_that_only_their_agent_uses, |d| {
    let (agent, s) = agent_and_session(&d, json!({})).await;
    let token = s["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("wai_sess_"));
    let now = chrono::Utc::now().timestamp();
    assert!((iso_secs(&s["expiresAt"]) - (now + 86_400)).abs() <= 5);
    let parts: Vec<&str> = token["wai_sess_".len()..].split('.').collect();
    assert_eq!(b64json(parts[0])["alg"], "HS256");
    let claims = b64json(parts[1]);
    assert_eq!(claims["iss"], "waiaas");
    assert_eq!(claims["sid"], s["sessionId"]);
    assert_eq!(claims["jti"], s["sessionId"]);
    assert_eq!(claims["aid"], agent["id"]);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 86_400);
    // agentName works instead of agentId.
    let (st, by_name) = d.master("POST", "/v1/sessions", Some(json!({"agentName": agent["name"]}))).await;
    assert_eq!(st, 201, "{by_name}");
    assert_eq!(by_name["agentId"], agent["id"]);

    // A token is not a master credential.
    let (st, v) = d.bearer("POST", "/v1/agents", &token, Some(json!({}))).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("MASTER_PASSWORD_REQUIRED")));
    // Missing or malformed tokens.
    let (st, v) = d.call("GET", "/v1/wallet/address", &[], None).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("AUTH_TOKEN_MISSING")));
    let (st, v) = d.bearer("GET", "/v1/wallet/address", "abc", None).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("AUTH_TOKEN_MISSING")));
    // The agent's own address; its sessions only, never a token.
    let (st, w) = d.bearer("GET", "/v1/wallet/address", &token, None).await;
    assert_eq!(st, 200);
    assert_eq!((w["address"].clone(), w["encoding"].as_str()), (agent["address"].clone(), Some("base58")));
    let other = d.create_agent(json!({})).await;
    d.create_session(other["id"].as_str().unwrap(), json!({})).await;
    let (st, list) = d.bearer("GET", "/v1/sessions", &token, None).await;
    assert_eq!(st, 200);
    let items = list["sessions"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i["agentId"] == agent["id"] && i.get("token").is_none()));
    let (_, all) = d.master("GET", "/v1/sessions", None).await;
    assert_eq!(all["sessions"].as_array().unwrap().len(), 3);
    let theirs = all["sessions"].as_array().unwrap().iter().find(|x| x["agentId"] == other["id"]).unwrap();
    let (st, v) = d.bearer("GET", &format!("/v1/sessions/{}", theirs["id"].as_str().unwrap()), &token, None).await;
    assert_eq!((st, v["code"].as_str()), (404, Some("SESSION_NOT_FOUND")), "another agent's session is invisible");

    // Only the hash is stored; no log line holds a token.
    let mut d = d;
    d.terminate();
    let db = std::fs::read(d.path().join("data/waiaas.redb")).unwrap();
    let signature = parts[2].as_bytes();
    assert!(!db.windows(signature.len()).any(|w| w == signature), "the token's signature is not in the database");
    let logs = std::fs::read_to_string(d.path().join("logs/daemon.log")).unwrap_or_default()
        + &d.stdout_text()
        + &d.stderr_text();
    assert!(!logs.contains(parts[2]) && !logs.contains("wai_sess_ey"), "a token reached the logs");
    let stored = d.store().session_by_token_hash(&sha256(&token)).unwrap().unwrap();
    assert_eq!(stored.id.to_string(), s["sessionId"].as_str().unwrap());
});

fn sha256(s: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes()).into()
}

// ACC-093, ACC-094, ACC-095, ACC-096, ACC-101.
daemon_test!(session_creation_validates_limits_and_agent_state, |d| {
    let agent = d.create_agent(json!({})).await;
    let id = agent["id"].as_str().unwrap();
    for (exp, ok) in [(299, false), (604_801, false), (300, true), (604_800, true)] {
        let (st, v) = d.master("POST", "/v1/sessions", Some(json!({"agentId": id, "expiresIn": exp}))).await;
        if ok {
            assert_eq!(st, 201, "{exp}: {v}");
        } else {
            assert_eq!((st, v["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{exp}");
        }
    }
    // Flat and nested: nested wins; operations are stored uppercase.
    let s = d
        .create_session(
            id,
            json!({"maxAmountPerTx": "100", "allowedOperations": ["transfer"],
                   "constraints": {"maxAmountPerTx": "7", "maxTransactions": 3}}),
        )
        .await;
    assert_eq!(s["constraints"]["maxAmountPerTx"], "7");
    assert_eq!(s["constraints"]["maxTransactions"], 3);
    assert_eq!(s["constraints"]["allowedOperations"], json!(["TRANSFER"]));
    for bad in [
        json!({"allowedOperations": []}),
        json!({"allowedOperations": ["TRANSFER", "transfer"]}),
        json!({"allowedDestinations": ["0xnot-a-solana-address"]}),
        json!({"maxAmountPerTx": "1.5"}),
        json!({"maxRenewals": 101}),
        json!({"unknownField": 1}),
    ] {
        let mut body = bad.clone();
        body["agentId"] = json!(id);
        let (st, v) = d.master("POST", "/v1/sessions", Some(body)).await;
        assert_eq!((st, v["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{bad}");
    }
    // Three live sessions so far; fill up to five, then the sixth is refused.
    d.create_session(id, json!({})).await;
    d.create_session(id, json!({})).await;
    let (st, v) = d.master("POST", "/v1/sessions", Some(json!({"agentId": id}))).await;
    assert_eq!(
        (st, v["code"].as_str(), v["details"]["code"].as_str()),
        (403, Some("SESSION_LIMIT_EXCEEDED"), Some("MAX_SESSIONS_PER_AGENT"))
    );
    assert_eq!((v["details"]["limit"].as_u64(), v["details"]["current"].as_u64()), (Some(5), Some(5)));
    // Unknown and suspended agents.
    let (st, v) =
        d.master("POST", "/v1/sessions", Some(json!({"agentId": "01a20720-0000-7000-8000-000000000000"}))).await;
    assert_eq!((st, v["code"].as_str()), (404, Some("AGENT_NOT_FOUND")));
    let (st, v) = d.master("POST", "/v1/sessions", Some(json!({"agentName": "nobody"}))).await;
    assert_eq!((st, v["code"].as_str()), (404, Some("AGENT_NOT_FOUND")));
    let other = d.create_agent(json!({})).await;
    let oid = other["id"].as_str().unwrap();
    let token = d.create_session(oid, json!({})).await["token"].as_str().unwrap().to_string();
    assert_eq!(d.master("POST", &format!("/v1/agents/{oid}/suspend"), Some(json!({}))).await.0, 200);
    let (st, v) = d.master("POST", "/v1/sessions", Some(json!({"agentId": oid}))).await;
    assert_eq!((st, v["code"].as_str()), (409, Some("AGENT_SUSPENDED")));
    let (st, v) = d.bearer("GET", "/v1/wallet/address", &token, None).await;
    assert_eq!((st, v["code"].as_str()), (409, Some("AGENT_SUSPENDED")));
});

// ACC-098: tampered signature, alg none, HS512, expired.
daemon_test!(forged_and_expired_tokens_are_refused, dev(), |d| {
    let (_, s) = agent_and_session(&d, json!({"expiresIn": 300})).await;
    let token = s["token"].as_str().unwrap().to_string();
    let parts: Vec<String> = token["wai_sess_".len()..].split('.').map(String::from).collect();
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let mut sig = parts[2].clone();
    let last = sig.pop().unwrap();
    sig.push(if last == 'A' { 'B' } else { 'A' });
    let tampered = format!("wai_sess_{}.{}.{sig}", parts[0], parts[1]);
    let none = format!("wai_sess_{}.{}.x", b64(&json!({"alg": "none", "typ": "JWT"})), parts[1]);
    let hs512 = format!("wai_sess_{}.{}.{}", b64(&json!({"alg": "HS512", "typ": "JWT"})), parts[1], parts[2]);
    for bad in [tampered, none, hs512] {
        let (st, v) = d.bearer("GET", "/v1/wallet/address", &bad, None).await;
        assert_eq!((st, v["code"].as_str()), (401, Some("AUTH_TOKEN_INVALID")), "{bad}");
    }
    assert_eq!(d.bearer("GET", "/v1/wallet/address", &token, None).await.0, 200);
    d.advance(300).await;
    let (st, v) = d.bearer("GET", "/v1/wallet/address", &token, None).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("AUTH_TOKEN_EXPIRED")));
});

// ACC-100, ACC-107: revocation, the renewal-rejection trigger, double revoke.
daemon_test!(revocation_ends_a_session_and_names_its_trigger, dev(), |d| {
    let (agent, s) = agent_and_session(&d, json!({"expiresIn": 3600})).await;
    let sid = s["sessionId"].as_str().unwrap();
    let token = s["token"].as_str().unwrap();
    let (st, v) = d.master("DELETE", &format!("/v1/sessions/{sid}"), None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["revoked"].as_bool(), v["sessionId"].as_str(), v["trigger"].as_str()),
        (Some(true), Some(sid), Some("manual_revoke"))
    );
    assert!(v["revokedAt"].is_string());
    let (st, v) = d.bearer("GET", "/v1/wallet/address", token, None).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("SESSION_REVOKED")));
    let (st, v) = d.master("DELETE", &format!("/v1/sessions/{sid}"), None).await;
    assert_eq!((st, v["code"].as_str()), (409, Some("SESSION_ALREADY_REVOKED")));
    let (st, v) = d.master("DELETE", "/v1/sessions/01a20720-0000-7000-8000-000000000000", None).await;
    assert_eq!((st, v["code"].as_str()), (404, Some("SESSION_NOT_FOUND")));

    // Renewed, then revoked inside renewalRejectWindow (default 3600 s): renewal_rejected.
    let s2 = d.create_session(agent["id"].as_str().unwrap(), json!({"expiresIn": 3600})).await;
    let sid2 = s2["sessionId"].as_str().unwrap();
    d.advance(1800).await;
    let (st, r) = d.bearer("PUT", &format!("/v1/sessions/{sid2}/renew"), s2["token"].as_str().unwrap(), None).await;
    assert_eq!(st, 200, "{r}");
    d.advance(60).await;
    let (_, v) = d.master("DELETE", &format!("/v1/sessions/{sid2}"), None).await;
    assert_eq!(v["trigger"], "renewal_rejected");
    let rows = d.audit("SESSION_REVOKED").await;
    assert_eq!(
        rows.iter().map(|r| r["details"]["trigger"].as_str().unwrap()).collect::<Vec<_>>(),
        ["manual_revoke", "renewal_rejected"]
    );
});

// ACC-102 … ACC-106: renewal guards, the new token, usage kept.
daemon_test!(renewal_follows_its_guards_and_replaces_the_token, dev(), |d| {
    let (agent, s) = agent_and_session(&d, json!({})).await;
    let (sid, token) = (s["sessionId"].as_str().unwrap(), s["token"].as_str().unwrap());
    let other = d.create_session(agent["id"].as_str().unwrap(), json!({})).await;
    let (st, v) =
        d.bearer("PUT", &format!("/v1/sessions/{}/renew", other["sessionId"].as_str().unwrap()), token, None).await;
    assert_eq!((st, v["code"].as_str()), (403, Some("SESSION_RENEWAL_MISMATCH")));
    let r = d.http.put(d.url(&format!("/v1/sessions/{sid}/renew"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let retry: i64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "RENEWAL_TOO_EARLY");
    assert!(v["retryable"].as_bool().unwrap());
    assert!((iso_secs(&v["details"]["renewableAt"]) - iso_secs(&s["expiresAt"]) + 43_200).abs() <= 1);
    assert!((43_190..=43_200).contains(&retry));

    d.advance(43_200).await;
    let (st, r) = d.bearer("PUT", &format!("/v1/sessions/{sid}/renew"), token, None).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!((r["renewalCount"].as_u64(), r["maxRenewals"].as_u64()), (Some(1), Some(30)));
    let created = chrono::DateTime::parse_from_rfc3339(s["absoluteExpiresAt"].as_str().unwrap()).unwrap().timestamp();
    assert_eq!(iso_secs(&r["absoluteExpiresAt"]), created);
    let (_, view) = d.master("GET", &format!("/v1/sessions/{sid}"), None).await;
    assert_eq!(iso_secs(&view["absoluteExpiresAt"]) - iso_secs(&view["createdAt"]), 30 * 86_400);
    let now = crate::support::owner::daemon_now(&d).await;
    assert!((iso_secs(&r["expiresAt"]) - (now + 86_400)).abs() <= 2);
    let new_token = r["token"].as_str().unwrap();
    let (st, v) = d.bearer("GET", "/v1/wallet/address", token, None).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("AUTH_TOKEN_INVALID")), "the old token is dead");
    let (st, after) = d.bearer("GET", &format!("/v1/sessions/{sid}"), new_token, None).await;
    assert_eq!(st, 200);
    assert_eq!(after["usageStats"], s_usage_zero());

    // maxRenewals 0.
    let z = d.create_session(agent["id"].as_str().unwrap(), json!({"maxRenewals": 0, "expiresIn": 600})).await;
    d.advance(300).await;
    let (st, v) = d
        .bearer(
            "PUT",
            &format!("/v1/sessions/{}/renew", z["sessionId"].as_str().unwrap()),
            z["token"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (403, Some("RENEWAL_LIMIT_REACHED")));
});

fn s_usage_zero() -> Value {
    json!({"totalTx": 0, "totalAmount": "0", "lastTxAt": null})
}

// ACC-106 (absolute lifetime), with the session renewed up to the 30-day limit.
daemon_test!(renewal_never_passes_the_absolute_lifetime, dev(), |d| {
    let (_, s) = agent_and_session(&d, json!({"expiresIn": 604_800})).await;
    let sid = s["sessionId"].as_str().unwrap().to_string();
    let mut token = s["token"].as_str().unwrap().to_string();
    let mut renewed = 0;
    loop {
        d.advance(4 * 86_400).await;
        let (st, v) = d.bearer("PUT", &format!("/v1/sessions/{sid}/renew"), &token, None).await;
        if st == 200 {
            token = v["token"].as_str().unwrap().to_string();
            renewed += 1;
            continue;
        }
        assert_eq!((st, v["code"].as_str()), (403, Some("SESSION_ABSOLUTE_LIFETIME_EXCEEDED")), "{v}");
        break;
    }
    assert_eq!(renewed, 5, "renewals at day 4, 8, 12, 16, 20 fit; day 24 + 7 > 30");
});

// Two concurrent renewals with the same token: exactly one wins.
// ACC-049.
daemon_test!(concurrent_renewals_have_one_winner, dev(), |d| {
    let (_, s) = agent_and_session(&d, json!({})).await;
    let (sid, token) = (s["sessionId"].as_str().unwrap().to_string(), s["token"].as_str().unwrap().to_string());
    d.advance(43_200).await;
    let d = std::sync::Arc::new(d);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (d, sid, token) = (d.clone(), sid.clone(), token.clone());
        tasks.push(tokio::spawn(
            async move { d.bearer("PUT", &format!("/v1/sessions/{sid}/renew"), &token, None).await },
        ));
    }
    let mut codes = Vec::new();
    for t in tasks {
        let (st, v) = t.await.unwrap();
        codes.push(if st == 200 { "OK".to_string() } else { v["code"].as_str().unwrap().to_string() });
    }
    assert_eq!(codes.iter().filter(|c| *c == "OK").count(), 1, "{codes:?}");
    // The losers lost the compare-and-swap, or arrived after the commit and met a dead token or
    // the just-renewed row's too-early guard (the guards run before the CAS, 04-auth.md §4.5).
    let lost = ["OK", "RENEWAL_CONFLICT", "AUTH_TOKEN_INVALID", "RENEWAL_TOO_EARLY"];
    assert!(codes.iter().all(|c| lost.contains(&c.as_str())), "{codes:?}");
    assert_eq!(d.audit("SESSION_RENEWED").await.len(), 1);
});

// ACC-108: the cleanup worker deletes expired sessions (~60 s) and revoked ones after 24 h.
daemon_test!(cleanup_deletes_expired_and_old_revoked_sessions, dev(), |d| {
    let (agent, s) = agent_and_session(&d, json!({"expiresIn": 300})).await;
    let keep = d.create_session(agent["id"].as_str().unwrap(), json!({"expiresIn": 604_800})).await;
    let revoked = d.create_session(agent["id"].as_str().unwrap(), json!({"expiresIn": 604_800})).await;
    d.master("DELETE", &format!("/v1/sessions/{}", revoked["sessionId"].as_str().unwrap()), None).await;
    d.advance(301).await;
    let gone = |v: &Value, id: &Value| !v["sessions"].as_array().unwrap().iter().any(|x| x["id"] == *id);
    let mut ok = false;
    for _ in 0..100 {
        let (_, all) = d.master("GET", "/v1/sessions?status=all", None).await;
        if gone(&all, &s["sessionId"]) {
            assert!(!gone(&all, &revoked["sessionId"]), "a revoked session stays for 24 h");
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "the expired session was not cleaned up");
    assert_eq!(d.audit("SESSION_EXPIRED").await.len(), 1);
    d.advance(86_400).await;
    for _ in 0..100 {
        if !d.audit("SESSION_CLEANUP").await.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, all) = d.master("GET", "/v1/sessions?status=all", None).await;
    assert!(gone(&all, &revoked["sessionId"]));
    assert!(!gone(&all, &keep["sessionId"]));
    assert_eq!(d.audit("SESSION_CLEANUP").await[0]["details"]["count"], 1);
});

// ACC-109, ACC-110: tokens from before a rotation work for 300 s, then fail; no second rotation
// inside the window.
daemon_test!(rotation_keeps_old_tokens_for_five_minutes, dev(), |d| {
    let (agent, s) = agent_and_session(&d, json!({})).await;
    let old = s["token"].as_str().unwrap();
    let (st, v) = d.master("POST", "/v1/admin/rotate-secret", Some(json!({}))).await;
    assert_eq!(st, 200, "{v}");
    let now = crate::support::owner::daemon_now(&d).await;
    assert!((iso_secs(&v["previousExpiry"]) - (now + 300)).abs() <= 2);
    let r = d
        .http
        .post(d.url("/v1/admin/rotate-secret"))
        .header("X-Master-Password", d.password())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "ROTATION_TOO_RECENT");
    let fresh = d.create_session(agent["id"].as_str().unwrap(), json!({})).await;
    assert_eq!(d.bearer("GET", "/v1/wallet/address", old, None).await.0, 200);
    // 290 s in (a margin for the real time the test itself takes): still accepted.
    d.advance(290).await;
    assert_eq!(d.bearer("GET", "/v1/wallet/address", old, None).await.0, 200);
    d.advance(11).await;
    let (st, v) = d.bearer("GET", "/v1/wallet/address", old, None).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("AUTH_TOKEN_INVALID")));
    assert_eq!(d.bearer("GET", "/v1/wallet/address", fresh["token"].as_str().unwrap(), None).await.0, 200);
    assert_eq!(d.master("POST", "/v1/admin/rotate-secret", Some(json!({}))).await.0, 200, "allowed after 300 s");
    assert_eq!(d.audit("SECRET_ROTATED").await.len(), 2);
});

// ACC-111: a restart after the window clears the previous secret; editing config's jwt_secret
// after the first start changes nothing. The wait is simulated by moving the stored rotation
// time back (the dev clock does not survive a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_expires_the_previous_secret_and_ignores_config_edits() {
    let solana = crate::support::nodes::Surfnet::start();
    let cfg = vec![("rpc", format!("solana_devnet = \"{}\"", solana.url))];
    let mut d = TestDaemon::start(Opts { config: cfg.clone(), ..Opts::default() }).await;
    let (agent, s) = agent_and_session(&d, json!({})).await;
    let old = s["token"].as_str().unwrap().to_string();
    assert_eq!(d.master("POST", "/v1/admin/rotate-secret", Some(json!({}))).await.0, 200);
    let newer = d.create_session(agent["id"].as_str().unwrap(), json!({})).await["token"].as_str().unwrap().to_string();
    d.terminate();
    {
        let store = d.store();
        let at = store.system_value("jwt_secret_rotated_at").unwrap().unwrap().as_u64().unwrap();
        store.redb().expect("a redb store").raw_put_state("jwt_secret_rotated_at", json!(at - 301)).unwrap();
    }
    let text = std::fs::read_to_string(d.path().join("config.toml")).unwrap();
    let edited: String =
        text.lines()
            .map(|l| {
                if l.starts_with("jwt_secret") {
                    format!("jwt_secret = \"{}\"", "ab".repeat(32))
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
    std::fs::write(d.path().join("config.toml"), edited).unwrap();
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    let d = TestDaemon::start_in(dir, Opts { config: cfg, ..Opts::default() }).await;
    assert_eq!(d.audit("PREVIOUS_SECRET_EXPIRED").await.len(), 1);
    let (st, v) = d.bearer("GET", "/v1/wallet/address", &old, None).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("AUTH_TOKEN_INVALID")));
    assert_eq!(d.bearer("GET", "/v1/wallet/address", &newer, None).await.0, 200, "the stored secret still rules");
}

// ACC-112, ACC-113 (redb nonces survive a restart and stay single-use).
daemon_test!(nonces_are_hex_and_expire_in_five_minutes, |d| {
    for path in ["/v1/nonce", "/v1/auth/nonce"] {
        let (st, v) = d.call("GET", path, &[], None).await;
        assert_eq!(st, 200);
        let n = v["nonce"].as_str().unwrap();
        assert!(n.len() == 32 && n.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let now = chrono::Utc::now().timestamp();
        assert!((iso_secs(&v["expiresAt"]) - (now + 300)).abs() <= 5);
    }
});
