//! Serving the web app, HTTP or HTTPS. warp 0.4 has no TLS of its own, so its filter is turned into
//! a service and served through hyper, over rustls connections or plain TCP, one task per connection
//! and both with the same connection cap, header timeout and graceful drain.

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use warp::Filter;

/// The certificate and key files of `web.tls`.
#[derive(Debug, Clone)]
pub struct WebTls {
    /// Certificate chain (PEM).
    pub cert_file: String,
    /// Private key (PEM).
    pub key_file: String,
    /// Where the two came from, for error messages: (`web.tls.cert_file`, `web.tls.key_file`) or
    /// the demo's flags.
    pub fields: (&'static str, &'static str),
}

/// The peer's address of a connection served here (warp only sets its own for its own server);
/// read by [`client_addr`].
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The peer's address, whichever server accepted the connection.
pub fn client_addr() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::addr::remote()
        .and(warp::ext::optional::<ClientAddr>())
        .map(|warp: Option<SocketAddr>, ours: Option<ClientAddr>| warp.or(ours.map(|c| c.0)))
}

/// Reads the certificate chain and private key (PEM) into a server config. Errors name the setting
/// each file came from (`web.tls.cert_file` in the config, `--tls-cert` on the demo).
pub fn load(files: &WebTls) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (cert_file, key_file) = (files.cert_file.as_str(), files.key_file.as_str());
    let (cert_field, key_field) = files.fields;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| anyhow::anyhow!("{cert_field}: cannot read certificates from {cert_file}: {e}; give a PEM file with the server certificate first, then its chain"))?;
    if certs.is_empty() {
        anyhow::bail!("{cert_field}: {cert_file} holds no PEM certificate; give a PEM file with the server certificate first, then its chain");
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        anyhow::anyhow!("{key_field}: cannot read a private key from {key_file}: {e}; give the certificate's key as PEM (PKCS#8, PKCS#1 or SEC1)")
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("{key_field}: the key in {key_file} does not fit the certificate in {cert_file}: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How long a client has to finish the TLS handshake, then to send a request's headers, and open
/// connections to end after a stop.
const HANDSHAKE: Duration = Duration::from_secs(10);
const HEADERS: Duration = Duration::from_secs(30);
const DRAIN: Duration = Duration::from_secs(5);
/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 512;

/// Serves `filter` over TLS on `listener` until `shutdown` resolves; open connections then get a
/// few seconds to finish (live streams end with them).
pub async fn serve(
    filter: warp::filters::BoxedFilter<(warp::reply::Response,)>,
    listener: tokio::net::TcpListener,
    config: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = config.map(tokio_rustls::TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = Arc::clone(&slots).acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let service = warp::service(filter.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ClientAddr(peer));
                    let mut service = service.clone();
                    tower_service::Service::call(&mut service, req)
                },
            );
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADERS);
            let result = match acceptor {
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(tls), service);
                    watcher.watch(conn).await
                }
                None => {
                    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    watcher.watch(conn).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("open connections did not finish in time; closing them");
    }
}
