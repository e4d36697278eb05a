//! Setting up a simulated node: directory layout, the certificates pveproxy would have (a CA and a
//! leaf for 127.0.0.1, ::1 and localhost), and a realistic set of users, tokens, a pool, a role and ACLs
//! for the store's least-privilege token.

use crate::state::{write_atomic, SimRoot};
use crate::PveVersion;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to set up a node.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// Node name.
    pub node: String,
    /// Emulated release.
    pub version: PveVersion,
    /// `inert` or `lxc`.
    pub backend: String,
    /// Put the Debian 12 template on `local` (as an admin would have downloaded it).
    pub preload_debian: bool,
    /// A node as PVE installs it: only root@pam and the sim's own root token, no pool, role or ACL
    /// (what an installer has to set up itself).
    pub fresh: bool,
    /// A binary that runs pct when called as `<binary> __pct ...` (see
    /// [`crate::pct::main_if_invoked`]); by default the `pve-sim-pct` binary next to the running one.
    pub pct_host: Option<PathBuf>,
}

impl Default for SetupOptions {
    fn default() -> Self {
        SetupOptions {
            node: "pve1".into(),
            version: PveVersion::V8_4,
            backend: "inert".into(),
            preload_debian: true,
            fresh: false,
            pct_host: None,
        }
    }
}

/// Token header values (`user@realm!id=secret`) of the scenario, and the TLS facts.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Credentials {
    /// `root@pam!sim`, no privilege separation.
    pub root_token: String,
    /// `appstore@pve!store`: the store's least-privilege token (pool `appstore`).
    pub store_token: String,
    /// `nobody@pve!none`: a token without any ACL.
    pub nobody_token: String,
    /// SHA-256 fingerprint of the API certificate, `AB:CD:...`.
    pub fingerprint: String,
    /// The CA file (`etc/pve/pve-root-ca.pem`).
    pub ca_file: PathBuf,
    /// The emulated release.
    pub release: String,
}

/// The Debian 12 template file name.
pub const DEBIAN_TEMPLATE: &str = "debian-12-standard_12.7-1_amd64.tar.zst";
/// The Debian 13 template a 9.x node has downloaded as well.
pub const DEBIAN_13_TEMPLATE: &str = "debian-13-standard_13.1-2_amd64.tar.zst";

pub(crate) fn new_secret() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A node just installed: root, and the token the simulator's own tools and tests use.
const FRESH_USER_CFG: &str = "\
user:root@pam:1:0:::root@localhost:::
token:root@pam!sim:0:0::
";

const USER_CFG: &str = "\
user:root@pam:1:0:::root@localhost:::
user:appstore@pve:1:0::::PVE App Store service::
user:nobody@pve:1:0:::::
token:root@pam!sim:0:0::
token:appstore@pve!store:0:1:PVE App Store:
token:nobody@pve!none:0:1::
pool:appstore:PVE App Store apps::local-lvm:
pool:other:Containers the store must not touch:::
role:AppStore:Pool.Audit,VM.Allocate,VM.Audit,VM.Backup,VM.Config.CPU,VM.Config.Disk,VM.Config.Memory,VM.Config.Network,VM.Config.Options,VM.PowerMgmt,VM.Snapshot,VM.Snapshot.Rollback:
acl:1:/pool/appstore:appstore@pve,appstore@pve!store:AppStore:
acl:1:/sdn/zones/localnetwork/vmbr0:appstore@pve,appstore@pve!store:PVESDNUser:
acl:1:/storage/local:appstore@pve,appstore@pve!store:PVEDatastoreUser:
acl:1:/storage/local-lvm:appstore@pve,appstore@pve!store:PVEDatastoreUser:
";

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Creates (or re-opens) a simulated node at `dir`.
pub fn init(dir: &Path, opts: &SetupOptions) -> std::io::Result<Credentials> {
    let creds_path = dir.join("sim/credentials.json");
    if let Ok(text) = std::fs::read_to_string(&creds_path) {
        if let Ok(c) = serde_json::from_str(&text) {
            return Ok(c);
        }
    }
    let root = SimRoot::new(dir, &opts.node);
    root.init_layout()?;
    write_atomic(&dir.join("sim/backend"), opts.backend.as_bytes())?;
    write_atomic(&dir.join("sim/version"), opts.version.release().as_bytes())?;
    let users = if opts.fresh { FRESH_USER_CFG } else { USER_CFG };
    write_atomic(&root.user_cfg_path(), users.as_bytes())?;
    let mut tokens = Vec::new();
    for id in ["root@pam!sim", "appstore@pve!store", "nobody@pve!none"] {
        let secret = new_secret();
        root.set_token_secret(id, &secret)?;
        tokens.push(format!("{id}={secret}"));
    }
    if opts.preload_debian {
        write_atomic(
            &root.template_dir().join(DEBIAN_TEMPLATE),
            b"pve-sim template placeholder\n",
        )?;
        if opts.version.is_9() {
            write_atomic(
                &root.template_dir().join(DEBIAN_13_TEMPLATE),
                b"pve-sim template placeholder\n",
            )?;
        }
    }
    let fingerprint = make_certificates(&root)?;
    let creds = Credentials {
        root_token: tokens[0].clone(),
        store_token: tokens[1].clone(),
        nobody_token: tokens[2].clone(),
        fingerprint,
        ca_file: root.etc_pve().join("pve-root-ca.pem"),
        release: opts.version.release().to_string(),
    };
    write_atomic(
        &creds_path,
        serde_json::to_string_pretty(&creds)
            .map_err(io_err)?
            .as_bytes(),
    )?;
    write_pct_wrapper(&root, opts.pct_host.as_deref())?;
    write_admin_wrappers(&root)?;
    Ok(creds)
}

/// A sibling binary of the running one (test binaries live in target/*/deps/, one level down).
fn sibling_binary(name: &str) -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok([dir.join(name), dir.join("..").join(name)]
        .into_iter()
        .find(|p| p.is_file())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .unwrap_or_else(|| PathBuf::from(name)))
}

/// `usr/sbin/pveum`, `pvesh` and `pveversion` below the root, backed by `pve-sim-admin`.
fn write_admin_wrappers(root: &SimRoot) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let bin = sibling_binary("pve-sim-admin")?;
    for tool in ["pveum", "pvesh", "pveversion"] {
        let script = format!(
            "#!/bin/sh\n# {tool} of the simulated node at {root}\nPVE_SIM_ROOT='{root}' exec '{bin}' {tool} \"$@\"\n",
            root = root.path().display(),
            bin = bin.display()
        );
        let path = root.path().join("usr/sbin").join(tool);
        write_atomic(&path, script.as_bytes())?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// `usr/sbin/pct` below the root: the real CLI syntax, backed by `pve-sim-pct` for this root.
fn write_pct_wrapper(root: &SimRoot, host: Option<&Path>) -> std::io::Result<()> {
    if let Some(host) = host {
        let script = format!(
            "#!/bin/sh\n# pct of the simulated node at {root}\nPVE_SIM_ROOT='{root}' exec '{bin}' __pct \"$@\"\n",
            root = root.path().display(),
            bin = host.display()
        );
        let path = root.path().join("usr/sbin/pct");
        write_atomic(&path, script.as_bytes())?;
        use std::os::unix::fs::PermissionsExt;
        return std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
    }
    let pct_bin = sibling_binary("pve-sim-pct")?;
    let script = format!(
        "#!/bin/sh\n# pct of the simulated node at {root}\nPVE_SIM_ROOT='{root}' exec '{bin}' \"$@\"\n",
        root = root.path().display(),
        bin = pct_bin.display()
    );
    let path = root.path().join("usr/sbin/pct");
    write_atomic(&path, script.as_bytes())?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
}

fn fingerprint_of(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn make_certificates(root: &SimRoot) -> std::io::Result<String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().map_err(io_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(io_err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Proxmox Virtual Environment (pve-sim)");
    let ca_cert = ca_params.self_signed(&ca_key).map_err(io_err)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().map_err(io_err)?;
    let mut leaf_params = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
        root.node().to_string(),
    ])
    .map_err(io_err)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, format!("{}.local", root.node()));
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).map_err(io_err)?;

    write_atomic(
        &root.etc_pve().join("pve-root-ca.pem"),
        ca_cert.pem().as_bytes(),
    )?;
    write_atomic(
        &root.etc_pve().join("local/pve-ssl.pem"),
        leaf.pem().as_bytes(),
    )?;
    write_atomic(
        &root.etc_pve().join("local/pve-ssl.key"),
        leaf_key.serialize_pem().as_bytes(),
    )?;
    Ok(fingerprint_of(leaf.der()))
}

/// The TLS configuration pveproxy would use, and the certificate's fingerprint.
pub fn tls_config(root: &SimRoot) -> std::io::Result<(Arc<rustls::ServerConfig>, String)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert_path = root.etc_pve().join("local/pve-ssl.pem");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(io_err)?
        .collect::<Result<_, _>>()
        .map_err(io_err)?;
    let key =
        PrivateKeyDer::from_pem_file(root.etc_pve().join("local/pve-ssl.key")).map_err(io_err)?;
    let fingerprint = certs
        .first()
        .map(|c| fingerprint_of(c.as_ref()))
        .unwrap_or_default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io_err)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(io_err)?;
    Ok((Arc::new(config), fingerprint))
}
