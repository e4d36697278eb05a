//! The HTTP(S) layer of the simulator: pveproxy's behaviour on the wire. Parses parameters from the
//! query and the body (urlencoded or JSON), authenticates API tokens, routes by the schema (501 for an
//! unknown path or method), validates (400 with per-parameter messages), checks the schema's permission
//! rule (403), and records every request for the conformance test.

use crate::acl::{self, Caller};
use crate::api::{ApiErr, Node};
use crate::schema;
use crate::user_cfg::UserCfg;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The server around a [`Node`].
#[derive(Debug)]
pub struct Server {
    /// The node.
    pub node: Arc<Node>,
    /// How long a failed authentication waits before its 401 (PVE: about 3 s).
    pub auth_failure_delay: Duration,
    /// Where each request is appended as a JSON line.
    pub record: Option<PathBuf>,
    record_lock: Mutex<()>,
}

fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    schema::percent_decode(&s.replace('+', " "))
}

fn json_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => {
            if *b {
                "1".into()
            } else {
                "0".into()
            }
        }
        other => other.to_string(),
    }
}

impl Server {
    /// A server for `node`.
    pub fn new(node: Arc<Node>, auth_failure_delay: Duration, record: Option<PathBuf>) -> Self {
        Server {
            node,
            auth_failure_delay,
            record,
            record_lock: Mutex::new(()),
        }
    }

    fn respond(
        &self,
        status: u16,
        body: Option<Value>,
        reason: Option<&str>,
    ) -> Response<Full<Bytes>> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let mut resp = Response::new(Full::new(bytes));
        *resp.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        resp.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/json;charset=UTF-8"),
        );
        resp.headers_mut().insert(
            "server",
            hyper::header::HeaderValue::from_static("pve-api-daemon/3.0"),
        );
        if let Some(r) = reason {
            let first = r.lines().next().unwrap_or(r).trim_end_matches('.');
            let first = if r.lines().next().is_some_and(|l| l.ends_with('.')) {
                format!("{first}.")
            } else {
                first.to_string()
            };
            if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(first.into_bytes()) {
                resp.extensions_mut().insert(phrase);
            }
        }
        resp
    }

    fn error(&self, err: &ApiErr) -> Response<Full<Bytes>> {
        let mut body = json!({"data": null});
        if !err.errors.is_empty() {
            body["errors"] = json!(err.errors);
        }
        if self.node.version >= crate::PveVersion::V8_4 {
            let mut message = err.message.clone();
            if !message.ends_with('\n') {
                message.push('\n');
            }
            body["message"] = json!(message);
        }
        self.respond(err.status, Some(body), Some(&err.message))
    }

    fn record(
        &self,
        method: &str,
        path: &str,
        template: Option<&str>,
        params: &BTreeMap<String, String>,
        status: u16,
    ) {
        let Some(file) = &self.record else { return };
        // Secrets never reach the record.
        let params: BTreeMap<&String, &str> = params
            .iter()
            .map(|(k, v)| (k, if k == "password" { "***" } else { v.as_str() }))
            .collect();
        let line = json!({"method": method, "path": path, "template": template, "params": params, "status": status});
        let _guard = self.record_lock.lock();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
        {
            let _ = writeln!(f, "{line}");
        }
    }

    /// Answers one HTTP request.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let method = req.method().as_str().to_string();
        let full_path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let json_body = req
            .headers()
            .get("content-type")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"));
        let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return Ok(self.error(&ApiErr {
                    status: 413,
                    message: "request entity too large".into(),
                    errors: BTreeMap::new(),
                }))
            }
        };
        let Some(path) = full_path
            .strip_prefix("/api2/json")
            .map(|p| if p.is_empty() { "/" } else { p })
            .map(str::to_string)
        else {
            return Ok(self.error(&ApiErr {
                status: 501,
                message: format!("Method '{method} {full_path}' not implemented"),
                errors: BTreeMap::new(),
            }));
        };
        let path = path.trim_end_matches('/').to_string();
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };

        if !body.is_empty() && (method == "GET" || method == "DELETE") {
            let err = ApiErr {
                status: 501,
                message: format!("Unexpected content for method '{method}'"),
                errors: BTreeMap::new(),
            };
            self.record(&method, &path, None, &BTreeMap::new(), 501);
            return Ok(self.error(&err));
        }

        let mut params: BTreeMap<String, String> = parse_form(&query).into_iter().collect();
        if !body.is_empty() {
            let text = String::from_utf8_lossy(&body).into_owned();
            if json_body {
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(map)) => {
                        params.extend(map.iter().map(|(k, v)| (k.clone(), json_scalar(v))))
                    }
                    _ => {
                        return Ok(self.error(&ApiErr {
                            status: 400,
                            message: "malformed JSON body".into(),
                            errors: BTreeMap::new(),
                        }))
                    }
                }
            } else {
                params.extend(parse_form(&text));
            }
        }

        let result = self
            .process(&method, &path, auth.as_deref(), &mut params)
            .await;
        let (status, template) = match &result {
            Ok((_, t)) => (200, Some(t.clone())),
            Err((e, t)) => (e.status, t.clone()),
        };
        self.record(&method, &path, template.as_deref(), &params, status);
        Ok(match result {
            Ok((Value::Object(mut m), _)) if m.contains_key("__data") => {
                let data = m.remove("__data").unwrap_or(Value::Null);
                let total = m.remove("__total").unwrap_or(Value::Null);
                self.respond(200, Some(json!({"data": data, "total": total})), None)
            }
            Ok((data, _)) => self.respond(200, Some(json!({"data": data})), None),
            Err((e, _)) if e.status == 401 => self.respond(401, None, Some(&e.message)),
            Err((e, _)) => self.error(&e),
        })
    }

    async fn process(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        params: &mut BTreeMap<String, String>,
    ) -> Result<(Value, String), (ApiErr, Option<String>)> {
        let node = &self.node;
        let users = UserCfg::parse(&node.root.read_user_cfg_text())
            .map_err(|e| (ApiErr::runtime(e.to_string()), None))?;
        let caller =
            auth.and_then(|a| Caller::authenticate(a, &users, |t| node.root.token_secret(t)));
        let Some(caller) = caller else {
            tokio::time::sleep(self.auth_failure_delay).await;
            return Err((
                ApiErr {
                    status: 401,
                    message: "authentication failure".into(),
                    errors: BTreeMap::new(),
                },
                None,
            ));
        };
        self.process_as(method, path, caller, &users, params).await
    }

    /// One request of an authenticated caller: routed and validated by the release's schema, its
    /// permission checked, then answered. `(data, path template)` or `(error, template)`.
    pub async fn process_as(
        &self,
        method: &str,
        path: &str,
        caller: Caller,
        users: &UserCfg,
        params: &mut BTreeMap<String, String>,
    ) -> Result<(Value, String), (ApiErr, Option<String>)> {
        let node = &self.node;
        let not_impl = |m: String| {
            (
                ApiErr {
                    status: 501,
                    message: m,
                    errors: BTreeMap::new(),
                },
                None,
            )
        };
        let (endpoint, path_params) = node
            .version
            .schema()
            .route(method, path)
            .map_err(|e| not_impl(e.message))?;
        if !node.version.has_endpoint(method, &endpoint.template) {
            return Err(not_impl(format!(
                "Method '{method} {path}' not implemented"
            )));
        }
        let template = endpoint.template.clone();
        let tpl = Some(template.clone());
        params.extend(path_params);

        // Parameters this release does not know are unknown to its schema.
        let mut errors = BTreeMap::new();
        let empty = serde_json::Map::new();
        let props = endpoint.properties().unwrap_or(&empty);
        for name in params.keys() {
            let schema_name = if props.contains_key(name) {
                name.clone()
            } else {
                format!("{}[n]", name.trim_end_matches(|c: char| c.is_ascii_digit()))
            };
            if !node.version.has_param(method, &template, &schema_name) {
                errors.insert(name.clone(), "property is not defined in schema and the schema does not allow additional properties".to_string());
            }
            if node.version < crate::PveVersion::V8_4
                && schema_name == "dev[n]"
                && params[name].contains("deny-write")
            {
                errors.insert(name.clone(), "invalid format - format error\ndeny-write: property is not defined in schema and the schema does not allow additional properties\n".into());
            }
        }
        if let Err(e) = schema::validate(endpoint, params) {
            errors.extend(e);
        }
        if !errors.is_empty() {
            return Err((
                ApiErr {
                    status: 400,
                    message: "Parameter verification failed.".into(),
                    errors,
                },
                tpl,
            ));
        }

        if let Some(check) = endpoint
            .permissions()
            .and_then(|p| p.get("check"))
            .and_then(Value::as_array)
        {
            if check.first().and_then(Value::as_str) == Some("perm") {
                let raw_path = check.get(1).and_then(Value::as_str).unwrap_or("/");
                let perm_path = substitute(raw_path, params);
                let privs: Vec<&str> = check
                    .get(2)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let any = check.get(3).and_then(Value::as_str) == Some("any");
                let ok = if any {
                    privs
                        .iter()
                        .any(|p| acl::has(users, &caller, &perm_path, p))
                } else {
                    privs
                        .iter()
                        .all(|p| acl::has(users, &caller, &perm_path, p))
                };
                if !ok {
                    let missing = privs
                        .iter()
                        .find(|p| !acl::has(users, &caller, &perm_path, p))
                        .copied()
                        .unwrap_or("");
                    let shown = if any {
                        privs.join("|")
                    } else {
                        missing.to_string()
                    };
                    return Err((ApiErr::perm(format!("{perm_path}, {shown}")), tpl));
                }
            }
        }

        let node = Arc::clone(&self.node);
        let params_owned = params.clone();
        let m = method.to_string();
        let t = template.clone();
        let outcome =
            tokio::task::spawn_blocking(move || node.handle(&m, &t, &params_owned, &caller))
                .await
                .map_err(|e| (ApiErr::runtime(format!("handler failed: {e}")), tpl.clone()))?;
        outcome.map(|v| (v, template)).map_err(|e| (e, tpl))
    }
}

fn substitute(template: &str, params: &BTreeMap<String, String>) -> String {
    let mut out = template.to_string();
    for (k, v) in params {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// Serves `server` on `listener` (TLS when `tls` is given) until the task is dropped.
pub async fn serve(
    server: Arc<Server>,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    // The node samples its containers for the RRD data, as `pvestatd` does.
    let node = Arc::clone(&server.node);
    let _sampler = crate::server::AbortOnDrop(tokio::spawn(async move {
        loop {
            tokio::time::sleep(node.rrd.every()).await;
            let n = Arc::clone(&node);
            let _ = tokio::task::spawn_blocking(move || n.sample_usage()).await;
        }
    }));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let server = Arc::clone(&server);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| Arc::clone(&server).handle(req));
            let builder = hyper::server::conn::http1::Builder::new();
            match acceptor {
                Some(acc) => {
                    if let Ok(tls_stream) = acc.accept(stream).await {
                        let _ = builder
                            .serve_connection(hyper_util::rt::TokioIo::new(tls_stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}

/// Aborts a task when dropped (the sampler ends with the server loop).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
