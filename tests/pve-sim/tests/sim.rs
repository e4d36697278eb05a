//! The simulator on the wire, as a real node answers: schema subset kept equal to the real schema,
//! 501 for unknown paths and wrong methods, 400 for unknown parameters and bad formats, 401 for bad
//! tokens, body on DELETE refused, version differences; and `pct` with its real syntax and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first failure

use pve_sim::schema::Schema;
use pve_sim::PveVersion;
use std::path::Path;
use std::time::Duration;

fn shared_apidata(file: &str) -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/pve-api")
        .join(file);
    std::fs::read_to_string(path).ok()
}

/// The committed subset of `file` (a real schema) is what `ENDPOINTS` takes from it.
fn subset_matches(file: &str, subset: &str, schema: &Schema) {
    let full = shared_apidata(file);
    if !pve_sim::harness::prerequisite(
        full.is_some(),
        "APPSTORE_REQUIRE_SHARED",
        &format!("../shared/pve-api/{file} (a real PVE schema) is not beside the checkout"),
    ) {
        return;
    }
    let Some(full) = full else { return };
    let expected = Schema::from_apidata(&full).subset_document();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(subset);
    // expect-test: `UPDATE_EXPECT=1` rewrites the file from the real schema.
    expect_test::expect_file![path]
        .assert_eq(&(serde_json::to_string_pretty(&expected).unwrap() + "\n"));
    let endpoints = pve_sim::schema::ENDPOINTS
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(
        schema.endpoints().len(),
        endpoints,
        "every listed endpoint is in {subset}"
    );
}

#[test]
fn the_9_1_subset_matches_the_real_9_1_schema() {
    subset_matches(
        "apidata-9.1.json",
        "api-subset-9.1.json",
        pve_sim::schema::schema_9(),
    );
    // What 9.1 adds to the create call, and what the simulator's 8.x releases do not know.
    let create = pve_sim::schema::schema_9()
        .endpoints()
        .iter()
        .find(|e| e.method == "POST" && e.template == "/nodes/{node}/lxc")
        .unwrap();
    for added in ["entrypoint", "env", "ha-managed"] {
        assert!(create.properties().unwrap().contains_key(added), "{added}");
        assert!(!PveVersion::V8_4.has_param("POST", "/nodes/{node}/lxc", added));
        assert!(PveVersion::V9_1.has_param("POST", "/nodes/{node}/lxc", added));
    }
}

#[test]
fn schema_subset_matches_the_real_schema() {
    subset_matches("apidata.json", "api-subset.json", pve_sim::schema::schema());
}

type Sim = pve_sim::harness::RunningSim;

fn start(version: PveVersion) -> Sim {
    pve_sim::harness::start(pve_sim::harness::HarnessOptions {
        version,
        ..Default::default()
    })
    .unwrap()
}

fn call(
    sim: &Sim,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, String, serde_json::Value) {
    let client = reqwest::blocking::Client::new();
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client
        .request(m, format!("{}/api2/json{path}", sim.url))
        .header("Authorization", format!("PVEAPIToken={token}"));
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(b.to_string());
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let reason = resp
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .unwrap_or_default();
    let text = resp.text().unwrap();
    (
        status,
        reason,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn unknown_paths_and_wrong_methods_are_501() {
    let sim = start(PveVersion::V8_4);
    let (status, reason, _) = call(
        &sim,
        "GET",
        "/nodes/pve1/qemu-nope",
        &sim.creds.root_token,
        None,
    );
    assert_eq!(
        (status, reason.as_str()),
        (501, "Method 'GET /nodes/pve1/qemu-nope' not implemented")
    );
    let (status, _, _) = call(&sim, "PATCH", "/nodes", &sim.creds.root_token, None);
    assert_eq!(status, 501);
    let (status, reason, _) = call(
        &sim,
        "DELETE",
        "/nodes/pve1/lxc/100",
        &sim.creds.root_token,
        Some("purge=1"),
    );
    assert_eq!(
        (status, reason.as_str()),
        (501, "Unexpected content for method 'DELETE'")
    );
}

#[test]
fn bad_parameters_are_400_with_pves_messages() {
    let sim = start(PveVersion::V8_4);
    let t = &sim.creds.root_token;
    let (status, reason, body) = call(
        &sim,
        "POST",
        "/nodes/pve1/lxc",
        t,
        Some("vmid=100&ostemplate=local:vztmpl/x&unprivileged=true&bogus=1&hostname=bad_name!"),
    );
    assert_eq!(
        (status, reason.as_str()),
        (400, "Parameter verification failed.")
    );
    let errors = &body["errors"];
    assert_eq!(
        errors["unprivileged"],
        "type check ('boolean') failed - got 'true'"
    );
    assert_eq!(
        errors["bogus"],
        "property is not defined in schema and the schema does not allow additional properties"
    );
    assert!(
        errors["hostname"]
            .as_str()
            .unwrap()
            .starts_with("invalid format"),
        "{body}"
    );
    assert_eq!(
        body["message"], "Parameter verification failed.\n",
        "8.4 adds the message"
    );
    let (status, _, body) = call(
        &sim,
        "POST",
        "/nodes/pve1/lxc",
        t,
        Some("ostemplate=local:vztmpl/x"),
    );
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"]["vmid"],
        "property is missing and it is not optional"
    );
    let (_, _, body) = call(
        &sim,
        "POST",
        "/nodes/pve1/lxc",
        t,
        Some("vmid=100&ostemplate=local:vztmpl/x&net0=name=eth0,bridge=vmbr0,colour=red"),
    );
    assert!(
        body["errors"]["net0"]
            .as_str()
            .unwrap()
            .contains("colour: property is not defined"),
        "{body}"
    );
}

#[test]
fn bad_tokens_get_401_after_a_delay() {
    let sim = start(PveVersion::V8_4);
    let bad = sim
        .creds
        .store_token
        .rsplit_once('=')
        .unwrap()
        .0
        .to_string()
        + "=00000000-0000-0000-0000-000000000000";
    let start = std::time::Instant::now();
    let (status, _, body) = call(&sim, "GET", "/version", &bad, None);
    assert_eq!(status, 401);
    assert!(body.is_null(), "401 has an empty body");
    assert!(start.elapsed() >= Duration::from_millis(20));
}

#[test]
fn pool_scoped_token_is_refused_exactly_where_pve_refuses_it() {
    let sim = start(PveVersion::V8_4);
    let t = &sim.creds.store_token;
    let base = "vmid=120&ostemplate=local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst&rootfs=local-lvm:4&net0=name=eth0,bridge=vmbr0,ip=dhcp";
    let (status, reason, _) = call(
        &sim,
        "POST",
        "/nodes/pve1/lxc",
        t,
        Some(&format!("{base}&pool=appstore&tags=appstore-managed")),
    );
    assert_eq!(
        (status, reason.as_str()),
        (403, "Permission check failed (/vms/120, VM.Config.Options)")
    );
    let (status, reason, _) = call(
        &sim,
        "POST",
        "/nodes/pve1/lxc",
        t,
        Some(&format!("{base}&pool=appstore&features=keyctl=1")),
    );
    assert_eq!((status, reason.as_str()), (403, "Permission check failed (changing feature flags (except nesting) is only allowed for root@pam)"));
    let (status, reason, _) = call(
        &sim,
        "POST",
        "/nodes/pve1/lxc",
        t,
        Some(&format!("{base}&pool=other")),
    );
    assert_eq!(
        (status, reason.as_str()),
        (403, "Permission check failed (/vms/120, VM.Allocate)")
    );
    let (status, reason, _) = call(
        &sim,
        "POST",
        "/nodes/pve1/lxc",
        t,
        Some(&format!(
            "{base}&pool=appstore&net1=name=eth1,bridge=vmbr1,ip=dhcp"
        )),
    );
    assert_eq!(
        (status, reason.as_str()),
        (
            403,
            "Permission check failed (/sdn/zones/localnetwork/vmbr1, SDN.Use)"
        )
    );
    let (status, _, body) = call(
        &sim,
        "POST",
        "/nodes/pve1/lxc",
        t,
        Some(&format!("{base}&pool=appstore&features=nesting=1")),
    );
    assert_eq!(status, 200, "{body}");
    let (status, reason, _) = call(
        &sim,
        "PUT",
        "/nodes/pve1/lxc/120/config",
        t,
        Some("dev0=/dev/dri/renderD128,gid=104"),
    );
    assert_eq!(
        (status, reason.as_str()),
        (
            403,
            "Permission check failed (configuring device passthrough is only allowed for root@pam)"
        )
    );
    let (status, _, _) = call(
        &sim,
        "GET",
        "/nodes/pve1/lxc/120/config",
        &sim.creds.nobody_token,
        None,
    );
    assert_eq!(status, 403);
    // The pool-scoped token sees its own pool only, and only the bridge it may use.
    let (_, _, pools) = call(&sim, "GET", "/pools", t, None);
    assert_eq!(pools["data"].as_array().unwrap().len(), 1);
    let (_, _, nets) = call(&sim, "GET", "/nodes/pve1/network?type=any_bridge", t, None);
    assert_eq!(nets["data"].as_array().unwrap().len(), 1);
}

#[test]
fn older_releases_lack_what_they_lack() {
    let sim = start(PveVersion::V8_0);
    let t = &sim.creds.root_token;
    let (status, _, _) = call(&sim, "PUT", "/pools", t, Some("poolid=appstore&vms=100"));
    assert_eq!(status, 501);
    let (status, _, body) = call(&sim, "GET", "/pools?poolid=appstore", t, None);
    assert_eq!(status, 400);
    assert!(
        body.get("message").is_none(),
        "8.0 has no message in error bodies"
    );
    let (_, _, body) = call(&sim, "POST", "/nodes/pve1/lxc", t, Some("vmid=130&ostemplate=local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst&dev0=/dev/null"));
    assert_eq!(
        body["errors"]["dev0"],
        "property is not defined in schema and the schema does not allow additional properties"
    );
}

fn pct(sim: &Sim, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(sim.root.join("usr/sbin/pct"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pct_has_the_real_syntax_and_exit_codes() {
    let sim = start(PveVersion::V8_4);
    let (code, _, err) = pct(&sim, &["status", "140"]);
    assert_eq!(code, 255);
    assert!(
        err.contains("Configuration file 'nodes/pve1/lxc/140.conf' does not exist"),
        "{err}"
    );
    assert_eq!(
        pct(
            &sim,
            &[
                "create",
                "140",
                "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                "--hostname",
                "t1",
                "--unprivileged",
                "1"
            ]
        )
        .0,
        0
    );
    assert_eq!(pct(&sim, &["status", "140"]).1, "status: stopped\n");
    let (code, _, err) = pct(&sim, &["exec", "140", "--", "true"]);
    assert_eq!((code, err.trim()), (255, "CT 140 not running"));
    assert_eq!(pct(&sim, &["start", "140"]).0, 0);
    let (code, _, err) = pct(
        &sim,
        &[
            "set",
            "140",
            "--dev0",
            "/dev/dri/renderD128,gid=104",
            "--bogus",
            "1",
        ],
    );
    assert_eq!(code, 255);
    assert!(
        err.contains("bogus: property is not defined in schema"),
        "{err}"
    );
    assert_eq!(
        pct(
            &sim,
            &["set", "140", "--dev0", "/dev/dri/renderD128,gid=104"]
        )
        .0,
        0
    );
    assert!(pct(&sim, &["config", "140"])
        .1
        .contains("dev0: /dev/dri/renderD128,gid=104\n"));
    // push: a missing destination directory fails, yet exits 0 as the real pct does.
    let file = sim.root.join("hello.sh");
    std::fs::write(&file, "echo hi\n").unwrap();
    assert_eq!(
        pct(
            &sim,
            &[
                "push",
                "140",
                file.to_str().unwrap(),
                "/nonexistent/dir/hello.sh"
            ]
        )
        .0,
        0
    );
    assert_eq!(
        pct(
            &sim,
            &[
                "exec",
                "140",
                "--",
                "test",
                "-f",
                "/nonexistent/dir/hello.sh"
            ]
        )
        .0,
        1
    );
    assert_eq!(
        pct(&sim, &["exec", "140", "--", "mkdir", "-p", "/opt/appstore"]).0,
        0
    );
    assert_eq!(
        pct(
            &sim,
            &[
                "push",
                "140",
                file.to_str().unwrap(),
                "/opt/appstore/hello.sh",
                "--perms",
                "0755"
            ]
        )
        .0,
        0
    );
    assert_eq!(
        pct(
            &sim,
            &["exec", "140", "--", "test", "-f", "/opt/appstore/hello.sh"]
        )
        .0,
        0
    );
    let (code, _, err) = pct(&sim, &["destroy", "140"]);
    assert_eq!(
        (code, err.trim()),
        (255, "CT 140 is running - destroy failed")
    );
    assert_eq!(pct(&sim, &["destroy", "140", "--force", "--purge"]).0, 0);
    assert!(!sim.root.join("etc/pve/lxc/140.conf").exists());
    assert_eq!(pct(&sim, &["frobnicate", "140"]).0, 255);
}

/// What a 9.1 node answers differently from 8.4: its release, Debian 13 in `aplinfo`, the create
/// call's OCI parameters, and no start for a container that names a cgroup v1 controller.
#[test]
fn a_9_1_node_answers_as_9_1() {
    let sim = start(PveVersion::V9_1);
    let t = &sim.creds.root_token;
    let (_, _, v) = call(&sim, "GET", "/version", t, None);
    assert_eq!(v["data"]["release"], "9.1");
    let (_, _, apl) = call(&sim, "GET", "/nodes/pve1/aplinfo", t, None);
    let os: Vec<&str> = apl["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["os"].as_str().unwrap())
        .collect();
    assert!(
        os.contains(&"debian-13") && os.contains(&"debian-12"),
        "{os:?}"
    );
    // `entrypoint` is a 9.1 parameter: known here (the create then fails for the missing
    // template), unknown to 8.4.
    let create = "vmid=100&ostemplate=local:vztmpl/none.tar.zst&entrypoint=/bin/sh";
    let (status, _, body) = call(&sim, "POST", "/nodes/pve1/lxc", t, Some(create));
    assert!(
        body["errors"].get("entrypoint").is_none(),
        "{status} {body}"
    );
    let old = start(PveVersion::V8_4);
    let (status, _, body) = call(
        &old,
        "POST",
        "/nodes/pve1/lxc",
        &old.creds.root_token,
        Some(create),
    );
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"]["entrypoint"],
        "property is not defined in schema and the schema does not allow additional properties"
    );
}

/// Runs one of the node's `usr/sbin` tools: (exit code, stdout, stderr).
fn tool(sim: &Sim, name: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(sim.root.join("usr/sbin").join(name))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `pveum` makes what an installer makes (a user, a role, a pool, ACLs, a privilege-separated
/// token) in the node's files for real, so the API then lets the new token do exactly that; 9.1
/// refuses a role with `VM.Monitor`; `pvesh` answers as root with the API's own data; removal
/// takes the token's ACLs with it.
#[test]
fn pveum_and_pvesh_act_on_the_node_for_real() {
    let sim = start(PveVersion::V9_1);
    let ok = |args: &[&str]| {
        let (code, out, err) = tool(&sim, "pveum", args);
        assert_eq!(code, 0, "pveum {args:?}: {err}");
        out
    };
    ok(&["user", "add", "store2@pve", "--comment", "second store"]);
    let (code, _, err) = tool(&sim, "pveum", &["user", "add", "store2@pve"]);
    assert_eq!(
        (code, err.trim()),
        (255, "create user failed: user 'store2@pve' already exists")
    );
    let (code, _, err) = tool(
        &sim,
        "pveum",
        &["role", "add", "Old", "--privs", "VM.Audit,VM.Monitor"],
    );
    assert_eq!(code, 255);
    assert!(err.contains("invalid privilege 'VM.Monitor'"), "{err}");
    ok(&["role", "add", "Store2", "--privs", "Pool.Audit,VM.Audit"]);
    ok(&["pool", "add", "store2", "--comment", "Second store"]);
    let token: serde_json::Value = serde_json::from_str(&ok(&[
        "user",
        "token",
        "add",
        "store2@pve",
        "api",
        "--privsep",
        "1",
        "--output-format",
        "json",
    ]))
    .unwrap();
    assert_eq!(token["full-tokenid"], "store2@pve!api");
    let secret = token["value"].as_str().unwrap();
    ok(&[
        "acl",
        "modify",
        "/pool/store2",
        "--users",
        "store2@pve",
        "--tokens",
        "store2@pve!api",
        "--roles",
        "Store2",
    ]);
    let auth = format!("store2@pve!api={secret}");
    let (status, _, body) = call(&sim, "GET", "/pools/store2", &auth, None);
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = call(
        &sim,
        "GET",
        "/access/permissions?path=/pool/store2",
        &auth,
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["/pool/store2"],
        serde_json::json!({"Pool.Audit": 1, "VM.Audit": 1})
    );

    let (code, out, err) = tool(&sim, "pvesh", &["get", "/pools", "--output-format", "json"]);
    assert_eq!(code, 0, "{err}");
    let pools: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&out)
        .unwrap()
        .iter()
        .map(|p| p["poolid"].as_str().unwrap().to_string())
        .collect();
    assert!(
        pools.contains(&"store2".to_string()) && pools.contains(&"appstore".to_string()),
        "{pools:?}"
    );
    let (code, out, _) = tool(
        &sim,
        "pvesh",
        &[
            "get",
            "/nodes/pve1/storage",
            "--content",
            "rootdir",
            "--output-format",
            "json",
        ],
    );
    assert_eq!(code, 0);
    assert!(out.contains("\"local-lvm\""), "{out}");
    let (code, _, err) = tool(
        &sim,
        "pvesh",
        &["get", "/nodes/pve1/storage", "--colour", "red"],
    );
    assert_eq!(code, 255);
    assert!(
        err.contains("colour: property is not defined in schema"),
        "{err}"
    );
    let (_, out, _) = tool(&sim, "pveversion", &[]);
    assert!(out.starts_with("pve-manager/9.1.2/"), "{out}");

    ok(&["user", "token", "remove", "store2@pve", "api"]);
    let (status, _, _) = call(&sim, "GET", "/pools/store2", &auth, None);
    assert_eq!(status, 401, "the removed token no longer authenticates");
    let acls = ok(&["acl", "list", "--output-format", "json"]);
    assert!(!acls.contains("store2@pve!api"), "{acls}");
    ok(&["user", "delete", "store2@pve"]);
    ok(&["role", "delete", "Store2"]);
    let roles = ok(&["role", "list", "--output-format", "json"]);
    assert!(!roles.contains("Store2"), "{roles}");

    // 8.4 still knows VM.Monitor.
    let old = start(PveVersion::V8_4);
    let (code, _, err) = tool(
        &old,
        "pveum",
        &["role", "add", "Old", "--privs", "VM.Audit,VM.Monitor"],
    );
    assert_eq!(code, 0, "{err}");
}
