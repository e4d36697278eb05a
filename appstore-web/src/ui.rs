//! The browser UI: the static files of `web-ui/`, embedded in the binary, served with a strict
//! Content-Security-Policy (no external network: everything comes from this origin).

use rust_embed::RustEmbed;
use warp::http::{header, Response, StatusCode};
use warp::Filter;

#[derive(RustEmbed)]
#[folder = "../web-ui/"]
struct WebUi;

/// The policy for UI pages: scripts, styles, images and API calls from this origin only.
pub const PAGE_CSP: &str =
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn serve_file(path: &str) -> Option<Response<Vec<u8>>> {
    let path = if path.is_empty() { "index.html" } else { path };
    let file = WebUi::get(path)?;
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type(path))
        .header(header::CONTENT_SECURITY_POLICY, PAGE_CSP)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header("referrer-policy", "no-referrer")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(file.data.into_owned())
        .ok()
}

/// GET `/` and `/<file>` from the embedded UI.
pub fn routes() -> impl Filter<Extract = (Response<Vec<u8>>,), Error = warp::Rejection> + Clone {
    warp::get()
        .and(warp::path::tail())
        .and_then(|tail: warp::path::Tail| async move {
            let path = tail.as_str();
            if path.starts_with("api/") || path == "api" {
                return Err(warp::reject::not_found());
            }
            serve_file(path).ok_or_else(warp::reject::not_found)
        })
}

/// True when the UI has an index page (checked by the tests; the build embeds `web-ui/`).
pub fn has_index() -> bool {
    WebUi::get("index.html").is_some()
}
