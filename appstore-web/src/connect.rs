//! The node as a config reaches it: the PVE client with the token secret read from its file and the
//! TLS mode the config names (plain HTTP needs no certificate and so no CA file).

use anyhow::Context as _;
use appstore_core::config::{Config, TlsVerify};
use appstore_pve::{HttpPve, PveEndpoint, TlsMode};

/// The client `serve` and `doctor` use.
pub fn pve_client(config: &Config) -> anyhow::Result<HttpPve> {
    let secret = std::fs::read_to_string(&config.token_secret_file).with_context(|| {
        format!(
            "cannot read the token secret file {}",
            config.token_secret_file
        )
    })?;
    let tls = match &config.tls {
        _ if config.api_url.starts_with("http://") => TlsMode::Insecure,
        TlsVerify::CaFile(f) => TlsMode::CaFile(f.into()),
        TlsVerify::Fingerprint(fp) => TlsMode::Fingerprint(*fp),
        TlsVerify::Insecure => TlsMode::Insecure,
    };
    Ok(HttpPve::new(&PveEndpoint {
        url: config.api_url.clone(),
        token_id: config.token_id.clone(),
        token_secret: secret.trim().to_string(),
        tls,
    })?)
}
