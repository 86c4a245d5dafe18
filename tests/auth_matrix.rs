//! The auth matrix (04-auth.md §1, ACC-129): every route of the OpenAPI document — which is
//! generated from the same table the router uses — is called with every kind of credential, and
//! each cell must get the status and code the spec gives. The route list is read from `/doc`, so
//! a route added later is covered without editing this test; the expected auth kind of each
//! route is the spec's table, written out here.

use base64::Engine;
use serde_json::{Value, json};

use crate::support::owner::{Msg, sol_owner, sol_sign};
use crate::support::{Opts, TestDaemon};

/// 04-auth.md §1 for every route of the spec; a route missing here or in /doc fails the test.
const SPEC: &[(&str, &str, &str)] = &[
    ("GET", "/health", "none"),
    ("GET", "/v1/health", "none"),
    ("GET", "/ready", "none"),
    ("GET", "/doc", "none"),
    ("GET", "/v1/nonce", "none"),
    ("GET", "/v1/auth/nonce", "none"),
    ("GET", "/v1/wallet/address", "session"),
    ("GET", "/v1/wallet/balance", "session"),
    ("GET", "/v1/wallet/assets", "session"),
    ("POST", "/v1/transactions/send", "session"),
    ("POST", "/v1/transactions/dry-run", "session"),
    ("GET", "/v1/transactions", "session"),
    ("GET", "/v1/transactions/pending", "session"),
    ("GET", "/v1/transactions/{id}", "session"),
    ("PUT", "/v1/sessions/{id}/renew", "session"),
    ("GET", "/v1/sessions", "session|master"),
    ("GET", "/v1/sessions/{id}", "session|master"),
    ("POST", "/v1/sessions", "master"),
    ("DELETE", "/v1/sessions/{id}", "master"),
    ("POST", "/v1/agents", "master"),
    ("GET", "/v1/agents", "master"),
    ("POST", "/v1/agents/import", "master"),
    ("GET", "/v1/agents/{id}", "master"),
    ("PATCH", "/v1/agents/{id}", "master+owner?:change_owner"),
    ("POST", "/v1/agents/{id}/suspend", "master"),
    ("POST", "/v1/agents/{id}/resume", "master"),
    ("POST", "/v1/agents/{id}/export", "master"),
    ("DELETE", "/v1/agents/{id}", "master"),
    ("POST", "/v1/owner/connect", "master"),
    ("DELETE", "/v1/owner/disconnect", "master"),
    ("POST", "/v1/owner/approve/{txId}", "owner:approve_tx"),
    ("POST", "/v1/owner/agents/{id}/verify", "owner:verify_owner"),
    ("POST", "/v1/owner/reject/{txId}", "master|owner:reject_tx"),
    ("GET", "/v1/owner/pending-approvals", "master"),
    ("POST", "/v1/admin/shutdown", "master"),
    ("POST", "/v1/admin/rotate-secret", "master"),
    ("POST", "/v1/admin/backup", "master"),
    ("GET", "/v1/admin/status", "master"),
    ("GET", "/v1/admin/audit-log", "master"),
    ("GET", "/v1/admin/audit-log/verify", "master"),
    ("GET", "/v1/owner/notification-channels", "master"),
    ("POST", "/v1/owner/notification-channels", "master"),
    ("PUT", "/v1/owner/notification-channels/{id}", "master"),
    ("DELETE", "/v1/owner/notification-channels/{id}", "master"),
    ("POST", "/v1/owner/notification-channels/{id}/test", "master"),
    ("GET", "/v1/owner/notification-log", "master"),
    ("GET", "/v1/owner/policies", "master"),
    ("POST", "/v1/owner/policies", "master"),
    ("POST", "/v1/owner/policies/dry-run", "master"),
    ("GET", "/v1/owner/policies/{id}", "master"),
    ("PUT", "/v1/owner/policies/{id}", "master"),
    ("DELETE", "/v1/owner/policies/{id}", "master"),
    ("POST", "/v1/admin/kill-switch", "master"),
    ("POST", "/v1/owner/kill-switch", "master|owner:kill_switch"),
    ("GET", "/v1/admin/kill-switch", "master"),
    ("POST", "/v1/admin/recover", "master+owner?:recover"),
    ("POST", "/v1/owner/agents/{id}/withdraw", "master"),
    ("GET", "/v1/admin/auto-stop/rules", "master"),
    ("POST", "/v1/admin/auto-stop/rules", "master"),
    ("PUT", "/v1/admin/auto-stop/rules/{id}", "master"),
    ("DELETE", "/v1/admin/auto-stop/rules/{id}", "master"),
    ("GET", "/v1/owner/status", "master"),
    ("GET", "/v1/owner/dashboard", "master"),
    ("GET", "/v1/owner/settings", "master"),
    // The owner console (11-owner-console.md §4; the page routes are not in /doc).
    ("POST", "/v1/owner/message", "none"),
    ("POST", "/v1/owner/console/login", "owner:console_login"),
    ("GET", "/v1/owner/me/pending", "owner_token"),
    ("GET", "/v1/owner/me/transactions", "owner_token"),
    ("GET", "/v1/owner/me/transactions/{id}", "owner_token"),
    ("GET", "/v1/owner/me/agents", "owner_token"),
    ("GET", "/v1/owner/me/policies", "owner_token"),
    ("GET", "/v1/owner/me/channels", "owner_token"),
];

/// Codes that mean "the credential was not accepted".
const AUTH_CODES: &[&str] = &[
    "MASTER_PASSWORD_REQUIRED",
    "INVALID_MASTER_PASSWORD",
    "MASTER_PASSWORD_LOCKED",
    "AUTH_TOKEN_MISSING",
    "AUTH_TOKEN_INVALID",
    "AUTH_TOKEN_EXPIRED",
    "SESSION_REVOKED",
    "UNAUTHORIZED",
    "INVALID_SIGNATURE",
    "INVALID_NONCE",
    "OWNER_MISMATCH",
    "OWNER_ACTION_MISMATCH",
    "OWNER_AUTH_REQUIRED",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cred {
    None,
    WrongMaster,
    Master,
    OtherSession,
    Session,
    Revoked,
    Expired,
    /// A `verify_owner` signature of agent A's owner.
    Owner,
    /// A read-only owner-console token of agent A's owner.
    OwnerToken,
}

const CREDS: [Cred; 9] = [
    Cred::None,
    Cred::WrongMaster,
    Cred::Master,
    Cred::OtherSession,
    Cred::Session,
    Cred::Revoked,
    Cred::Expired,
    Cred::Owner,
    Cred::OwnerToken,
];

/// What a cell must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// The credential is accepted: whatever the handler answers, it is not an auth refusal.
    Passes,
    Refused(u16, &'static str),
}

fn expected(kind: &str, cred: Cred) -> Expect {
    use Cred::*;
    use Expect::*;
    let master_like = |c: Cred| match c {
        None | OtherSession | Session | Revoked | Expired | Owner | OwnerToken => {
            Refused(401, "MASTER_PASSWORD_REQUIRED")
        }
        WrongMaster => Refused(401, "INVALID_MASTER_PASSWORD"),
        Master => Passes,
    };
    match kind {
        "none" => Passes,
        "master" => master_like(cred),
        // Recovery checks the switch's state before any credential (08-killswitch-autostop.md
        // §4): with the switch off every caller learns only that.
        "master+owner?:recover" => Refused(409, "KILL_SWITCH_NOT_ACTIVE"),
        k if k.starts_with("master+owner?") => master_like(cred),
        "session" => match cred {
            None | WrongMaster | Master | Owner | OwnerToken => Refused(401, "AUTH_TOKEN_MISSING"),
            Session | OtherSession => Passes,
            Revoked => Refused(401, "SESSION_REVOKED"),
            Expired => Refused(401, "AUTH_TOKEN_EXPIRED"),
        },
        "session|master" => match cred {
            None | Owner | OwnerToken => Refused(401, "MASTER_PASSWORD_REQUIRED"),
            WrongMaster => Refused(401, "INVALID_MASTER_PASSWORD"),
            Master | Session | OtherSession => Passes,
            Revoked => Refused(401, "SESSION_REVOKED"),
            Expired => Refused(401, "AUTH_TOKEN_EXPIRED"),
        },
        // The Owner credential signs verify_owner: a route for another action that gets that
        // far refuses the action (step 8), which shows the owner path was taken.
        "owner:console_login" => match cred {
            Owner => Refused(403, "OWNER_ACTION_MISMATCH"),
            _ => Refused(401, "UNAUTHORIZED"),
        },
        k if k.starts_with("owner:") => match cred {
            Owner => Passes,
            _ => Refused(401, "UNAUTHORIZED"),
        },
        // Owner when the request carries Authorization (a session or console token is no
        // owner payload), otherwise master (11-owner-console.md §3.2).
        k if k.starts_with("master|owner:") => match cred {
            None => Refused(401, "MASTER_PASSWORD_REQUIRED"),
            WrongMaster => Refused(401, "INVALID_MASTER_PASSWORD"),
            Master => Passes,
            Session | OtherSession | Revoked | Expired | OwnerToken => Refused(401, "UNAUTHORIZED"),
            // reject_tx on an unknown transaction: step 1 answers TX_NOT_FOUND.
            Owner if k.ends_with("reject_tx") => Passes,
            Owner => Refused(403, "OWNER_ACTION_MISMATCH"),
        },
        "owner_token" => match cred {
            OwnerToken => Passes,
            Session | OtherSession | Revoked | Expired => Refused(401, "AUTH_TOKEN_INVALID"),
            None | WrongMaster | Master | Owner => Refused(401, "AUTH_TOKEN_MISSING"),
        },
        other => panic!("unknown auth kind {other}"),
    }
}

struct World {
    agent: String,
    agent_session: String,
    seed: String,
    owner: String,
    tokens: Vec<(Cred, String)>,
}

impl World {
    fn token(&self, c: Cred) -> &str {
        &self.tokens.iter().find(|(k, _)| *k == c).unwrap().1
    }
}

async fn world(d: &TestDaemon) -> World {
    let (seed, owner) = sol_owner(0x61);
    let a = d.create_agent(json!({"name": "matrix-a", "owner": owner})).await;
    let b = d.create_agent(json!({"name": "matrix-b"})).await;
    let aid = a["id"].as_str().unwrap().to_string();
    let live = d.create_session(&aid, json!({})).await;
    let revoked = d.create_session(&aid, json!({})).await;
    let expired = d.create_session(&aid, json!({"expiresIn": 300})).await;
    let other = d.create_session(b["id"].as_str().unwrap(), json!({})).await;
    d.master("DELETE", &format!("/v1/sessions/{}", revoked["sessionId"].as_str().unwrap()), None).await;
    d.advance(301).await;
    let t = |v: &Value| v["token"].as_str().unwrap().to_string();
    // A console token of A's owner, signed in with PyNaCl over the daemon's message.
    let body =
        json!({"action": "console_login", "target": format!("owner:{owner}"), "chain": "solana", "address": owner});
    let (st, m) = d.call("POST", "/v1/owner/message", &[], Some(body)).await;
    assert_eq!(st, 200, "{m}");
    let text = m["message"].as_str().unwrap();
    let payload = json!({"chain": "solana", "address": owner, "action": "console_login", "nonce": m["nonce"],
                         "timestamp": m["issuedAt"], "message": text, "signature": sol_sign(&seed, "raw", text)});
    let bearer = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string());
    let (st, login) = d.bearer("POST", "/v1/owner/console/login", &bearer, Some(json!({}))).await;
    assert_eq!(st, 200, "{login}");
    World {
        agent: aid,
        agent_session: live["sessionId"].as_str().unwrap().to_string(),
        seed,
        owner,
        tokens: vec![
            (Cred::Session, t(&live)),
            (Cred::OtherSession, t(&other)),
            (Cred::Revoked, t(&revoked)),
            (Cred::Expired, t(&expired)),
            (Cred::OwnerToken, t(&login)),
        ],
    }
}

/// A concrete path: ids that make the credential the only thing under test, without
/// destroying the world (unknown ids for destructive master routes).
fn concrete(method: &str, path: &str, w: &World) -> String {
    let unknown = "01a20720-0000-7000-8000-000000000000";
    let id = match (method, path) {
        ("GET" | "PATCH", "/v1/agents/{id}") | (_, "/v1/owner/agents/{id}/verify") => w.agent.clone(),
        ("GET", "/v1/sessions/{id}") | ("PUT", "/v1/sessions/{id}/renew") => w.agent_session.clone(),
        _ => unknown.to_string(),
    };
    path.replace("{id}", &id).replace("{txId}", unknown)
}

daemon_test!(every_route_answers_every_credential_as_the_spec_says, Opts { dev: true, ..Opts::default() }, |d| {
    let (_, doc) = d.call("GET", "/doc", &[], None).await;
    let w = world(&d).await;
    let mut cells = 0;
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let kind = op["x-waiaas-auth"].as_str().unwrap().to_string();
            let spec = SPEC.iter().find(|(m, p, _)| *m == method && p == path);
            let (_, _, spec_kind) = spec.unwrap_or_else(|| panic!("{method} {path} is not in the spec's auth table"));
            assert_eq!(&kind, spec_kind, "{method} {path}");
            routes.push((method, path.clone(), kind));
        }
    }
    // Every route of the spec's table is served and documented: the document and the table are
    // the same set (each document route was found in SPEC above, and the counts agree).
    assert_eq!(routes.len(), SPEC.len(), "{} routes in /doc, {} in the spec's table", routes.len(), SPEC.len());
    for (method, path, kind) in &routes {
        let url = concrete(method, path, &w);
        for cred in CREDS {
            if path == "/v1/admin/shutdown" && cred == Cred::Master {
                // Accepting it would end the test; its refusals are still checked.
                continue;
            }
            let mut headers = Vec::new();
            match cred {
                Cred::None => {}
                Cred::WrongMaster => headers.push(("X-Master-Password", "definitely not it".to_string())),
                Cred::Master => headers.push(("X-Master-Password", d.password().to_string())),
                Cred::Owner => {
                    let m =
                        Msg::new(&d, "solana", &w.owner, "verify_owner", &format!("agent:{}", w.agent), "devnet").await;
                    headers.push(("Authorization", format!("Bearer {}", m.sol(&w.seed, "raw"))));
                }
                c => headers.push(("Authorization", format!("Bearer {}", w.token(c)))),
            }
            let body = matches!(method.as_str(), "POST" | "PUT" | "PATCH").then(|| json!({}));
            let (status, v) = d.call(method, &url, &headers, body).await;
            let code = v["code"].as_str().unwrap_or("");
            match expected(kind, cred) {
                Expect::Passes => assert!(
                    !AUTH_CODES.contains(&code) && code != "ROUTE_NOT_FOUND" && status != 405,
                    "{method} {url} with {cred:?}: got {status} {v}"
                ),
                Expect::Refused(s, c) => {
                    assert_eq!((status, code), (s, c), "{method} {url} with {cred:?}: {v}")
                }
            }
            cells += 1;
        }
    }
    // Another agent's session sees nothing of this agent's.
    let other = w.token(Cred::OtherSession);
    let (st, v) = d.bearer("GET", &format!("/v1/sessions/{}", w.agent_session), other, None).await;
    assert_eq!((st, v["code"].as_str()), (404, Some("SESSION_NOT_FOUND")));
    let (st, v) = d.bearer("PUT", &format!("/v1/sessions/{}/renew", w.agent_session), other, None).await;
    assert_eq!((st, v["code"].as_str()), (403, Some("SESSION_RENEWAL_MISMATCH")));
    let (_, mine) = d.bearer("GET", "/v1/wallet/address", other, None).await;
    assert_ne!(mine["agentId"], json!(w.agent));
    // The owner cell really verified the owner (and only once).
    assert_eq!(d.audit("OWNER_VERIFIED").await.len(), 1);
    eprintln!("auth matrix: {} routes x {} credentials = {cells} cells", routes.len(), CREDS.len());
});
