//! The HTTP server: the access check on every request, the page, the JSON API under `/api/`
//! (containers, profiles, the alert timeline and its live stream as Server-Sent Events) and
//! `/metrics`. Reading files and the store runs on tokio's blocking threads.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Query, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use super::alerts::{Feed, Filter, Timeline};
use super::auth::{Access, Verdict};
use super::containers::{self, ContainerView, Rates};
use super::profiles::{self, Cache};
use super::{metrics, page};

/// What every handler shares.
#[derive(Debug)]
pub struct App {
    pub access: Access,
    pub state_roots: Vec<PathBuf>,
    pub rates: Mutex<Rates>,
    pub profiles: Arc<Mutex<Cache>>,
    pub feed: Arc<Feed>,
    /// The alert log (its shippers' counters are next to it).
    pub alerts: PathBuf,
}

/// The routes, behind the access check.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/containers", get(containers))
        .route("/api/profiles", get(profiles))
        .route("/api/alerts", get(alerts))
        .route("/api/alerts/stream", get(stream))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), check))
        .with_state(app)
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Every request: the token, or (without one) a loopback Host.
async fn check(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    match verdict(&app.access, &req) {
        Verdict::Allowed => next.run(req).await,
        Verdict::BadToken => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "ngram-ids dashboard: wrong or missing token: send the header Authorization: Bearer TOKEN, or add ?token=TOKEN\n",
        )
            .into_response(),
        Verdict::ForeignHost => (
            StatusCode::FORBIDDEN,
            "ngram-ids dashboard: without --token only requests to a loopback host (localhost, 127.0.0.1, [::1]) are served\n",
        )
            .into_response(),
    }
}

/// The access check of one request (apart from `check`: a request is not `Sync`, so no
/// reference to it may live across its `await`).
fn verdict(access: &Access, req: &Request) -> Verdict {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let query = Query::<TokenQuery>::try_from_uri(req.uri())
        .ok()
        .and_then(|q| q.0.token);
    access.check(
        header(header::AUTHORIZATION),
        query.as_deref(),
        header(header::HOST),
    )
}

/// A failure of a blocking read, as a response.
fn internal(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("ngram-ids dashboard: {e}\n"),
    )
        .into_response()
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        page::INDEX,
    )
        .into_response()
}

/// `/api/containers`.
#[derive(Debug, Serialize)]
struct Containers {
    containers: Vec<ContainerView>,
    state_roots: Vec<PathBuf>,
    /// Roots or status files that did not read.
    notes: Vec<String>,
    now_ns: u64,
}

async fn read_containers(app: &Arc<App>) -> Result<Containers, Response> {
    let roots = app.state_roots.clone();
    let scan = tokio::task::spawn_blocking(move || containers::scan(&roots))
        .await
        .map_err(internal)?;
    let now_ns = containers::now_ns();
    let views = app
        .rates
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .view(scan.statuses, now_ns);
    Ok(Containers {
        containers: views,
        state_roots: app.state_roots.clone(),
        notes: scan.notes,
        now_ns,
    })
}

async fn read_profiles(app: &Arc<App>) -> Result<profiles::Snapshot, Response> {
    let cache = Arc::clone(&app.profiles);
    tokio::task::spawn_blocking(move || cache.lock().unwrap_or_else(PoisonError::into_inner).get())
        .await
        .map_err(internal)
}

async fn containers(State(app): State<Arc<App>>) -> Response {
    match read_containers(&app).await {
        Ok(c) => Json(c).into_response(),
        Err(r) => r,
    }
}

async fn profiles(State(app): State<Arc<App>>) -> Response {
    match read_profiles(&app).await {
        Ok(p) => Json(p).into_response(),
        Err(r) => r,
    }
}

async fn alerts(State(app): State<Arc<App>>, Query(filter): Query<Filter>) -> Json<Timeline> {
    Json(app.feed.timeline(&filter))
}

/// New alerts as they are written, as Server-Sent Events `alert` (data: the alert's JSON, id:
/// its `seq`) through the same filter as `/api/alerts`; `lagged` when the page read too slowly
/// and missed some (it should fetch the timeline again).
async fn stream(
    State(app): State<Arc<App>>,
    Query(filter): Query<Filter>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = app.feed.subscribe();
    let events = futures_util::stream::unfold((rx, filter), |(mut rx, filter)| async move {
        loop {
            let event = match rx.recv().await {
                Ok(a) if !filter.matches(&a) => continue,
                Ok(a) => SseEvent::default()
                    .id(a.seq.to_string())
                    .event("alert")
                    .json_data(&a)
                    .unwrap_or_else(|e| SseEvent::default().event("error").data(e.to_string())),
                Err(RecvError::Lagged(n)) => {
                    SseEvent::default().event("lagged").data(n.to_string())
                }
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok(event), (rx, filter)));
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let containers = match read_containers(&app).await {
        Ok(c) => c.containers,
        Err(r) => return r,
    };
    let profiles = match read_profiles(&app).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut text = metrics::render(&containers, &profiles, ngram_profiler::store::now_secs());
    let shippers = crate::tools::ship::state::read_all(&app.alerts);
    text.push_str(&metrics::render_shippers(
        &shippers,
        ngram_supervisor::tracer::now_ns(),
    ));
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}
