//! The OpenAPI document held against the running demo, driven by the document alone. For every
//! operation:
//! - requests the document calls valid are never refused for their shape (`invalid_query`,
//!   `invalid_json`), never answered 405, 415 or 5xx;
//! - every query value and every body the document forbids is refused, naming the field;
//! - a success has the documented status and content type, and a JSON answer matches its schema;
//!   an error matches the Error schema;
//! - a method the document does not list for a path is a 405 whose `Allow` lists those it does.

use super::{json_client_builder, Demo};
use reqwest::blocking::{Client, Response};
use serde_json::{json, Map, Value};

/// Follows a `$ref` into `#/components/schemas`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    }
}

/// Every way `value` breaks `schema` (the part of OpenAPI 3.0 that the document uses).
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    let nullable = schema.get("nullable") == Some(&Value::Bool(true));
    if value.is_null() && nullable {
        return;
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            let fits = branches.iter().any(|b| {
                let mut e = Vec::new();
                check(doc, b, value, at, &mut e);
                e.is_empty()
            });
            if !fits {
                out.push(format!("{at}: {value} fits no branch of {key}"));
            }
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        if !values.contains(value) {
            out.push(format!("{at}: {value} is not one of {values:?}"));
        }
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let fits = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !fits {
            out.push(format!("{at}: {value} is not of type {t}"));
            return;
        }
    }
    if let (Some(min), Some(v)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) {
        if v < min {
            out.push(format!("{at}: {v} is below {min}"));
        }
    }
    if let (Some(max), Some(v)) = (
        schema.get("maximum").and_then(Value::as_f64),
        value.as_f64(),
    ) {
        if v > max {
            out.push(format!("{at}: {v} is above {max}"));
        }
    }
    if let Some(o) = value.as_object() {
        for r in schema["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap_or_default();
            if !o.contains_key(r) {
                out.push(format!("{at}: `{r}` is missing"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, v) in o {
            match (
                props.and_then(|p| p.get(k)),
                schema.get("additionalProperties"),
            ) {
                (Some(p), _) => check(doc, p, v, &format!("{at}.{k}"), out),
                (None, Some(Value::Bool(false))) => out.push(format!("{at}: `{k}` is not allowed")),
                (None, Some(extra @ Value::Object(_))) => {
                    check(doc, extra, v, &format!("{at}.{k}"), out)
                }
                _ => {}
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, v) in list.iter().enumerate() {
            check(doc, items, v, &format!("{at}[{i}]"), out);
        }
    }
}

/// A value `schema` accepts: its default, its first choice, or the simplest of its type. Objects
/// get their required properties, or all of them with `full`.
fn sample(doc: &Value, schema: &Value, full: bool) -> Value {
    let schema = resolve(doc, schema);
    if let Some(d) = schema.get("default").filter(|d| !d.is_null()) {
        return d.clone();
    }
    if let Some(first) = schema["enum"]
        .as_array()
        .and_then(|e| e.iter().find(|v| !v.is_null()))
    {
        return first.clone();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(b) = schema[key].as_array().and_then(|b| {
            b.iter().find(|b| {
                b["enum"]
                    .as_array()
                    .is_none_or(|e| e.iter().any(|v| !v.is_null()))
            })
        }) {
            return sample(doc, b, full);
        }
    }
    match schema["type"].as_str() {
        Some("integer") => {
            let min = schema["minimum"].as_i64().unwrap_or(1).max(1);
            json!(schema["maximum"].as_i64().map_or(min, |m| min.min(m)))
        }
        Some("number") => json!(1),
        Some("boolean") => json!(true),
        Some("string") => json!("x"),
        Some("array") => json!([]),
        _ => {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut o = Map::new();
            for (k, p) in schema["properties"].as_object().into_iter().flatten() {
                if full || required.contains(&k.as_str()) {
                    o.insert(k.clone(), sample(doc, p, full));
                }
            }
            Value::Object(o)
        }
    }
}

/// Query values the schema forbids.
fn forbidden_values(schema: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let choices = schema["enum"]
        .as_array()
        .or_else(|| schema["anyOf"].as_array())
        .or_else(|| schema["oneOf"].as_array());
    if choices.is_some() {
        bad.push("not-a-choice".to_string());
    }
    match schema["type"].as_str() {
        Some("integer") => {
            bad.push("x".into());
            if let Some(max) = schema["maximum"].as_i64() {
                bad.push((max + 1).to_string());
            }
            if let Some(min) = schema["minimum"].as_i64() {
                bad.push((min - 1).to_string());
            }
        }
        Some("boolean") => bad.push("maybe".into()),
        _ => {}
    }
    bad
}

/// A concrete path: ids of nothing (404 is a documented error), the reference catalog's app.
fn concrete(path: &str) -> String {
    path.replace("{app_id}", "radicale")
        .replace("{job_id}", "999")
        .replace("{install_id}", "999")
        .replace("{target_id}", "999")
        .replace("{key}", "password")
}

struct Probe<'a> {
    doc: &'a Value,
    client: Client,
    base: String,
    problems: Vec<String>,
}

impl Probe<'_> {
    fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Response {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "get" => self.client.get(&url),
            "post" => self.client.post(&url),
            other => self
                .client
                .request(other.to_uppercase().parse().unwrap(), &url),
        };
        let req = req.query(query);
        let req = match body {
            Some(b) => req.body(b.to_string()),
            None => req,
        };
        req.send().unwrap()
    }

    /// A request the document calls valid: its answer must be documented and not a refusal of
    /// its shape.
    fn valid(&mut self, what: &str, op: &Value, resp: Response) {
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| {
                v.to_str()
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap()
                    .trim()
                    .to_string()
            })
            .unwrap_or_default();
        if ctype == "text/event-stream" {
            if !op["responses"][status.to_string()]["content"]["text/event-stream"].is_object() {
                self.problems
                    .push(format!("{what}: an undocumented stream ({status})"));
            }
            return;
        }
        let bytes = resp.bytes().unwrap();
        if [405, 415].contains(&status) || status >= 500 {
            self.problems.push(format!(
                "{what}: {status} {}",
                String::from_utf8_lossy(&bytes)
            ));
            return;
        }
        let documented = &op["responses"][status.to_string()];
        if status < 400 {
            let content = &documented["content"];
            if !content.is_object() {
                self.problems
                    .push(format!("{what}: status {status} is not documented"));
                return;
            }
            let Some(media) = content.get(&ctype) else {
                self.problems
                    .push(format!("{what}: content type `{ctype}` is not documented"));
                return;
            };
            if ctype == "application/json" {
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                check(self.doc, &media["schema"], &body, what, &mut self.problems);
            }
            return;
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        check(
            self.doc,
            &json!({"$ref": "#/components/schemas/Error"}),
            &body,
            what,
            &mut self.problems,
        );
        let code = body["error"]["code"].as_str().unwrap_or_default();
        if ["invalid_query", "invalid_json"].contains(&code) {
            self.problems
                .push(format!("{what}: a valid request was refused: {body}"));
        }
    }

    /// A request the document forbids: a 400 naming `field` (when given) with `code`.
    fn refused(&mut self, what: &str, resp: Response, code: &str, field: Option<&str>) {
        let status = resp.status().as_u16();
        let body: Value = resp.json().unwrap_or(Value::Null);
        if status != 400 || body["error"]["code"] != code {
            self.problems.push(format!(
                "{what}: accepted ({status}) though the document forbids it: {body}"
            ));
        } else if let Some(f) = field {
            if !body["error"]["fields"].get(f).is_some_and(Value::is_string) {
                self.problems
                    .push(format!("{what}: the refusal does not name `{f}`: {body}"));
            }
        }
    }
}

#[test]
fn the_api_does_what_its_openapi_document_says() {
    let demo = Demo::start();
    demo.wait_for_catalog();
    let doc: Value = demo.get("/api/openapi.json").json().unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    let mut p = Probe {
        doc: &doc,
        client: json_client_builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap(),
        base: demo.base.clone(),
        problems: Vec::new(),
    };
    let (mut operations, mut requests) = (0, 0);
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let url = concrete(path);
        let documented: Vec<String> = ops
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        for (method, op) in ops.as_object().unwrap() {
            operations += 1;
            let query: Vec<&Value> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|q| q["in"] == "query")
                .collect();
            let body_schema = op["requestBody"]["content"]["application/json"]["schema"].clone();
            let has_body = body_schema.is_object();
            let minimal = has_body.then(|| sample(&doc, &body_schema, false));
            let full = has_body.then(|| sample(&doc, &body_schema, true));
            let what = format!("{} {path}", method.to_uppercase());

            // Valid: nothing optional, then every parameter and property given.
            let body = minimal
                .clone()
                .or_else(|| (method == "post").then(|| json!({})));
            p.valid(&what, op, p.send(method, &url, &[], body.as_ref()));
            let all: Vec<(String, String)> = query
                .iter()
                .map(|q| {
                    let v = sample(&doc, &q["schema"], true);
                    let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (q["name"].as_str().unwrap().to_string(), text)
                })
                .collect();
            p.valid(
                &format!("{what} with {all:?}"),
                op,
                p.send(method, &url, &all, full.as_ref().or(body.as_ref())),
            );
            requests += 2;

            // Each documented choice of each parameter is accepted.
            for q in &query {
                let name = q["name"].as_str().unwrap().to_string();
                let choices: Vec<Value> = match q["schema"]["anyOf"]
                    .as_array()
                    .or(q["schema"]["oneOf"].as_array())
                {
                    Some(b) => b
                        .iter()
                        .flat_map(|b| b["enum"].as_array().cloned().unwrap_or_default())
                        .filter(|v| !v.is_null())
                        .collect(),
                    None => q["schema"]["enum"].as_array().cloned().unwrap_or_default(),
                };
                for c in choices {
                    let v = vec![(name.clone(), c.as_str().unwrap().to_string())];
                    p.valid(
                        &format!("{what} with {v:?}"),
                        op,
                        p.send(method, &url, &v, body.as_ref()),
                    );
                    requests += 1;
                }
                // What the schema forbids is refused, by name.
                for bad in forbidden_values(&q["schema"]) {
                    let v = vec![(name.clone(), bad)];
                    let resp = p.send(method, &url, &v, body.as_ref());
                    p.refused(
                        &format!("{what} with {v:?}"),
                        resp,
                        "invalid_query",
                        Some(&name),
                    );
                    requests += 1;
                }
            }

            // Bodies the schema forbids: none at all (unless optional), an unknown property, each
            // required property left out.
            if let Some(minimal) = &minimal {
                if op["requestBody"]["required"] == true {
                    // An empty body (Content-Length: 0).
                    let resp = p
                        .client
                        .post(format!("{}{url}", p.base))
                        .body("")
                        .send()
                        .unwrap();
                    p.refused(
                        &format!("{what} with an empty body"),
                        resp,
                        "invalid_json",
                        None,
                    );
                }
                let schema = resolve(&doc, &body_schema);
                if schema["additionalProperties"] == false {
                    let mut extra = minimal.clone();
                    extra["zz_unknown"] = json!(1);
                    let resp = p.send(method, &url, &[], Some(&extra));
                    p.refused(
                        &format!("{what} with an unknown property"),
                        resp,
                        "invalid_json",
                        Some("zz_unknown"),
                    );
                }
                for r in schema["required"].as_array().into_iter().flatten() {
                    let r = r.as_str().unwrap();
                    let mut less = minimal.clone();
                    less.as_object_mut().unwrap().remove(r);
                    let resp = p.send(method, &url, &[], Some(&less));
                    p.refused(
                        &format!("{what} without `{r}`"),
                        resp,
                        "invalid_json",
                        Some(r),
                    );
                    requests += 1;
                }
                requests += 2;
            }
        }
        // Methods the path does not have: 405 with the ones it does.
        for method in ["put", "delete", "patch"] {
            let resp = p.send(method, &url, &[], None);
            let allow = resp
                .headers()
                .get("allow")
                .map(|v| v.to_str().unwrap().to_string());
            let mut listed: Vec<String> = allow
                .as_deref()
                .unwrap_or_default()
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect();
            listed.sort();
            let mut want = documented.clone();
            want.sort();
            if resp.status() != 405 || listed != want {
                p.problems.push(format!(
                    "{} {path}: {} with Allow {allow:?}, documented {want:?}",
                    method.to_uppercase(),
                    resp.status()
                ));
            }
            requests += 1;
        }
    }
    assert!(
        p.problems.is_empty(),
        "{} of {requests} requests over {operations} operations disagree with the document:\n{}",
        p.problems.len(),
        p.problems.join("\n")
    );
    assert!(operations >= 30, "{operations}");
    println!("{requests} requests over {operations} operations agree with the document");
}
