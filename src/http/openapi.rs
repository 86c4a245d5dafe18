//! The OpenAPI 3.1 document served at `GET /doc` (10-notifications-clients.md §7), generated
//! from the same route table the router uses, so the two cannot drift apart. Dev-only routes are
//! left out.

use serde_json::{Value, json};
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApiBuilder, Paths, Ref, RefOr, Required,
    ResponseBuilder, Schema, ServerBuilder, Type,
};
use utoipa::{PartialSchema, ToSchema};

use super::routes::{AuthKind, Op, ROUTES, Route};

/// The flat error envelope (09-api.md §2).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = ErrorResponse)]
#[serde(rename_all = "camelCase")]
struct ErrorResponse {
    /// UPPER_SNAKE error code.
    code: String,
    /// Human-readable text.
    message: String,
    /// Next step for an agent.
    hint: Option<String>,
    /// Structured details (`issues[]`, `transactionId`, …).
    details: Option<serde_json::Map<String, Value>>,
    /// The request id, equal to the `X-Request-ID` header.
    request_id: String,
    /// Whether the same request may succeed later unchanged.
    retryable: bool,
}

/// `GET /health` body.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct HealthResponse {
    /// healthy, degraded, unhealthy or locked.
    status: String,
    /// Daemon version.
    version: String,
    /// Seconds since start.
    uptime: u64,
    /// ISO-8601 UTC.
    timestamp: String,
    /// Database, keystore, adapters, ledger.
    services: serde_json::Map<String, Value>,
    /// Kill-switch state.
    kill_switch: serde_json::Map<String, Value>,
}

/// `GET /v1/nonce` body.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct NonceResponse {
    /// 32 lowercase hex characters.
    nonce: String,
    /// ISO-8601 UTC.
    expires_at: String,
}

/// `POST /v1/admin/shutdown` body.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct ShutdownResponse {
    /// Always true.
    shutdown_initiated: bool,
    /// ISO-8601 UTC.
    timestamp: String,
    /// Human-readable text.
    message: String,
}

/// `GET /v1/admin/audit-log/verify` body.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct AuditVerifyResponse {
    /// Whether every row verified.
    valid: bool,
    /// Rows checked.
    checked_entries: u64,
    /// Head sequence.
    head_seq: u64,
    /// Head hash.
    head_hash: String,
    /// First broken row.
    first_invalid_seq: Option<u64>,
}

fn object() -> RefOr<Schema> {
    RefOr::T(Schema::Object(ObjectBuilder::new().schema_type(Type::Object).build()))
}

/// The success status and response schema name of each operation.
fn response_of(op: Op) -> (&'static str, Option<&'static str>) {
    match op {
        Op::Health => ("200", Some("HealthResponse")),
        Op::Nonce => ("200", Some("NonceResponse")),
        Op::AdminShutdown => ("200", Some("ShutdownResponse")),
        Op::AuditVerify => ("200", Some("AuditVerifyResponse")),
        Op::SessionCreate
        | Op::AgentCreate
        | Op::AgentImport
        | Op::OwnerConnect
        | Op::ChannelCreate
        | Op::PolicyCreate
        | Op::RuleCreate => ("201", None),
        _ => ("200", None),
    }
}

/// Alternative requirements (OR); one requirement with several schemes means AND.
fn security(auth: AuthKind) -> Vec<SecurityRequirement> {
    let one = |name: &str| SecurityRequirement::new(name, Vec::<String>::new());
    match auth {
        AuthKind::None => vec![],
        AuthKind::Master => vec![one("masterPassword")],
        AuthKind::Session => vec![one("sessionToken")],
        AuthKind::SessionOrMaster => vec![one("sessionToken"), one("masterPassword")],
        AuthKind::Owner(_) => vec![one("ownerSignature")],
        AuthKind::MasterPlusOwner(_) => {
            vec![one("masterPassword"), one("masterPassword").add("ownerSignature", Vec::<String>::new())]
        }
        AuthKind::MasterOrOwner(_) => vec![one("masterPassword"), one("ownerSignature")],
        AuthKind::OwnerToken => vec![one("ownerToken")],
    }
}

fn method(m: &str) -> HttpMethod {
    match m {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        other => panic!("route table uses unsupported method {other}"),
    }
}

/// `/v1/agents/:id` → `/v1/agents/{id}`.
pub(crate) fn openapi_path(path: &str) -> String {
    path.split('/')
        .map(|s| s.strip_prefix(':').map(|p| format!("{{{p}}}")).unwrap_or_else(|| s.to_string()))
        .collect::<Vec<_>>()
        .join("/")
}

fn operation(r: &Route) -> utoipa::openapi::path::Operation {
    let (status, schema) = response_of(r.op);
    let schema = schema.map(|s| RefOr::Ref(Ref::from_schema_name(s))).unwrap_or_else(object);
    let mut b = OperationBuilder::new()
        .operation_id(Some(r.operation_id))
        .tag(r.tag)
        .summary(Some(r.summary))
        .response(
            status,
            ResponseBuilder::new()
                .description("Success")
                .content("application/json", ContentBuilder::new().schema(Some(schema)).build())
                .build(),
        )
        .response(
            "default",
            ResponseBuilder::new()
                .description("Error (flat envelope)")
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorResponse"))).build(),
                )
                .build(),
        );
    for sec in security(r.auth) {
        b = b.security(sec);
    }
    for seg in r.path.split('/').filter_map(|s| s.strip_prefix(':')) {
        b = b.parameter(
            ParameterBuilder::new()
                .name(seg)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(RefOr::T(Schema::Object(ObjectBuilder::new().schema_type(Type::String).build())))),
        );
    }
    if matches!(r.method, "POST" | "PUT" | "PATCH") {
        b = b.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", ContentBuilder::new().schema(Some(object())).build())
                .build(),
        ));
    }
    let mut ext = ExtensionsBuilder::new().add("x-waiaas-auth", json!(r.auth.label()));
    if r.kill_switch_allowed {
        ext = ext.add("x-waiaas-kill-switch-allowed", json!(true));
    }
    b = b.extensions(Some(ext.build()));
    b.build()
}

/// The routes the document lists: not the dev-only ones, never the console's page and assets,
/// and the console routes only while the console is enabled (11-owner-console.md §4).
fn documented(console: bool) -> impl Iterator<Item = &'static Route> {
    ROUTES.iter().filter(move |r| !r.dev_only && !r.page && (console || !r.console))
}

/// Builds the document for a daemon on `port`, with or without the owner console.
pub(crate) fn document(port: u16, console: bool) -> Value {
    let mut paths = Paths::new();
    for r in documented(console) {
        paths.add_path_operation(openapi_path(r.path), vec![method(r.method)], operation(r));
    }
    let components = ComponentsBuilder::new()
        .schema("ErrorResponse", ErrorResponse::schema())
        .schema("HealthResponse", HealthResponse::schema())
        .schema("NonceResponse", NonceResponse::schema())
        .schema("ShutdownResponse", ShutdownResponse::schema())
        .schema("AuditVerifyResponse", AuditVerifyResponse::schema())
        .security_scheme("masterPassword", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Master-Password"))))
        .security_scheme(
            "ownerToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("wai_own_JWT")
                    .description(Some("A read-only owner-console token from POST /v1/owner/console/login (15 minutes)"))
                    .build(),
            ),
        )
        .security_scheme(
            "sessionToken",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("wai_sess_JWT").build()),
        )
        .security_scheme(
            "ownerSignature",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "base64url(JSON {chain, address, action, nonce, timestamp, message, signature}) signed with SIWE (Ethereum) or SIWS (Solana)",
                    ))
                    .build(),
            ),
        )
        .build();
    let doc = OpenApiBuilder::new()
        .info(InfoBuilder::new().title("WAIaaS").version(env!("CARGO_PKG_VERSION")).build())
        .servers(Some(vec![ServerBuilder::new().url(format!("http://127.0.0.1:{port}")).build()]))
        .paths(paths)
        .components(Some(components))
        .build();
    let mut doc = serde_json::to_value(&doc).expect("the document serialises");
    for r in documented(console) {
        let op = &mut doc["paths"][openapi_path(r.path)][r.method.to_lowercase()];
        if let Some(schema) = super::openapi_schemas::request(r.op) {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema}}});
        }
        let (status, _) = response_of(r.op);
        if let Some(schema) = super::openapi_schemas::response(r.op) {
            op["responses"][status]["content"]["application/json"]["schema"] = schema;
        }
        // Other success statuses, each with the success body (so none falls to `default`).
        let more: &[(&str, &str)] = match r.op {
            Op::TxSend => &[("202", "Queued (DELAY or APPROVAL), or accepted before confirmation")],
            Op::Recover => &[("202", "Recovery step 1: the wait started")],
            Op::Withdraw => &[("207", "Partial: some transfers failed (`failed`)")],
            _ => &[],
        };
        for (code, what) in more {
            let body = op["responses"][status]["content"].clone();
            op["responses"][*code] = json!({"description": what, "content": body});
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    // ACC-245: an OpenAPI 3.1 document with the four security schemes and one operation per
    // route-table entry; the route table, the router and the document list the same routes.
    // ACC-262 (document half): without the console its routes are absent.
    #[test]
    fn document_paths_equal_the_route_table_and_the_router() {
        let without = document(3100, false);
        for path in
            ["/owner/", "/owner", "/v1/owner/console/login", "/v1/owner/me/pending", "/v1/owner/me/transactions/{id}"]
        {
            assert!(without["paths"].get(path).is_none(), "{path} is documented without the console");
        }
        assert!(
            without["paths"].get("/v1/owner/message").is_some()
                && without["paths"].get("/v1/owner/reject/{txId}").is_some()
        );
        let doc = document(3100, true);
        assert!(doc["paths"].get("/owner/").is_none() && doc["paths"].get("/v1/owner/me/pending").is_some());
        assert_eq!(doc["openapi"].as_str().unwrap().split('.').take(2).collect::<Vec<_>>(), ["3", "1"]);
        let mut from_doc = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (m, op) in item.as_object().unwrap() {
                from_doc.push((m.to_uppercase(), path.clone()));
                assert!(op["operationId"].is_string());
                assert!(op["responses"]["default"].is_object());
            }
        }
        from_doc.sort();
        let mut from_table: Vec<(String, String)> =
            documented(true).map(|r| (r.method.to_string(), openapi_path(r.path))).collect();
        from_table.sort();
        assert_eq!(from_doc, from_table);
        // The router answers every table route (with its own method) and nothing else.
        for r in ROUTES.iter().filter(|r| !r.dev_only && !r.page) {
            let concrete = r
                .path
                .split('/')
                .map(|s| if s.starts_with(':') { "0190b5a0-0000-7000-8000-000000000000" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            assert!(
                matches!(super::super::routes::route_request(r.method, &concrete, false, true), super::super::routes::Routing::Found(m) if m.route.path == r.path)
            );
        }
        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        assert_eq!(schemes.len(), 4);
        assert!(
            schemes.contains_key("masterPassword")
                && schemes.contains_key("sessionToken")
                && schemes.contains_key("ownerSignature")
                && schemes.contains_key("ownerToken")
        );
        assert_eq!(doc["paths"]["/health"]["get"]["x-waiaas-kill-switch-allowed"], json!(true));
    }
}
