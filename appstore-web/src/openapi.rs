//! The API's routes as one table, which the router pairs its filters with (one entry per filter,
//! checked when the routes are built) and from which `/api/openapi.json` (OpenAPI 3.0) is made.

use serde_json::{json, Map, Value};

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
    /// Query parameters: (name, description).
    pub query: &'static [(&'static str, &'static str)],
    /// JSON body: (field, type, required, description).
    pub body: &'static [(&'static str, &'static str, bool, &'static str)],
    /// Success status and what comes back.
    pub ok: (u16, &'static str),
    /// The answer is a server-sent event stream.
    pub sse: bool,
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
        query: &[],
        body: &[],
        ok: (200, "OK"),
        sse: false,
    }
}

const JOB_ACCEPTED: (u16, &str) = (
    202,
    "Accepted: `{job_id, url}`; follow the job at /api/jobs/{job_id}",
);

/// Every route of the API, in the order the router tries them.
pub const ROUTES: &[ApiRoute] = &[
    r("GET", "/api/health", "system", "Liveness and version"),
    ApiRoute {
        query: &[
            ("q", "Search text (name, description, tags)"),
            ("category", "Only apps of this category"),
            ("tag", "Only apps with this tag"),
            ("sort", "`featured` (default), `popular` (most installed here), `updated`, `name`"),
            ("offset", "Skip this many matches (default 0)"),
            ("limit", "Apps per page, 1 to 200 (default 48); `total` counts all matches"),
        ],
        ..r("GET", "/api/apps", "catalog", "List and search the catalog's apps")
    },
    r("GET", "/api/apps/{app_id}", "catalog", "One app: manifest, README, files"),
    r("GET", "/api/apps/{app_id}/icon", "catalog", "The app's icon"),
    r("GET", "/api/catalog", "catalog", "Catalog status: source, commit, broken apps"),
    ApiRoute {
        ok: (202, "Accepted: the refresh runs in the background"),
        ..r("POST", "/api/catalog/refresh", "catalog", "Refresh the catalog now")
    },
    ApiRoute {
        body: &[
            ("app_id", "string", true, "The app"),
            ("inputs", "object", false, "Form values by input key"),
            ("hostname", "string", false, "Container hostname (default: the app id)"),
            ("storage", "string", false, "Storage override"),
            ("bridge", "string", false, "Bridge override"),
            ("cores", "integer", false, "Cores override"),
            ("memory_mb", "integer", false, "Memory override, MiB"),
            ("disk_gb", "integer", false, "Root disk override, GiB"),
            ("network", "object", false, "`ip` (dhcp or CIDR), `gw`, `ip6` (auto, dhcp or CIDR), `gw6`, `vlan`"),
            ("reuse_volumes", "boolean", false, "Take back volumes kept by an earlier uninstall (default true)"),
        ],
        ok: JOB_ACCEPTED,
        ..r("POST", "/api/install", "jobs", "Install an app")
    },
    ApiRoute {
        body: &[
            ("install_id", "integer", true, "The install"),
            ("keep_volumes", "boolean", false, "Keep the data volumes for a later install"),
        ],
        ok: JOB_ACCEPTED,
        ..r("POST", "/api/uninstall", "jobs", "Uninstall an app")
    },
    r("GET", "/api/jobs", "jobs", "The latest jobs"),
    r("GET", "/api/jobs/{job_id}", "jobs", "One job with its state transitions"),
    ApiRoute {
        query: &[
            ("after", "Cursor: lines after this sequence number"),
            ("limit", "At most this many lines (default 500)"),
        ],
        ..r("GET", "/api/jobs/{job_id}/logs", "jobs", "A job's log lines (polling, with a cursor)")
    },
    ApiRoute {
        query: &[("after", "Cursor, like the Last-Event-ID header")],
        sse: true,
        ..r("GET", "/api/jobs/{job_id}/stream", "jobs", "A job's log lines and states as server-sent events (`log`, `state`); ends after the final state")
    },
    ApiRoute {
        sse: true,
        ..r("GET", "/api/events", "jobs", "Every job's state changes as server-sent events (`job`)")
    },
    ApiRoute {
        ok: (202, "Accepted: the job stops at its next step"),
        ..r("POST", "/api/jobs/{job_id}/cancel", "jobs", "Cancel a queued or running job")
    },
    ApiRoute {
        body: &[
            ("install_id", "integer", true, "The install"),
            ("allow_no_snapshot", "boolean", false, "Go on without a snapshot where the storage cannot take one"),
            ("keep_snapshot", "boolean", false, "Keep the snapshot after a successful upgrade"),
        ],
        ok: JOB_ACCEPTED,
        ..r("POST", "/api/upgrade", "jobs", "Upgrade an install to the catalog's version")
    },
    ApiRoute {
        body: &[
            ("install_id", "integer", true, "The install"),
            ("inputs", "object", false, "New values of reconfigurable inputs; an empty secret keeps the old one"),
            ("restart", "boolean", false, "Restart the container afterwards"),
        ],
        ok: JOB_ACCEPTED,
        ..r("POST", "/api/reconfigure", "jobs", "Change an install's reconfigurable inputs")
    },
    r("GET", "/api/installs/{install_id}/upgrade", "installs", "What an upgrade of this install would do"),
    ApiRoute {
        body: &[("password", "string", true, "The admin password")],
        ..r("POST", "/api/login", "auth", "Log in: a session cookie and the CSRF token")
    },
    r("POST", "/api/logout", "auth", "Log out"),
    r("GET", "/api/session", "auth", "Login mode, and whether this client is logged in (with its CSRF token)"),
    ApiRoute {
        ok: JOB_ACCEPTED,
        ..r("POST", "/api/jobs/{job_id}/destroy", "jobs", "Destroy the container a failed or canceled install left")
    },
    ApiRoute {
        query: &[("refresh", "`1`: read PVE again instead of the 30 s cache")],
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
    r("POST", "/api/demo/gpus", "system", "Demo only: plug a simulated GPU in or out"),
    ApiRoute {
        body: &[(
            "password",
            "string",
            false,
            "The admin password again (required when login is on)",
        )],
        ..r(
            "POST",
            "/api/installs/{install_id}/outputs/{key}/reveal",
            "installs",
            "A secret output in clear (audited; asks for the password again when login is on)",
        )
    },
    ApiRoute {
        query: &[(
            "job_id",
            "Whose last 200 log lines to include (default: the newest failed job, else the newest)",
        )],
        ..r(
            "GET",
            "/api/debug/bundle",
            "system",
            "Debug bundle: job metadata without secrets, redacted config, last 200 log lines",
        )
    },
];

fn operation(route: &ApiRoute) -> Value {
    let mut params: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let kind = if name.ends_with("_id") && name != "app_id" {
                "integer"
            } else {
                "string"
            };
            json!({"name": name, "in": "path", "required": true, "schema": {"type": kind}})
        })
        .collect();
    params.extend(route.query.iter().map(|(name, description)| {
        json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}})
    }));
    let content = if route.sse {
        json!({"text/event-stream": {"schema": {"type": "string"}}})
    } else {
        json!({"application/json": {"schema": {"type": "object"}}})
    };
    let mut op = json!({
        "operationId": format!("{} {}", route.method.to_lowercase(), route.path),
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": params,
        "responses": {
            route.ok.0.to_string(): {"description": route.ok.1, "content": content},
            "default": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        },
    });
    if !route.body.is_empty() {
        let mut props = Map::new();
        let mut required = Vec::new();
        for (name, kind, req, description) in route.body {
            props.insert(
                (*name).into(),
                json!({"type": kind, "description": description}),
            );
            if *req {
                required.push(*name);
            }
        }
        op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": false, "properties": props, "required": required}}}});
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
            "description": "The controller's REST API. In password mode every route but /api/health, /api/session and POST /api/login needs the session cookie, and every POST also the X-CSRF-Token header.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "object", "required": ["code", "message", "fields"], "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                    }}},
                },
            },
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": crate::auth::COOKIE},
            },
        },
    })
}
