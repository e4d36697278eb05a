//! The guard in front of every `/api` route (host, origin, JSON, session, CSRF) and the login,
//! logout and session resources.

use super::*;

/// A request the login guard refused.
#[derive(Debug)]
pub(super) struct Denied(pub(super) ApiError);

impl warp::reject::Reject for Denied {}

pub(super) fn denied(status: StatusCode, code: &'static str, message: &str) -> warp::Rejection {
    warp::reject::custom(Denied(ApiError::new(status, code, message)))
}

/// Every `/api` request must name a host the service answers to and, when it says where it comes
/// from, come from the store's own page; every request that changes something must be JSON
/// (`origin.rs`), with or without login. In password mode every `/api` request also needs a live
/// session, and every request that changes something its CSRF token; `GET /api/health`,
/// `GET /api/session` and `POST /api/login` are open.
pub(super) fn guard(state: ApiState) -> warp::filters::BoxedFilter<()> {
    warp::path::full()
        .and(warp::method())
        .and(warp::cookie::optional::<String>(crate::auth::COOKIE))
        .and(warp::header::optional::<String>(crate::auth::CSRF_HEADER))
        .and(warp::header::optional::<String>("host"))
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("content-type"))
        .and_then(
            move |path: warp::path::FullPath,
                  method: warp::http::Method,
                  cookie: Option<String>,
                  csrf: Option<String>,
                  host: Option<String>,
                  origin: Option<String>,
                  content_type: Option<String>| {
                let auth = state.auth.clone();
                let allowed = Arc::clone(&state.allowed_hosts);
                async move {
                    let p = path.as_str();
                    if !p.starts_with("/api/") {
                        return Ok(());
                    }
                    let safe = matches!(
                        method,
                        warp::http::Method::GET
                            | warp::http::Method::HEAD
                            | warp::http::Method::OPTIONS
                    );
                    if let Err(refusal) = crate::origin::check(
                        &allowed,
                        host.as_deref(),
                        origin.as_deref(),
                        content_type.as_deref(),
                        !safe,
                    ) {
                        let (status, code) = match refusal {
                            crate::origin::Refusal::ContentType => {
                                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "content_type")
                            }
                            _ => (StatusCode::FORBIDDEN, "origin"),
                        };
                        return Err(denied(status, code, &refusal.to_string()));
                    }
                    let Some(auth) = auth else { return Ok(()) };
                    let open = (method == warp::http::Method::GET
                        && (p == "/api/health" || p == "/api/session"))
                        || (method == warp::http::Method::POST && p == "/api/login");
                    if open {
                        return Ok(());
                    }
                    let Some(token) = cookie else {
                        return Err(denied(
                            StatusCode::UNAUTHORIZED,
                            "login_required",
                            "log in first (POST /api/login)",
                        ));
                    };
                    let session = tokio::task::spawn_blocking(move || auth.session(&token))
                        .await
                        .ok()
                        .flatten();
                    let Some(expected) = session else {
                        return Err(denied(
                            StatusCode::UNAUTHORIZED,
                            "session_expired",
                            "the session has ended; log in again",
                        ));
                    };
                    if !safe && csrf.as_deref() != Some(expected.as_str()) {
                        return Err(denied(
                            StatusCode::FORBIDDEN,
                            "csrf",
                            "missing or wrong X-CSRF-Token header (the token comes with the login and from GET /api/session); reload the page",
                        ));
                    }
                    Ok(())
                }
            },
        )
        .untuple_one()
        .boxed()
}

/// `POST /api/login` `{"password": "..."}`: a session cookie and the CSRF token.
pub(super) async fn login(
    state: ApiState,
    remote: Option<std::net::SocketAddr>,
    body: Bytes,
) -> ApiResult {
    // The body is what the OpenAPI document says, with or without login.
    let req: params::LoginBody = params::body(&body)?;
    let Some(auth) = state.auth.clone() else {
        return ok_json(&json!({"auth": "none", "csrf": null}));
    };
    let ip = remote
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let a = Arc::clone(&auth);
    let result = tokio::task::spawn_blocking(move || a.login(ip, &req.password))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    use crate::auth::LoginError;
    match result {
        Ok((token, csrf)) => {
            tracing::info!(%ip, "login");
            let reply = warp::reply::json(&json!({"auth": "password", "csrf": csrf}));
            Ok(warp::reply::with_header(reply, "set-cookie", auth.cookie(&token)).into_response())
        }
        Err(LoginError::Wrong) => {
            tracing::warn!(%ip, "failed login");
            Err(
                ApiError::new(StatusCode::UNAUTHORIZED, "wrong_password", "wrong password")
                    .field("password", "wrong password"),
            )
        }
        Err(LoginError::RateLimited(after)) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many failed logins from this address; try again in {after} s"),
        )),
        Err(LoginError::NoPassword) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_password",
            "no password is set on this node; run `pve-appstore passwd` as root",
        )),
        Err(LoginError::Store(e)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e,
        )),
    }
}

/// `POST /api/logout`: ends the session.
pub(super) async fn logout(state: ApiState, cookie: Option<String>) -> ApiResult {
    let Some(auth) = state.auth.clone() else {
        return ok_json(&json!({"auth": "none"}));
    };
    if let Some(token) = cookie {
        let a = Arc::clone(&auth);
        let _ = tokio::task::spawn_blocking(move || a.logout(&token)).await;
    }
    let reply = warp::reply::json(&json!({"logged_out": true}));
    Ok(warp::reply::with_header(reply, "set-cookie", auth.clear_cookie()).into_response())
}

/// `GET /api/session`: the login mode, and whether this browser is logged in (with its CSRF token).
pub(super) async fn session(state: ApiState, cookie: Option<String>) -> ApiResult {
    let Some(auth) = state.auth.clone() else {
        return ok_json(&json!({"auth": "none", "logged_in": true, "csrf": null}));
    };
    let csrf = match cookie {
        Some(token) => tokio::task::spawn_blocking(move || auth.session(&token))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    ok_json(&json!({"auth": "password", "logged_in": csrf.is_some(), "csrf": csrf}))
}
