//! [`HttpPve`]: the real [`PveApi`] over HTTPS with an API token. Parameters go in the query for GET
//! and DELETE and as a form body for POST and PUT; booleans as `1`/`0`.

use crate::error::PveError;
use crate::tls::{client_config, TlsMode};
use crate::types::*;
use crate::upid::Upid;
use crate::{PveApi, Result};
use appstore_core::Ctid;
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use tokio::sync::OnceCell;

/// Where and how to reach the API.
#[derive(Debug, Clone)]
pub struct PveEndpoint {
    /// `https://127.0.0.1:8006`.
    pub url: String,
    /// `user@realm!tokenid`.
    pub token_id: String,
    /// The token's secret (a UUID).
    pub token_secret: String,
    /// Certificate checking.
    pub tls: TlsMode,
}

/// The HTTP client.
#[derive(Debug)]
pub struct HttpPve {
    http: reqwest::Client,
    base: String,
    auth: String,
    version: OnceCell<VersionInfo>,
    /// Nanoseconds spent waiting for answers (the head; bodies are small).
    waited: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn form(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn p(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

impl HttpPve {
    /// A client for `endpoint`.
    pub fn new(endpoint: &PveEndpoint) -> Result<HttpPve> {
        let tls = client_config(&endpoint.tls)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| PveError::Setup(e.to_string()))?;
        Ok(HttpPve {
            http,
            base: endpoint.url.trim_end_matches('/').to_string(),
            auth: format!(
                "PVEAPIToken={}={}",
                endpoint.token_id, endpoint.token_secret
            ),
            version: OnceCell::new(),
            waited: Default::default(),
        })
    }

    /// Time spent waiting for the node's answers since this client was made, shared by its clones
    /// (benchmarks subtract it to find what the controller itself costs).
    pub fn time_waiting(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        std::sync::Arc::clone(&self.waited)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        params: &[(String, String)],
    ) -> Result<T> {
        let url = format!("{}/api2/json{path}", self.base);
        let m = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| PveError::Setup(e.to_string()))?;
        let mut req = self
            .http
            .request(m, &url)
            .header("Authorization", &self.auth);
        if method == "GET" || method == "DELETE" {
            if !params.is_empty() {
                req = req.query(params);
            }
        } else {
            req = req
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form(params));
        }
        let sent = std::time::Instant::now();
        let resp = req.send().await.map_err(|source| PveError::Transport {
            url: self.base.clone(),
            source,
        });
        self.waited.fetch_add(
            sent.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let resp = resp?;
        let status = resp.status();
        let reason = resp
            .extensions()
            .get::<hyper_reason::ReasonPhrase>()
            .and_then(|r| std::str::from_utf8(r.as_bytes()).ok().map(str::to_string))
            .or_else(|| status.canonical_reason().map(str::to_string))
            .unwrap_or_default();
        let bytes = resp.bytes().await.map_err(|source| PveError::Transport {
            url: self.base.clone(),
            source,
        })?;
        if status.is_success() {
            let body: Value =
                serde_json::from_slice(&bytes).map_err(|source| PveError::Decode {
                    path: path.to_string(),
                    source,
                })?;
            let data = body.get("data").cloned().unwrap_or(Value::Null);
            return serde_json::from_value(data).map_err(|source| PveError::Decode {
                path: path.to_string(),
                source,
            });
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or(reason);
        let params: BTreeMap<String, String> = body
            .get("errors")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Err(PveError::from_status(
            status.as_u16(),
            method,
            path,
            message,
            params,
        ))
    }

    async fn upid(&self, method: &str, path: &str, params: &[(String, String)]) -> Result<Upid> {
        let s: String = self.call(method, path, params).await?;
        Upid::parse(&s).map_err(|e| PveError::Server {
            status: 200,
            message: e,
        })
    }
}

/// hyper keeps a non-standard reason phrase (PVE puts its message there) as a response extension.
mod hyper_reason {
    pub use hyper::ext::ReasonPhrase;
}

fn lxc(node: &str, vmid: Ctid) -> String {
    format!("/nodes/{}/lxc/{vmid}", enc(node))
}

#[async_trait]
impl PveApi for HttpPve {
    async fn version(&self) -> Result<VersionInfo> {
        self.version
            .get_or_try_init(|| async { self.call("GET", "/version", &[]).await })
            .await
            .cloned()
    }

    async fn next_id(&self) -> Result<Ctid> {
        let v: Value = self.call("GET", "/cluster/nextid", &[]).await?;
        ctid_value(&v, "/cluster/nextid")
    }

    async fn is_id_free(&self, vmid: Ctid) -> Result<bool> {
        match self
            .call::<Value>("GET", "/cluster/nextid", &[p("vmid", vmid)])
            .await
        {
            Ok(_) => Ok(true),
            Err(PveError::BadRequest { params, .. }) if params.contains_key("vmid") => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn cluster_resources(&self, kind: Option<ResourceKind>) -> Result<Vec<ClusterResource>> {
        let params: Vec<(String, String)> = match kind {
            Some(ResourceKind::Vm) => vec![p("type", "vm")],
            Some(ResourceKind::Storage) => vec![p("type", "storage")],
            Some(ResourceKind::Node) => vec![p("type", "node")],
            None => vec![],
        };
        self.call("GET", "/cluster/resources", &params).await
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        self.call("GET", "/nodes", &[]).await
    }

    async fn pools(&self) -> Result<Vec<PoolSummary>> {
        self.call("GET", "/pools", &[]).await
    }

    async fn permissions(&self, path: &str) -> Result<std::collections::BTreeSet<String>> {
        // `{ path: { privilege: propagate } }`; with `path` given, at most that one entry.
        let map: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Value>> =
            self.call("GET", "/access/permissions", &[p("path", path)])
                .await?;
        Ok(map
            .into_iter()
            .filter(|(k, _)| k == path)
            .flat_map(|(_, privs)| privs.into_keys())
            .collect())
    }

    async fn pool(&self, poolid: &str) -> Result<PoolInfo> {
        if self.version().await?.has_pool_put() {
            let list: Vec<PoolInfo> = self.call("GET", "/pools", &[p("poolid", poolid)]).await?;
            list.into_iter().next().ok_or_else(|| PveError::Server {
                status: 500,
                message: format!("pool '{poolid}' does not exist"),
            })
        } else {
            self.call("GET", &format!("/pools/{}", enc(poolid)), &[])
                .await
        }
    }

    async fn pool_members(&self, poolid: &str, vmid: Ctid, remove: bool) -> Result<()> {
        let mut params = vec![p("vms", vmid)];
        if remove {
            params.push(p("delete", 1));
        }
        if self.version().await?.has_pool_put() {
            params.push(p("poolid", poolid));
            self.call::<Value>("PUT", "/pools", &params)
                .await
                .map(|_| ())
        } else {
            self.call::<Value>("PUT", &format!("/pools/{}", enc(poolid)), &params)
                .await
                .map(|_| ())
        }
    }

    async fn storages(&self, node: &str, content: Option<&str>) -> Result<Vec<StorageInfo>> {
        let params: Vec<(String, String)> =
            content.map(|c| vec![p("content", c)]).unwrap_or_default();
        self.call("GET", &format!("/nodes/{}/storage", enc(node)), &params)
            .await
    }

    async fn templates(&self, node: &str, storage: &str) -> Result<Vec<Volume>> {
        self.call(
            "GET",
            &format!("/nodes/{}/storage/{}/content", enc(node), enc(storage)),
            &[p("content", "vztmpl")],
        )
        .await
    }

    async fn appliances(&self, node: &str) -> Result<Vec<Appliance>> {
        self.call("GET", &format!("/nodes/{}/aplinfo", enc(node)), &[])
            .await
    }

    async fn download_template(&self, node: &str, storage: &str, template: &str) -> Result<Upid> {
        self.upid(
            "POST",
            &format!("/nodes/{}/aplinfo", enc(node)),
            &[p("storage", storage), p("template", template)],
        )
        .await
    }

    async fn bridges(&self, node: &str) -> Result<Vec<NetworkInterface>> {
        self.call(
            "GET",
            &format!("/nodes/{}/network", enc(node)),
            &[p("type", "any_bridge")],
        )
        .await
    }

    async fn lxc_list(&self, node: &str) -> Result<Vec<LxcSummary>> {
        self.call("GET", &format!("/nodes/{}/lxc", enc(node)), &[])
            .await
    }

    async fn lxc_create(&self, node: &str, spec: &CreateLxc) -> Result<Upid> {
        self.upid("POST", &format!("/nodes/{}/lxc", enc(node)), &spec.form())
            .await
    }

    async fn lxc_config(&self, node: &str, vmid: Ctid) -> Result<LxcConfig> {
        let path = format!("{}/config", lxc(node, vmid));
        let v: serde_json::Map<String, Value> = self.call("GET", &path, &[]).await?;
        let mut cfg = LxcConfig::default();
        for (k, val) in v {
            let text = match val {
                Value::String(s) => s,
                Value::Null => continue,
                other => other.to_string(),
            };
            if k == "digest" {
                cfg.digest = text;
            } else {
                cfg.options.insert(k, text);
            }
        }
        Ok(cfg)
    }

    async fn lxc_update_config(
        &self,
        node: &str,
        vmid: Ctid,
        set: &[(String, String)],
        delete: &[String],
        digest: Option<&str>,
    ) -> Result<()> {
        let mut params: Vec<(String, String)> = set.to_vec();
        if !delete.is_empty() {
            params.push(p("delete", delete.join(",")));
        }
        if let Some(d) = digest {
            params.push(p("digest", d));
        }
        self.call::<Value>("PUT", &format!("{}/config", lxc(node, vmid)), &params)
            .await
            .map(|_| ())
    }

    async fn lxc_status(&self, node: &str, vmid: Ctid) -> Result<LxcStatus> {
        self.call("GET", &format!("{}/status/current", lxc(node, vmid)), &[])
            .await
    }

    async fn lxc_start(&self, node: &str, vmid: Ctid) -> Result<Upid> {
        self.upid("POST", &format!("{}/status/start", lxc(node, vmid)), &[])
            .await
    }

    async fn lxc_stop(&self, node: &str, vmid: Ctid) -> Result<Upid> {
        self.upid("POST", &format!("{}/status/stop", lxc(node, vmid)), &[])
            .await
    }

    async fn lxc_shutdown(&self, node: &str, vmid: Ctid, timeout_sec: u32) -> Result<Upid> {
        self.upid(
            "POST",
            &format!("{}/status/shutdown", lxc(node, vmid)),
            &[p("timeout", timeout_sec)],
        )
        .await
    }

    async fn lxc_reboot(&self, node: &str, vmid: Ctid) -> Result<Upid> {
        self.upid("POST", &format!("{}/status/reboot", lxc(node, vmid)), &[])
            .await
    }

    async fn lxc_resize(&self, node: &str, vmid: Ctid, disk: &str, size: &str) -> Result<Upid> {
        self.upid(
            "PUT",
            &format!("{}/resize", lxc(node, vmid)),
            &[p("disk", disk), p("size", size)],
        )
        .await
    }

    async fn lxc_rrddata(
        &self,
        node: &str,
        vmid: Ctid,
        timeframe: Timeframe,
    ) -> Result<Vec<RrdRow>> {
        self.call(
            "GET",
            &format!("{}/rrddata", lxc(node, vmid)),
            &[p("timeframe", timeframe.as_str()), p("cf", "AVERAGE")],
        )
        .await
    }

    async fn vzdump(&self, node: &str, spec: &Vzdump) -> Result<Upid> {
        self.upid(
            "POST",
            &format!("/nodes/{}/vzdump", enc(node)),
            &spec.form(),
        )
        .await
    }

    async fn backups(&self, node: &str, storage: &str, vmid: Ctid) -> Result<Vec<BackupVolume>> {
        self.call(
            "GET",
            &format!("/nodes/{}/storage/{}/content", enc(node), enc(storage)),
            &[p("content", "backup"), p("vmid", vmid)],
        )
        .await
    }

    async fn delete_volume(&self, node: &str, storage: &str, volid: &str) -> Result<Upid> {
        self.upid(
            "DELETE",
            &format!(
                "/nodes/{}/storage/{}/content/{}",
                enc(node),
                enc(storage),
                enc(volid)
            ),
            &[],
        )
        .await
    }

    async fn lxc_restore(&self, node: &str, spec: &RestoreLxc) -> Result<Upid> {
        self.upid("POST", &format!("/nodes/{}/lxc", enc(node)), &spec.form())
            .await
    }

    async fn lxc_destroy(&self, node: &str, vmid: Ctid, purge: bool) -> Result<Upid> {
        let params = if purge { vec![p("purge", 1)] } else { vec![] };
        self.upid("DELETE", &lxc(node, vmid), &params).await
    }

    async fn lxc_interfaces(&self, node: &str, vmid: Ctid) -> Result<Option<Vec<Interface>>> {
        let v = self.version().await?;
        if !v.has_interfaces() {
            return Err(PveError::Unsupported {
                feature: "reading a container's addresses (interfaces)",
                needed: "8.1",
                found: v.version,
            });
        }
        self.call("GET", &format!("{}/interfaces", lxc(node, vmid)), &[])
            .await
    }

    async fn lxc_move_volume(
        &self,
        node: &str,
        vmid: Ctid,
        volume: &str,
        target: Ctid,
        target_key: &str,
    ) -> Result<Upid> {
        let params = vec![
            p("volume", volume),
            p("target-vmid", target),
            p("target-volume", target_key),
        ];
        self.upid("POST", &format!("{}/move_volume", lxc(node, vmid)), &params)
            .await
    }

    async fn snapshots(&self, node: &str, vmid: Ctid) -> Result<Vec<Snapshot>> {
        self.call("GET", &format!("{}/snapshot", lxc(node, vmid)), &[])
            .await
    }

    async fn snapshot_create(
        &self,
        node: &str,
        vmid: Ctid,
        name: &str,
        description: &str,
    ) -> Result<Upid> {
        self.upid(
            "POST",
            &format!("{}/snapshot", lxc(node, vmid)),
            &[p("snapname", name), p("description", description)],
        )
        .await
    }

    async fn snapshot_rollback(&self, node: &str, vmid: Ctid, name: &str) -> Result<Upid> {
        self.upid(
            "POST",
            &format!("{}/snapshot/{}/rollback", lxc(node, vmid), enc(name)),
            &[],
        )
        .await
    }

    async fn snapshot_delete(&self, node: &str, vmid: Ctid, name: &str) -> Result<Upid> {
        self.upid(
            "DELETE",
            &format!("{}/snapshot/{}", lxc(node, vmid), enc(name)),
            &[],
        )
        .await
    }

    async fn task_status(&self, upid: &Upid) -> Result<TaskStatus> {
        self.call(
            "GET",
            &format!(
                "/nodes/{}/tasks/{}/status",
                enc(&upid.node),
                enc(upid.as_str())
            ),
            &[],
        )
        .await
    }

    async fn task_log(&self, upid: &Upid, start: u64, limit: u64) -> Result<Vec<LogLine>> {
        self.call(
            "GET",
            &format!(
                "/nodes/{}/tasks/{}/log",
                enc(&upid.node),
                enc(upid.as_str())
            ),
            &[p("start", start), p("limit", limit)],
        )
        .await
    }
}

fn ctid_value(v: &Value, path: &str) -> Result<Ctid> {
    match v {
        Value::Number(n) => n.as_i64().and_then(|n| Ctid::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| PveError::Server {
        status: 200,
        message: format!("{path} answered {v}, not a container id"),
    })
}
