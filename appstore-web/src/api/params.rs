//! Typed requests. Each route's query parameters are a struct, and its JSON body is the struct the
//! handler deserializes. The JSON Schema of that struct (schemars) is what the OpenAPI document shows
//! and, for query strings, what [`query`] checks: one source, so the document and the code cannot
//! disagree.

use super::ApiError;
use appstore_catalog::Sort;
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use warp::http::StatusCode;

/// The OpenAPI 3.0 schema of `T`, self-contained (no `$ref`). Made once per type.
pub fn schema_of<T: JsonSchema + 'static>() -> Arc<Value> {
    static CACHE: OnceLock<Mutex<HashMap<TypeId, Arc<Value>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    Arc::clone(cache.entry(TypeId::of::<T>()).or_insert_with(|| {
        let mut generator = SchemaSettings::openapi3()
            .with(|s| {
                s.inline_subschemas = true;
                s.meta_schema = None;
            })
            .into_generator();
        let mut v = generator.root_schema_for::<T>().to_value();
        if let Some(o) = v.as_object_mut() {
            o.remove("$schema");
            o.remove("title");
        }
        Arc::new(v)
    }))
}

/// The values a schema allows, when it is a choice of strings (`enum`, or `oneOf`/`anyOf` of them).
pub fn choices(schema: &Value) -> Option<Vec<String>> {
    if let Some(Value::Array(values)) = schema.get("enum") {
        return Some(
            values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        );
    }
    let branches = schema.get("oneOf").or_else(|| schema.get("anyOf"))?;
    let mut all = Vec::new();
    for b in branches.as_array()? {
        all.extend(choices(b)?);
    }
    Some(all)
}

/// The schema's type name (`integer`, `boolean`, `string`, ...).
pub fn type_name(schema: &Value) -> Option<&str> {
    match schema.get("type")? {
        Value::String(t) => Some(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

/// One query value read as what `schema` says; the message names what is allowed.
fn coerce(schema: &Value, value: &str) -> Result<Value, String> {
    if let Some(allowed) = choices(schema) {
        return if allowed.iter().any(|a| a == value) {
            Ok(Value::String(value.to_string()))
        } else {
            Err(format!("`{value}` is not one of: {}", allowed.join(", ")))
        };
    }
    match type_name(schema) {
        Some("integer") => {
            let (min, max) = (
                schema.get("minimum").and_then(Value::as_i64),
                schema.get("maximum").and_then(Value::as_i64),
            );
            let range = match (min, max) {
                (Some(a), Some(b)) => format!(" from {a} to {b}"),
                (Some(a), None) => format!(" of {a} or more"),
                (None, Some(b)) => format!(" of at most {b}"),
                (None, None) => String::new(),
            };
            value
                .parse::<i64>()
                .ok()
                .filter(|n| min.is_none_or(|m| *n >= m) && max.is_none_or(|m| *n <= m))
                .map(Value::from)
                .ok_or_else(|| format!("`{value}` is not a whole number{range}"))
        }
        Some("boolean") => match value {
            "1" | "true" => Ok(Value::Bool(true)),
            "0" | "false" => Ok(Value::Bool(false)),
            _ => Err(format!("`{value}` is not true or false (or 1 or 0)")),
        },
        _ => Ok(Value::String(value.to_string())),
    }
}

/// Reads a query string as `T`: every unknown name and every value its schema refuses is reported
/// at once, by name; an empty value counts as absent.
pub fn query<T: DeserializeOwned + JsonSchema + 'static>(
    params: &HashMap<String, String>,
) -> Result<T, ApiError> {
    let schema = schema_of::<T>();
    let empty = Map::new();
    let props = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut err = ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        "the query has invalid parameters",
    );
    let mut object = Map::new();
    let mut names: Vec<&String> = params.keys().collect();
    names.sort();
    for name in names {
        let value = params[name].trim();
        let Some(p) = props.get(name.as_str()) else {
            let known: Vec<&str> = props.keys().map(String::as_str).collect();
            err = err.field(
                name,
                if known.is_empty() {
                    "unknown parameter; this path takes none".to_string()
                } else {
                    format!("unknown parameter; known: {}", known.join(", "))
                },
            );
            continue;
        };
        if value.is_empty() {
            continue;
        }
        match coerce(p, value) {
            Ok(v) => {
                object.insert(name.clone(), v);
            }
            Err(m) => {
                let hint = p.get("x-hint").and_then(Value::as_str);
                err = err.field(name, hint.map_or(m.clone(), |h| format!("{m}; {h}")));
            }
        }
    }
    if !err.fields.is_empty() {
        return Err(err);
    }
    serde_json::from_value(Value::Object(object)).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("the query has invalid parameters: {e}"),
        )
    })
}

/// Reads a JSON body as `T` (the struct the document shows for the route). A body that is not that
/// JSON is refused with `invalid_json`, naming the field serde names.
pub fn body<T: DeserializeOwned + JsonSchema + 'static>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        let mut err = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the body is empty; this route takes a JSON object (see /api/openapi.json)",
        );
        let schema = schema_of::<T>();
        for r in schema["required"].as_array().into_iter().flatten() {
            if let Some(name) = r.as_str() {
                err = err.field(name, "required");
            }
        }
        return Err(err);
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let text = e.to_string();
        let err = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not the JSON this route takes (see /api/openapi.json): {text}"),
        );
        // serde names the field in "unknown field `x`" and "missing field `x`".
        let named = text
            .split_once("field `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(name, _)| name.to_string());
        match named {
            Some(name) => {
                let why = text.split(" at line ").next().unwrap_or(&text).to_string();
                err.field(&name, why)
            }
            None => err,
        }
    })
}

/// `GET /api/apps`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppsParams {
    /// Search text (name, description, tags).
    pub q: Option<String>,
    /// Only apps of this category.
    pub category: Option<String>,
    /// Only apps with this tag.
    pub tag: Option<String>,
    /// The order (`popular`: most installed here; `updated`: newest first).
    #[serde(default)]
    pub sort: Sort,
    /// Skip this many matches.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub offset: u32,
    /// Apps per page; the answer's `total` counts all matches.
    #[serde(default = "apps_page")]
    #[schemars(range(min = 1, max = 200))]
    pub limit: u32,
}

fn apps_page() -> u32 {
    super::APPS_PAGE as u32
}

/// `GET /api/jobs/{job_id}/logs`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsParams {
    /// Cursor: only lines after this sequence number.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub after: i64,
    /// At most this many lines.
    #[serde(default = "log_page")]
    #[schemars(range(min = 1, max = 5000))]
    pub limit: i64,
}

fn log_page() -> i64 {
    500
}

/// `GET /api/jobs/{job_id}/stream`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// Cursor, like the `Last-Event-ID` header (which wins when both are sent).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub after: i64,
}

/// `GET /api/system/discovery`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryParams {
    /// Read PVE again instead of the 30 s cache.
    #[serde(default)]
    pub refresh: bool,
}

/// `GET /api/debug/bundle`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleParams {
    /// Whose last 200 log lines to include (default: the newest failed job, else the newest).
    #[schemars(range(min = 1), extend("x-hint" = "use a job id from GET /api/jobs"))]
    pub job_id: Option<i64>,
}

/// Routes that take no query parameters.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// `POST /api/uninstall`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UninstallBody {
    /// The install.
    pub install_id: i64,
    /// Keep the data volumes for a later install of the app.
    #[serde(default)]
    pub keep_volumes: bool,
}

/// `POST /api/login`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// The admin password.
    pub password: String,
}

/// `POST /api/installs/{install_id}/outputs/{key}/reveal`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevealBody {
    /// The admin password again (required when login is on).
    #[serde(default)]
    pub password: Option<String>,
}

/// `POST /api/demo/gpus`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlugBody {
    /// The simulated GPU.
    #[serde(default)]
    pub pci_address: Option<String>,
    /// Plugged in (true) or out (false).
    #[serde(default)]
    pub present: Option<bool>,
    /// Installs this NVIDIA driver version on the simulated host instead.
    #[serde(default)]
    pub nvidia_driver_version: Option<String>,
}

/// A job was made: where to follow it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JobAccepted {
    /// The new job.
    pub job_id: i64,
    /// `/api/jobs/{job_id}`.
    pub url: String,
}

/// What `POST /api/upgrade-all` did: one upgrade job per install the catalog offers a newer
/// version, and the installs whose upgrade was refused, with why.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UpgradeAll {
    /// Upgrade jobs made.
    pub queued: Vec<QueuedUpgrade>,
    /// Offers that could not be queued (the container is busy, the engine refused, ...).
    pub refused: Vec<RefusedUpgrade>,
}

/// One upgrade job of `POST /api/upgrade-all`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct QueuedUpgrade {
    /// The install.
    pub install_id: i64,
    /// Its app.
    pub app_id: String,
    /// From this version.
    pub from: String,
    /// To this one.
    pub to: String,
    /// The job.
    pub job_id: i64,
}

/// An upgrade `POST /api/upgrade-all` could not queue.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RefusedUpgrade {
    /// The install.
    pub install_id: i64,
    /// Its app.
    pub app_id: String,
    /// Why.
    pub reason: String,
}

/// An error: a stable code, a message for people and what is wrong with each named field.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The parts of [`ErrorBody`].
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable, for programs (`invalid_query`, `not_found`, `busy`, ...).
    pub code: String,
    /// For people.
    pub message: String,
    /// Field or parameter name -> what is wrong with it and how to fix it.
    pub fields: std::collections::BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn queries_are_read_and_refused_by_their_schema() {
        let p: AppsParams =
            query(&params(&[("sort", "updated"), ("limit", "7"), ("q", " ")])).unwrap();
        assert_eq!((p.sort, p.limit, p.q), (Sort::Updated, 7, None));
        let p: AppsParams = query(&params(&[])).unwrap();
        assert_eq!((p.sort, p.offset, p.limit), (Sort::Featured, 0, 48));
        let e = query::<AppsParams>(&params(&[
            ("sort", "best"),
            ("limit", "0"),
            ("offset", "-1"),
            ("colour", "red"),
        ]))
        .unwrap_err();
        assert_eq!(
            e.fields["sort"],
            "`best` is not one of: featured, name, updated, popular"
        );
        assert_eq!(e.fields["limit"], "`0` is not a whole number from 1 to 200");
        assert_eq!(
            e.fields["offset"],
            "`-1` is not a whole number from 0 to 1000000"
        );
        assert!(e.fields["colour"].starts_with("unknown parameter; known: "));
        let e = query::<BundleParams>(&params(&[("job_id", "x")])).unwrap_err();
        assert_eq!(
            e.fields["job_id"],
            "`x` is not a whole number of 1 or more; use a job id from GET /api/jobs"
        );
        let d: DiscoveryParams = query(&params(&[("refresh", "1")])).unwrap();
        assert!(d.refresh);
        assert!(query::<NoParams>(&params(&[("x", "1")])).is_err());
    }
}

/// `GET /api/installs/{install_id}/history`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// The time frame: the last hour (one point a minute), day or week.
    #[serde(default)]
    pub timeframe: HistoryFrame,
}

/// A time frame of the history charts.
#[derive(Debug, Default, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HistoryFrame {
    /// The last hour.
    #[default]
    Hour,
    /// The last day.
    Day,
    /// The last week.
    Week,
}

impl From<HistoryFrame> for appstore_pve::types::Timeframe {
    fn from(f: HistoryFrame) -> Self {
        match f {
            HistoryFrame::Hour => appstore_pve::types::Timeframe::Hour,
            HistoryFrame::Day => appstore_pve::types::Timeframe::Day,
            HistoryFrame::Week => appstore_pve::types::Timeframe::Week,
        }
    }
}

/// `GET /api/installs/{install_id}/app-log` and its stream.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppLogParams {
    /// How many of the newest entries to read first.
    #[serde(default = "app_log_lines")]
    #[schemars(range(min = 1, max = 2000))]
    pub lines: u32,
}

fn app_log_lines() -> u32 {
    200
}

/// `POST /api/installs/{install_id}/update-policy`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePolicyBody {
    /// `off` (no notices), `notify` (notices; the admin upgrades) or `automatic`.
    pub mode: appstore_core::update_policy::UpdateMode,
    /// When automatic upgrades may run: `daily HH:MM-HH:MM` or `<day> HH:MM-HH:MM` (the node's
    /// time zone, `time_zone` in the answer).
    #[serde(default)]
    pub window: Option<String>,
    /// Days a version must be old before it is taken automatically.
    #[serde(default)]
    #[schemars(range(max = 365))]
    pub hold_off_days: Option<u32>,
}
