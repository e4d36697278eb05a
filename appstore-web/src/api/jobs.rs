//! Job resources: submitting installs, uninstalls, upgrades and reconfigures, the job list, one job,
//! its log, its live stream (SSE with replay), all events, cancel and destroy-failed.

use super::*;

pub(super) async fn submit_install(state: ApiState, body: Bytes) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let request: InstallRequest = params::body(&body)?;
    let app_id = request.app_id.clone();
    // An app this store or node cannot run is refused before a job exists.
    if let Some(app) = state
        .catalog
        .snapshot()
        .and_then(|s| s.app(&app_id).cloned())
    {
        let unmet = unmet_requirements(&state, &app).await;
        if !unmet.is_empty() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "unmet_requirements",
                format!("{app_id} {}", unmet.join("; ")),
            ));
        }
    }
    // The host name and network settings, strictly, each error on its field.
    let problems = appstore_core::network::check(&request.network_fields());
    if !problems.is_empty() {
        let mut err = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect::<Vec<_>>()
                .join("; "),
        );
        for p in &problems {
            err = err.field(p.field, &p.message);
        }
        return Err(err);
    }
    // The form's values are checked before a job exists, each error on its field.
    if let Some(app) = state
        .catalog
        .snapshot()
        .and_then(|s| s.app(&app_id).cloned())
    {
        if let Err(errors) =
            appstore_core::inputs::resolve(&app.manifest, &request.inputs, &mut || "x".repeat(24))
        {
            let mut err = ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_inputs",
                format!(
                    "{} install option(s) are not valid: {}",
                    errors.len(),
                    errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            );
            for e in &errors {
                err = err.field(&format!("inputs.{}", e.field), &e.message);
            }
            return Err(err);
        }
        // The GPU asked for, checked the way the job will check it.
        let m = &app.manifest;
        if request.gpu != appstore_core::gpu::GpuRequest::None || m.gpu().required {
            let store = jobs.store.clone();
            let attachments = read(move || store.gpu_attachments()).await?;
            let host = appstore_actors::engine::gpu::candidates(&state.gpus, &attachments);
            if let Err(e) = appstore_core::gpu::decide(
                m.gpu(),
                &state.gpu_policy,
                &request.gpu,
                &host.candidates,
                &host.shared,
                !m.lxc().unprivileged,
            ) {
                return Err(
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid_gpu", e.to_string())
                        .field("gpu", e.to_string()),
                );
            }
        }
    }
    jobs.install(request)
        .await
        .map(job_accepted)
        .map_err(submit_error)
}

/// The API's answer to a job that was not made: each variant its status, never read from the text.
pub(super) fn submit_error(e: appstore_actors::SubmitError) -> ApiError {
    use appstore_actors::SubmitError;
    match e {
        SubmitError::NotFound(m) => ApiError::not_found(m),
        SubmitError::Busy { ctid } => ApiError::new(
            StatusCode::CONFLICT,
            "busy",
            format!("a job is already running on container {ctid}; wait for it to end"),
        ),
        SubmitError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
        SubmitError::Invalid { message, fields } => {
            let mut err = ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message);
            for (k, v) in &fields {
                err = err.field(k, v);
            }
            err
        }
        SubmitError::Unavailable(m) => engine_unavailable(m),
        SubmitError::CatalogNotLoaded => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "catalog_not_loaded",
            SubmitError::CatalogNotLoaded.to_string(),
        ),
        e @ (SubmitError::Store(_) | SubmitError::Internal(_)) => {
            // The whole chain: the cause is what an admin needs.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            tracing::error!(error = %text, "a job could not be made");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", text)
        }
    }
}

pub(super) async fn submit_uninstall(state: ApiState, body: Bytes) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let req: params::UninstallBody = params::body(&body)?;
    jobs.uninstall(req.install_id, req.keep_volumes)
        .await
        .map(job_accepted)
        .map_err(submit_error)
}

pub(super) async fn submit_maintain(state: ApiState, kind: JobKind, body: Bytes) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let req: MaintainRequest = params::body(&body)?;
    jobs.maintain(kind, req)
        .await
        .map(job_accepted)
        .map_err(submit_error)
}

/// `POST /api/upgrade-all`: an upgrade job for every install the catalog offers a newer version
/// (each with its snapshot, health check and rollback, as a single upgrade); one refusal does not
/// stop the others.
pub(super) async fn upgrade_all(state: ApiState) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let snapshot = state.catalog.snapshot().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "catalog_unavailable",
            "the catalog has not been loaded yet",
        )
    })?;
    let store = jobs.store.clone();
    let installs = read(move || store.installs()).await?;
    let mut answer = params::UpgradeAll {
        queued: Vec::new(),
        refused: Vec::new(),
    };
    for offer in crate::updates::offers(&installs, &snapshot) {
        let request = MaintainRequest {
            install_id: offer.install_id,
            ..Default::default()
        };
        match jobs.maintain(JobKind::Upgrade, request).await {
            Ok(job_id) => answer.queued.push(params::QueuedUpgrade {
                install_id: offer.install_id,
                app_id: offer.app_id,
                from: offer.from,
                to: offer.to,
                job_id,
            }),
            Err(e) => answer.refused.push(params::RefusedUpgrade {
                install_id: offer.install_id,
                app_id: offer.app_id,
                reason: submit_error(e).message().to_string(),
            }),
        }
    }
    ok_json(&serde_json::to_value(&answer).unwrap_or_default())
}

/// `POST /api/jobs/{id}/destroy`: removes the container a failed or canceled install left.
pub(super) async fn destroy_failed(state: ApiState, id: i64) -> ApiResult {
    let jobs = jobs_of(&state)?;
    jobs.destroy_failed(id)
        .await
        .map(job_accepted)
        .map_err(submit_error)
}

pub(super) async fn list_jobs(state: ApiState) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let store = jobs.store.clone();
    let list = read(move || store.jobs(200)).await?;
    ok_json(&json!({"jobs": list}))
}

pub(super) async fn get_job(state: ApiState, id: i64) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let store = jobs.store.clone();
    let (job, transitions) = read(move || Ok((store.job(id)?, store.transitions(id)?))).await?;
    let job = job.ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    ok_json(&json!({"job": job, "transitions": transitions}))
}

pub(super) fn sse_log(l: &appstore_actors::store::LogRecord) -> warp::sse::Event {
    warp::sse::Event::default()
        .id(l.seq.to_string())
        .event("log")
        .data(
            json!({"seq": l.seq, "at_ms": l.at_ms, "stream": l.stream, "line": l.line}).to_string(),
        )
}

pub(super) fn sse_state(state: JobState, reason: Option<&str>) -> warp::sse::Event {
    warp::sse::Event::default()
        .event("state")
        .data(json!({"state": state, "reason": reason}).to_string())
}

/// What an open job stream still has to send, and where it is.
pub(super) struct JobStream {
    job: i64,
    rx: tokio::sync::broadcast::Receiver<JobEvent>,
    store: appstore_actors::store::Store,
    last_seq: i64,
    pending: std::collections::VecDeque<warp::sse::Event>,
    /// Stored lines after `last_seq` are still to be read (page by page) before anything live.
    behind: bool,
    /// State changes to send once the stored lines are out: (event, final).
    states: std::collections::VecDeque<(warp::sse::Event, bool)>,
    done: bool,
}

/// Lines read from the store at a time while a stream catches up.
pub(super) const STREAM_PAGE: i64 = 2000;

impl JobStream {
    /// The next event: lines in order (read from the store, a page at a time, however many there
    /// are, whenever this stream is behind the live feed), then the state changes, and after the
    /// final state the stream ends.
    async fn next(mut self) -> Option<(Result<warp::sse::Event, Infallible>, JobStream)> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some((Ok(e), self));
            }
            if self.behind {
                self.behind = self.read_page().await;
                continue;
            }
            if let Some((e, last)) = self.states.pop_front() {
                self.done = last;
                return Some((Ok(e), self));
            }
            if self.done {
                return None;
            }
            match self.rx.recv().await {
                Ok(JobEvent::Log {
                    job_id,
                    seq,
                    at_ms,
                    stream,
                    line,
                }) if job_id == self.job && seq > self.last_seq => {
                    if seq != self.last_seq + 1 {
                        self.behind = true;
                        continue;
                    }
                    self.last_seq = seq;
                    let l = appstore_actors::store::LogRecord {
                        seq,
                        at_ms,
                        stream,
                        line,
                    };
                    return Some((Ok(sse_log(&l)), self));
                }
                Ok(JobEvent::State {
                    job_id,
                    state,
                    reason,
                }) if job_id == self.job => {
                    // Lines stored before the state change come first.
                    self.behind = true;
                    self.states
                        .push_back((sse_state(state, reason.as_deref()), state.is_terminal()));
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.behind = true,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Reads the next page of stored lines; true when there may be more.
    async fn read_page(&mut self) -> bool {
        let (store, job, after) = (self.store.clone(), self.job, self.last_seq);
        match tokio::task::spawn_blocking(move || store.logs(job, after, STREAM_PAGE)).await {
            Ok(Ok(lines)) => {
                let full = lines.len() as i64 >= STREAM_PAGE;
                for l in lines {
                    self.last_seq = l.seq;
                    self.pending.push_back(sse_log(&l));
                }
                full
            }
            _ => false,
        }
    }
}

/// `GET /api/jobs/{id}/stream`: server-sent events, `log` (id = the line's cursor) and `state`; a
/// reconnecting client sends `Last-Event-ID` (or `?after=`) and gets only what it missed, every
/// line of it. The stream ends after the job's final state.
pub(super) async fn job_stream(
    state: ApiState,
    id: i64,
    params: HashMap<String, String>,
    last_event_id: Option<String>,
) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let p: params::StreamParams = params::query(&params)?;
    let after = match last_event_id {
        None => p.after,
        Some(v) => v.trim().parse::<i64>().map_err(|_| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", "bad cursor")
                .field("Last-Event-ID", "must be a whole number")
        })?,
    };
    // Subscribed before the job is read, so nothing falls between the two.
    let rx = jobs.events.subscribe();
    let store = jobs.store.clone();
    let job = read(move || store.job(id)).await?;
    let job = job.ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    let stream = JobStream {
        job: id,
        rx,
        store: jobs.store.clone(),
        last_seq: after,
        pending: Default::default(),
        behind: true,
        states: [(
            sse_state(job.state, job.error.as_deref()),
            job.state.is_terminal(),
        )]
        .into(),
        done: false,
    };
    let events = futures_util::stream::unfold(stream, JobStream::next);
    Ok(warp::sse::reply(warp::sse::keep_alive().stream(events)).into_response())
}

/// `GET /api/events`: every job's state changes as server-sent events, for live views.
/// Live events for the UI's views: `job` (a job changed state), `gpus` (the GPU inventory changed;
/// the data holds the GPUs added, removed or changed and the new inventory) and `lagged` (events
/// were missed: reload).
pub(super) async fn all_events(state: ApiState) -> ApiResult {
    use tokio::sync::broadcast::error::RecvError;
    let lagged = |n: u64| {
        warp::sse::Event::default()
            .event("lagged")
            .data(json!({"missed": n}).to_string())
    };
    let jobs = state.jobs.as_ref().map(|j| j.events.subscribe());
    let job_events = futures_util::stream::unfold(jobs, move |rx| async move {
        let mut rx = rx?;
        loop {
            match rx.recv().await {
                Ok(JobEvent::State {
                    job_id,
                    state,
                    reason,
                }) => {
                    let e = warp::sse::Event::default().event("job").data(
                        json!({"job_id": job_id, "state": state, "reason": reason}).to_string(),
                    );
                    return Some((Ok::<_, Infallible>(e), Some(rx)));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => return Some((Ok(lagged(n)), Some(rx))),
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let gpu_events =
        futures_util::stream::unfold(state.gpu_changes.subscribe(), move |mut rx| async move {
            let e = match rx.recv().await {
                Ok(change) => warp::sse::Event::default()
                    .event("gpus")
                    .data(serde_json::to_string(&change).unwrap_or_default()),
                Err(RecvError::Lagged(n)) => lagged(n),
                Err(RecvError::Closed) => return None,
            };
            Some((Ok::<_, Infallible>(e), rx))
        });
    let update_events =
        futures_util::stream::unfold(state.updates.subscribe(), move |mut rx| async move {
            let e = match rx.recv().await {
                Ok(notice) => warp::sse::Event::default()
                    .event("update")
                    .data(serde_json::to_string(&notice).unwrap_or_default()),
                Err(RecvError::Lagged(n)) => lagged(n),
                Err(RecvError::Closed) => return None,
            };
            Some((Ok::<_, Infallible>(e), rx))
        });
    let drift_events =
        futures_util::stream::unfold(state.drift.subscribe(), move |mut rx| async move {
            let e = match rx.recv().await {
                Ok(n) => warp::sse::Event::default()
                    .event("gpu_drift")
                    .data(serde_json::to_string(&n).unwrap_or_default()),
                Err(RecvError::Lagged(n)) => lagged(n),
                Err(RecvError::Closed) => return None,
            };
            Some((Ok::<_, Infallible>(e), rx))
        });
    let events = futures_util::stream::select(
        futures_util::stream::select(job_events, gpu_events),
        futures_util::stream::select(update_events, drift_events),
    );
    Ok(warp::sse::reply(warp::sse::keep_alive().stream(events)).into_response())
}

pub(super) async fn job_logs(
    state: ApiState,
    id: i64,
    params: HashMap<String, String>,
) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let p: params::LogsParams = params::query(&params)?;
    let (after, limit) = (p.after, p.limit);
    let store = jobs.store.clone();
    let (job, lines) = read(move || Ok((store.job(id)?, store.logs(id, after, limit)?))).await?;
    let job = job.ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    let next = lines.last().map(|l| l.seq).unwrap_or(after);
    ok_json(&json!({"state": job.state, "lines": lines, "next": next}))
}

pub(super) async fn cancel_job(state: ApiState, id: i64) -> ApiResult {
    let jobs = jobs_of(&state)?;
    match jobs.cancel(id).await {
        Ok(true) => Ok(warp::reply::with_status(
            warp::reply::json(&json!({"canceling": id})),
            StatusCode::ACCEPTED,
        )
        .into_response()),
        Ok(false) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_running",
            format!("job {id} is neither queued nor running"),
        )),
        Err(e) => Err(engine_unavailable(e)),
    }
}
