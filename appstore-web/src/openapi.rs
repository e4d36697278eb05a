//! The API's routes as one table, which the router pairs its filters with (one entry per filter,
//! checked when the routes are built) and from which `/api/openapi.json` (OpenAPI 3.0) is made.
//! Query parameters, request bodies and the typed answers are the schemas (schemars) of the structs
//! the handlers read and write, so the document says what the code does.

use crate::api::params::{self, schema_of};
use appstore_actors::engine::{InstallRequest, MaintainRequest};
use serde_json::{json, Map, Value};

/// A schema, made from a type when the document is built.
pub type SchemaFn = fn() -> std::sync::Arc<Value>;

/// What a route answers with on success.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// JSON; the schema when the answer is a typed struct, else any object.
    Json(Option<SchemaFn>),
    /// Server-sent events.
    EventStream,
    /// An image (an app's icon): SVG, PNG, WebP or JPEG.
    Image,
}

/// One documented route.
#[derive(Debug, Clone, Copy)]
pub struct ApiRoute {
    /// `GET`, `POST`.
    pub method: &'static str,
    /// OpenAPI path, `/api/jobs/{job_id}`.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Group in the document.
    pub tag: &'static str,
    /// The query parameters: the schema of the struct the handler reads them into.
    pub query: Option<SchemaFn>,
    /// The JSON body: the schema of the struct the handler reads it into.
    pub body: Option<SchemaFn>,
    /// The body may be left out.
    pub body_optional: bool,
    /// Success status and what it means.
    pub ok: (u16, &'static str),
    /// What comes back.
    pub answer: Answer,
}

const fn r(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
) -> ApiRoute {
    ApiRoute {
        method,
        path,
        summary,
        tag,
        query: None,
        body: None,
        body_optional: false,
        ok: (200, "OK"),
        answer: Answer::Json(None),
    }
}

const JOB_ACCEPTED: (u16, &str) = (202, "Accepted: follow the job at /api/jobs/{job_id}");
const ACCEPTED_JOB: Answer = Answer::Json(Some(schema_of::<params::JobAccepted>));

/// Every route of the API, in the order the router tries them.
pub const ROUTES: &[ApiRoute] = &[
    r("GET", "/api/health", "system", "Liveness and version"),
    ApiRoute {
        query: Some(schema_of::<params::AppsParams>),
        ..r("GET", "/api/apps", "catalog", "List and search the catalog's apps")
    },
    r("GET", "/api/apps/{app_id}", "catalog", "One app: manifest, README, files"),
    ApiRoute {
        answer: Answer::Image,
        ..r("GET", "/api/apps/{app_id}/icon", "catalog", "The app's icon")
    },
    r("GET", "/api/catalog", "catalog", "Catalog status: source, commit, broken apps"),
    ApiRoute {
        ok: (202, "Accepted: the refresh runs in the background"),
        ..r("POST", "/api/catalog/refresh", "catalog", "Refresh the catalog now")
    },
    ApiRoute {
        body: Some(schema_of::<InstallRequest>),
        ok: JOB_ACCEPTED,
        answer: ACCEPTED_JOB,
        ..r("POST", "/api/install", "jobs", "Install an app")
    },
    ApiRoute {
        body: Some(schema_of::<params::UninstallBody>),
        ok: JOB_ACCEPTED,
        answer: ACCEPTED_JOB,
        ..r("POST", "/api/uninstall", "jobs", "Uninstall an app")
    },
    r("GET", "/api/jobs", "jobs", "The latest jobs"),
    r("GET", "/api/jobs/{job_id}", "jobs", "One job with its state transitions"),
    ApiRoute {
        query: Some(schema_of::<params::LogsParams>),
        ..r("GET", "/api/jobs/{job_id}/logs", "jobs", "A job's log lines (polling, with a cursor)")
    },
    ApiRoute {
        query: Some(schema_of::<params::StreamParams>),
        answer: Answer::EventStream,
        ..r("GET", "/api/jobs/{job_id}/stream", "jobs", "A job's log lines and states as server-sent events (`log`, `state`); ends after the final state")
    },
    ApiRoute {
        answer: Answer::EventStream,
        ..r("GET", "/api/events", "jobs", "Every job's state changes as server-sent events (`job`)")
    },
    ApiRoute {
        ok: (202, "Accepted: the job stops at its next step"),
        ..r("POST", "/api/jobs/{job_id}/cancel", "jobs", "Cancel a queued or running job")
    },
    ApiRoute {
        body: Some(schema_of::<MaintainRequest>),
        ok: JOB_ACCEPTED,
        answer: ACCEPTED_JOB,
        ..r("POST", "/api/upgrade", "jobs", "Upgrade an install to the catalog's version")
    },
    ApiRoute {
        answer: Answer::Json(Some(schema_of::<params::UpgradeAll>)),
        ..r("POST", "/api/upgrade-all", "jobs", "Upgrade every install the catalog offers a newer version, one job each")
    },
    ApiRoute {
        body: Some(schema_of::<MaintainRequest>),
        ok: JOB_ACCEPTED,
        answer: ACCEPTED_JOB,
        ..r("POST", "/api/reconfigure", "jobs", "Change an install's reconfigurable inputs")
    },
    r("GET", "/api/installs/{install_id}/upgrade", "installs", "What an upgrade of this install would do"),
    ApiRoute {
        body: Some(schema_of::<params::LoginBody>),
        ..r("POST", "/api/login", "auth", "Log in: a session cookie and the CSRF token")
    },
    r("POST", "/api/logout", "auth", "Log out"),
    r("GET", "/api/session", "auth", "Login mode, and whether this client is logged in (with its CSRF token)"),
    ApiRoute {
        ok: JOB_ACCEPTED,
        answer: ACCEPTED_JOB,
        ..r("POST", "/api/jobs/{job_id}/destroy", "jobs", "Destroy the container a failed or canceled install left")
    },
    ApiRoute {
        query: Some(schema_of::<params::DiscoveryParams>),
        ..r("GET", "/api/system/discovery", "system", "Pool, storages, bridges, templates and GPUs")
    },
    r("GET", "/api/gpus", "system", "The host's GPU inventory"),
    r("GET", "/api/volumes", "installs", "Data volumes kept by uninstalls"),
    r("GET", "/api/installs", "installs", "Installed apps, with upgrade availability"),
    r("GET", "/api/openapi.json", "system", "This document"),
    r(
        "GET",
        "/api/installs/{install_id}",
        "installs",
        "One install: live container state from PVE, config, volumes, outputs, job history",
    ),
    r(
        "GET",
        "/api/apps/{app_id}/gpu-options",
        "catalog",
        "The install form's GPU step: each GPU, whether and how the app can use it, the auto pick",
    ),
    r("GET", "/api/demo/gpus", "system", "Demo only: the simulated GPUs and whether each is plugged in"),
    ApiRoute {
        body: Some(schema_of::<params::PlugBody>),
        ..r("POST", "/api/demo/gpus", "system", "Demo only: plug a simulated GPU in or out")
    },
    ApiRoute {
        body: Some(schema_of::<params::RevealBody>),
        body_optional: true,
        ..r(
            "POST",
            "/api/installs/{install_id}/outputs/{key}/reveal",
            "installs",
            "A secret output in clear (audited; asks for the password again when login is on)",
        )
    },
    ApiRoute {
        query: Some(schema_of::<params::BundleParams>),
        ..r(
            "GET",
            "/api/debug/bundle",
            "system",
            "Debug bundle: job metadata without secrets, redacted config, last 200 log lines",
        )
    },
    ApiRoute {
        body: Some(schema_of::<appstore_core::control::Control>),
        ok: JOB_ACCEPTED,
        answer: ACCEPTED_JOB,
        ..r("POST", "/api/installs/{install_id}/control", "installs", "Start, stop, shut down, reboot, resize or set start-at-boot of an install's container (a `control` job)")
    },
    ApiRoute {
        query: Some(schema_of::<params::HistoryParams>),
        ..r("GET", "/api/installs/{install_id}/history", "installs", "The container's CPU, memory, network and disk I/O over the last hour, day or week (PVE's RRD data)")
    },
    ApiRoute {
        query: Some(schema_of::<params::AppLogParams>),
        ..r("GET", "/api/installs/{install_id}/app-log", "installs", "The newest entries of the app's own service log (the journal of the unit its manifest names), read inside the container by the root helper")
    },
    ApiRoute {
        query: Some(schema_of::<params::AppLogParams>),
        answer: Answer::EventStream,
        ..r("GET", "/api/installs/{install_id}/app-log/stream", "installs", "The app's service log followed: the newest entries, then each new one (`line` events)")
    },
    ApiRoute {
        body: Some(schema_of::<params::UpdatePolicyBody>),
        ..r("POST", "/api/installs/{install_id}/update-policy", "installs", "Set the install's update policy: off, notify, or automatic in a maintenance window (the node's time zone) after a hold-off")
    },
    ApiRoute {
        ok: JOB_ACCEPTED,
        answer: ACCEPTED_JOB,
        ..r("POST", "/api/installs/{install_id}/gpu-sync", "installs", "Set the app's GPU up again: attach it from the host's inventory, run its gpu_sync script, check it (a `gpu_sync` job)")
    },
    r("GET", "/api/installs/{install_id}/backups", "backups", "The install's backups as PVE lists them, its backup settings, and the host directories a backup leaves out"),
    ApiRoute {
        body: Some(schema_of::<crate::api::BackupNow>),
        body_optional: true,
        ok: JOB_ACCEPTED,
        answer: ACCEPTED_JOB,
        ..r("POST", "/api/installs/{install_id}/backup", "backups", "Back the install up now with PVE's vzdump (zstd), then keep the newest N (a `backup` job)")
    },
    ApiRoute {
        body: Some(schema_of::<crate::api::PolicyBody>),
        ..r("POST", "/api/installs/{install_id}/backup-policy", "backups", "Set the install's backup storage, mode, retention and schedule (the node's time zone)")
    },
    r("GET", "/api/backups", "backups", "Every backup the store made, with its install's state"),
    ApiRoute {
        body: Some(schema_of::<appstore_actors::engine::RestoreRequest>),
        ok: JOB_ACCEPTED,
        answer: ACCEPTED_JOB,
        ..r("POST", "/api/restore", "backups", "Restore a backup into a new container, or over its install's container (a `restore` job)")
    },
    r("GET", "/api/notifications", "notifications", "Notification targets (from config.yml and the UI) and the events they can get"),
    ApiRoute {
        body: Some(schema_of::<crate::api::NewTarget>),
        ok: (201, "Created"),
        ..r("POST", "/api/notifications", "notifications", "Add an ntfy, Gotify or JSON webhook target (its token kept sealed)")
    },
    r("POST", "/api/notifications/{target_id}/delete", "notifications", "Remove a target added in the UI"),
    ApiRoute {
        body: Some(schema_of::<crate::api::TestBody>),
        body_optional: true,
        ..r("POST", "/api/notifications/test", "notifications", "Send a test notification to one target or to all; each result")
    },
];

/// A path parameter's schema: ids are whole numbers, the rest text.
fn path_param(name: &str) -> Value {
    let schema = match name {
        "job_id" | "install_id" => json!({"type": "integer", "format": "int64"}),
        "app_id" => json!({
            "type": "string",
            "pattern": appstore_core::AppId::PATTERN,
            "maxLength": appstore_core::AppId::MAX_LEN,
        }),
        _ => json!({"type": "string"}),
    };
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}

/// The query parameters of a params struct's schema, one per property.
fn query_params(schema: &Value) -> Vec<Value> {
    let empty = Map::new();
    let props = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    props
        .iter()
        .map(|(name, p)| {
            let mut p = p.clone();
            // A query parameter is there or not: "null" is no value it can take.
            let description = p
                .as_object_mut()
                .and_then(|o| {
                    o.remove("nullable");
                    o.remove("description")
                })
                .unwrap_or(Value::Null);
            let mut param = json!({"name": name, "in": "query", "required": false, "schema": p});
            if !description.is_null() {
                param["description"] = description;
            }
            param
        })
        .collect()
}

fn operation(route: &ApiRoute) -> Value {
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(path_param)
        .collect();
    if let Some(q) = route.query {
        parameters.extend(query_params(&q()));
    }
    let content = match route.answer {
        Answer::Json(schema) => {
            let schema = schema.map_or_else(|| json!({"type": "object"}), |s| (*s()).clone());
            json!({"application/json": {"schema": schema}})
        }
        Answer::EventStream => json!({"text/event-stream": {"schema": {"type": "string"}}}),
        Answer::Image => {
            let binary = json!({"schema": {"type": "string", "format": "binary"}});
            json!({"image/svg+xml": binary, "image/png": binary, "image/webp": binary, "image/jpeg": binary})
        }
    };
    let mut op = json!({
        "operationId": format!("{} {}", route.method.to_lowercase(), route.path),
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": parameters,
        "responses": {
            route.ok.0.to_string(): {"description": route.ok.1, "content": content},
            "default": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        },
    });
    if let Some(body) = route.body {
        op["requestBody"] = json!({"required": !route.body_optional, "content": {"application/json": {"schema": *body()}}});
    }
    op
}

/// The OpenAPI 3.0 document of [`ROUTES`].
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method.to_lowercase()] = operation(route);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "PVE App Store API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The controller's REST API. In password mode every route but /api/health, /api/session and POST /api/login needs the session cookie, and every POST also the X-CSRF-Token header. A POST's body is JSON (Content-Type: application/json).",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": *schema_of::<params::ErrorBody>(),
            },
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": crate::auth::COOKIE},
            },
        },
    })
}
