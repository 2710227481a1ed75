//! The HTTP adapter around the engine: the TLS webhook listener (`/validate`,
//! `/mutate`, `/healthz`) and the plain-HTTP admin listener (`/metrics`,
//! `/healthz`, `/readyz`). Handlers decode, call [`engine::evaluate`], encode,
//! and record metrics and logs; they hold no policy logic.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::RustlsAcceptor;
use hyper_util::rt::TokioTimer;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use super::error::{Counted, WebhookError};
use super::review::Review;
use super::tls::{CertStore, TlsError};
use crate::cluster::ingress_classes::Snapshot;
use crate::cluster::{Caches, GatewayCache, IngressClassCache, Lookup, NamespaceCache};
use crate::engine::gateway::view::{EMPTY as NO_GATEWAYS, GatewayView};
use crate::engine::{self, Input, Kind, NamespaceLabels, Object, PolicySet, Stage};
use crate::metrics::{self, Metrics};
use crate::policy::PolicyStore;

/// Largest accepted review body. An UPDATE carries the object and the old
/// object, and the API server accepts objects of up to 3 MiB.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Shared state of both listeners.
pub struct AppState {
    policies: Arc<PolicyStore>,
    /// `None` without a cluster: namespace names alone decide.
    namespaces: Option<Arc<NamespaceCache>>,
    /// `None` without a cluster: the class table of the policies alone names
    /// an Ingress's controller.
    ingress_classes: Option<Arc<IngressClassCache>>,
    /// `None` without a cluster: every Gateway a route attaches to is
    /// unknown, and the route is judged strictly.
    gateways: Option<Arc<GatewayCache>>,
    metrics: Arc<Metrics>,
    serving: AtomicBool,
    /// Permits for reviews being received or answered.
    in_flight: Semaphore,
    /// Permits for reviews evaluated on the blocking pool (costly `cel`
    /// rules), one per core: held until the evaluation ends, even when the
    /// review has timed out meanwhile.
    cel_jobs: Arc<Semaphore>,
    limits: Limits,
}

/// Overload protection of the webhook listener.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Reviews received or answered at once; beyond it requests are answered
    /// 503 at once instead of queueing.
    pub max_in_flight: usize,
    /// The longest a review may take, from the request's headers to the
    /// response (a slow body included); below the webhooks' `timeoutSeconds`.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_in_flight: 1024, request_timeout: Duration::from_secs(3) }
    }
}

impl AppState {
    /// State serving `policies`, with no cluster (namespace names alone decide).
    pub fn new(policies: PolicySet) -> Arc<AppState> {
        Self::with_namespaces(policies, Arc::new(Metrics::new()), None)
    }

    /// State serving `policies`, reading namespace labels from `namespaces`.
    pub fn with_namespaces(
        policies: PolicySet,
        metrics: Arc<Metrics>,
        namespaces: Option<Arc<NamespaceCache>>,
    ) -> Arc<AppState> {
        Self::with_limits(PolicyStore::new(policies), metrics, namespaces, Limits::default())
    }

    /// State serving the policies of `store` (which a reloader may swap), with
    /// explicit overload limits.
    pub fn with_limits(
        store: Arc<PolicyStore>,
        metrics: Arc<Metrics>,
        namespaces: Option<Arc<NamespaceCache>>,
        limits: Limits,
    ) -> Arc<AppState> {
        Self::with_cluster(store, metrics, namespaces, None, limits)
    }

    /// State serving the policies of `store`, reading namespace labels and
    /// IngressClasses from the cluster when given their caches.
    pub fn with_cluster(
        store: Arc<PolicyStore>,
        metrics: Arc<Metrics>,
        namespaces: Option<Arc<NamespaceCache>>,
        ingress_classes: Option<Arc<IngressClassCache>>,
        limits: Limits,
    ) -> Arc<AppState> {
        Self::with_caches(store, metrics, Caches { namespaces, ingress_classes, gateways: None }, limits)
    }

    /// State serving the policies of `store`, reading from the cluster
    /// through the caches it is given (namespace labels, IngressClasses,
    /// Gateway API objects).
    pub fn with_caches(
        store: Arc<PolicyStore>,
        metrics: Arc<Metrics>,
        caches: Caches,
        limits: Limits,
    ) -> Arc<AppState> {
        metrics.policies_loaded(store.current().len());
        let Caches { namespaces, ingress_classes, gateways } = caches;
        Arc::new(AppState {
            policies: store,
            namespaces,
            ingress_classes,
            gateways,
            metrics,
            serving: AtomicBool::new(false),
            in_flight: Semaphore::new(limits.max_in_flight),
            cel_jobs: Arc::new(Semaphore::new(std::thread::available_parallelism().map_or(2, usize::from))),
            limits,
        })
    }

    /// The policy set serving now.
    pub fn policies(&self) -> Arc<PolicySet> {
        self.policies.current()
    }

    /// Where the serving policies are kept, for a reloader to swap them.
    pub fn policy_store(&self) -> &Arc<PolicyStore> {
        &self.policies
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Marks the listeners as serving (or, on shutdown, as going away).
    pub fn set_ready(&self, serving: bool) {
        self.serving.store(serving, Ordering::SeqCst);
    }

    /// Ready: serving, policies loaded, and, when a cluster is used, the
    /// namespace cache synced and the IngressClass and Gateway API caches
    /// settled (synced, or refused by the API server: see
    /// [`crate::cluster::ingress_classes`] and [`crate::cluster::gateways`]).
    pub fn is_ready(&self) -> bool {
        self.serving.load(Ordering::SeqCst)
            && self.namespaces.as_ref().is_none_or(|cache| cache.is_synced())
            && self.ingress_classes.as_ref().is_none_or(|cache| cache.is_settled())
            && self.gateways.as_ref().is_none_or(|cache| cache.is_settled())
    }
}

/// The webhook routes (served over TLS).
pub fn webhook_router(state: Arc<AppState>) -> Router {
    // `/validate` and `/mutate` take every method and answer all but POST
    // 405 themselves, inside the guard, as a guard layered on `post` routes
    // would: one handler per review instead of a middleware that clones the
    // route's service and boxes a second future per request.
    Router::new()
        .route("/validate", any(validate))
        .route("/mutate", any(mutate))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The admin routes (plain HTTP, for kubelet probes and Prometheus).
pub fn admin_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Bounds the reviews in flight and the time each may take, body included, so
/// an overload or a slow client gets a fast, clear answer instead of a queue.
/// Every error answer ([`WebhookError`]) is counted here, once.
async fn guard(state: &AppState, stage: Stage, request: Request) -> Response {
    let started = Instant::now();
    let response = match state.in_flight.try_acquire() {
        Err(_) => {
            debug!(max_in_flight = state.limits.max_in_flight, "overloaded: review refused");
            WebhookError::Overloaded(state.limits.max_in_flight).into_response()
        }
        Ok(_permit) => match tokio::time::timeout(state.limits.request_timeout, receive(state, stage, request)).await {
            Ok(response) => response,
            Err(_) => {
                let seconds = state.limits.request_timeout.as_secs_f64();
                debug!(seconds, "review not received and answered in time");
                WebhookError::Timeout(seconds).into_response()
            }
        },
    };
    if response.extensions().get::<Counted>().is_some() {
        state.metrics.record_error(stage, started.elapsed());
    }
    response
}

async fn validate(State(state): State<Arc<AppState>>, request: Request) -> Response {
    guard(&state, Stage::Validate, request).await
}

async fn mutate(State(state): State<Arc<AppState>>, request: Request) -> Response {
    guard(&state, Stage::Mutate, request).await
}

/// A review's request: POST only (else 405 with `Allow: POST`, as a `post`
/// route answers), its body read whole (within [`MAX_BODY_BYTES`]) before the
/// content type is checked. The headers are read in place, not copied.
async fn receive(state: &AppState, stage: Stage, request: Request) -> Response {
    if request.method() != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, HeaderValue::from_static("POST"))]).into_response();
    }
    let json = is_json(request.headers());
    let answer = match Bytes::from_request(request, &()).await {
        Ok(body) => review(state, stage, json, &body).await,
        Err(rejection) => Err(WebhookError::from(rejection)),
    };
    answer.unwrap_or_else(IntoResponse::into_response)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// OpenMetrics for scrapers that ask for it (Prometheus does), else the
/// Prometheus text format.
async fn metrics_handler(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    if openmetrics {
        ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], state.metrics.encode()).into_response()
    } else {
        ([(header::CONTENT_TYPE, metrics::PROMETHEUS_CONTENT_TYPE)], state.metrics.encode_prometheus()).into_response()
    }
}

/// `application/json`, with or without parameters such as `charset`.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

fn webhook_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Validate => "validate",
        Stage::Mutate => "mutate",
    }
}

/// Answers one AdmissionReview.
async fn review(state: &AppState, stage: Stage, json: bool, body: &[u8]) -> Result<Response, WebhookError> {
    let started = Instant::now();
    if !json {
        return Err(WebhookError::NotJson);
    }
    let review = Review::decode(body).inspect_err(|error| {
        debug!(webhook = webhook_name(stage), %error, "undecodable review");
    })?;
    let (lookup, gateways) = cluster_lookups(state, stage, &review).await;
    // Only an Ingress has a class; a snapshot is one `Arc` clone.
    let classes = match &state.ingress_classes {
        Some(cache) if review.kind == Kind::Ingress => cache.snapshot(),
        _ => Snapshot::default(),
    };
    let policies = state.policies();
    let cluster = Cluster { lookup, classes, gateways };
    // Built-in rules take microseconds. `cel` rules are evaluated here too,
    // within a small budget; a review whose rules need more is evaluated again
    // from the start with the full budget on the blocking pool, so that it
    // holds none of the few runtime workers for long (and `--request-timeout`
    // still answers on time).
    let runs_cel = policies.runs_cel(review.kind, stage);
    let steps = if runs_cel { INLINE_CEL_STEPS } else { engine::cel::REVIEW_STEP_LIMIT };
    let decision = judge(&review, stage, &cluster, &policies, steps);
    let (review, policies, decision) = if runs_cel && decision.cel_budget_spent {
        // At most one such evaluation per core; waiting for a permit counts
        // against the request timeout like the rest.
        let permit = state.cel_jobs.clone().acquire_owned().await.map_err(|_| WebhookError::Evaluation)?;
        // When this review is dropped (timed out), its evaluation stops at its
        // next step instead of running to the end of its budget.
        let abandoned = Abandoned::default();
        let cancelled = abandoned.0.clone();
        let blocking = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let decision = engine::cel::ReviewBudget::cancelled_by(cancelled, || {
                judge(&review, stage, &cluster, &policies, engine::cel::REVIEW_STEP_LIMIT)
            });
            (review, policies, decision)
        });
        let answer = blocking.await.map_err(|error| {
            error!(webhook = webhook_name(stage), %error, "the review's evaluation did not finish");
            WebhookError::Evaluation
        })?;
        drop(abandoned);
        answer
    } else {
        (review, policies, decision)
    };
    let response = review.respond(&decision, &policies);
    state.metrics.record_review(
        stage,
        review.operation,
        review.kind,
        &review.namespace,
        review.dry_run,
        &decision,
        &policies,
        started.elapsed(),
    );

    if !decision.allowed() {
        let denying: Vec<&str> = decision
            .of(engine::Severity::Deny)
            .map(|finding| finding.policy.map_or(engine::PORTCULLIS, |index| policies.policies()[index].name()))
            .collect();
        info!(
            uid = %review.uid, kind = review.kind.as_str(), namespace = %review.namespace, name = %review.name,
            operation = review.operation.as_str(), dry_run = review.dry_run, policy = %denying.join(","),
            "denied"
        );
    }
    debug!(
        webhook = webhook_name(stage), uid = %review.uid, kind = review.kind.as_str(), namespace = %review.namespace,
        name = %review.name, operation = review.operation.as_str(), allowed = decision.allowed(),
        findings = decision.findings.len(), patch_ops = decision.patch.0.len(),
        micros = started.elapsed().as_micros() as u64, "reviewed"
    );
    let mut answer = Response::new(Body::from(response));
    answer.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(answer)
}

/// The steps the `cel` rules of a review may take on a runtime worker (about
/// 30 ms in release at most; typical rules take hundreds of steps, a few
/// microseconds) before the review is evaluated again on the blocking pool.
const INLINE_CEL_STEPS: u64 = 100_000;

/// Set when dropped: tells a review's evaluation on the blocking pool that its
/// answer is no longer awaited.
#[derive(Default)]
struct Abandoned(Arc<AtomicBool>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What the cluster said about a review ([`cluster_lookups`]), owned, so a
/// review can move to the blocking pool with it.
struct Cluster {
    lookup: Option<Lookup>,
    classes: Snapshot,
    gateways: Option<Arc<GatewayView>>,
}

/// The engine's decision on `review`, its `cel` rules within `cel_steps`.
fn judge(review: &Review, stage: Stage, cluster: &Cluster, policies: &PolicySet, cel_steps: u64) -> engine::Decision {
    let labels = cluster.lookup.as_ref().map_or(NamespaceLabels::none(), Lookup::labels);
    let input = Input {
        ingress_classes: cluster.classes.classes(),
        gateways: cluster.gateways.as_deref().unwrap_or(&NO_GATEWAYS),
        ..review.input(stage)
    };
    engine::evaluate_within(&input, policies, labels, cel_steps)
}

/// What the cluster says about a review: its namespace's labels and, for a
/// route, the Gateways it may attach to (`None` without the cache). A
/// namespace the cache holds and a route being mutated are answered at once;
/// only a namespace the cache lacks or a route being validated (whose missing
/// parents are fetched) waits, both at the same time, each bounded. That
/// waiting is boxed, so a review that needs none of it carries none of its
/// state.
async fn cluster_lookups(
    state: &AppState,
    stage: Stage,
    review: &Review,
) -> (Option<Lookup>, Option<Arc<GatewayView>>) {
    let namespaces = state.namespaces.as_ref().filter(|_| !review.namespace.is_empty());
    let cached = namespaces.and_then(|cache| cache.labels(&review.namespace)).map(Lookup::Found);
    let gateways =
        state.gateways.as_ref().filter(|_| matches!(review.kind, Kind::HttpRoute | Kind::GrpcRoute | Kind::TlsRoute));
    let waits = (namespaces.is_some() && cached.is_none()) || (gateways.is_some() && stage == Stage::Validate);
    if !waits {
        return (cached, gateways.map(|cache| cache.snapshot()));
    }
    Box::pin(async move {
        let namespace = async {
            match (cached, namespaces) {
                (Some(found), _) => Some(found),
                (None, Some(cache)) => Some(cache.lookup(&review.namespace).await),
                (None, None) => None,
            }
        };
        // A snapshot is one `Arc` clone; a validation also fetches the
        // parents the snapshot lacks.
        let gateways = async {
            match gateways {
                Some(cache) if stage == Stage::Validate => {
                    let objects = [review.object.as_ref(), review.old_object.as_ref()];
                    let routes: Vec<_> = objects.into_iter().flatten().filter_map(Object::route).collect();
                    Some(cache.view_for(&review.namespace, &routes).await)
                }
                Some(cache) => Some(cache.snapshot()),
                None => None,
            }
        };
        tokio::join!(namespace, gateways)
    })
    .await
}

/// Where and how to serve.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// After a shutdown signal, stay up but unready this long, so endpoints
    /// stop routing to this pod before it stops accepting.
    pub shutdown_delay: Duration,
    /// The longest in-flight reviews may take to finish on shutdown.
    pub drain_timeout: Duration,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("server task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// A running server.
pub struct Running {
    pub webhook_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The certificate being served, for a reloader to rotate.
    pub certificate: CertStore,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl Running {
    /// Starts the graceful shutdown: unready, wait the delay, drain, stop.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Waits until both listeners have stopped.
    pub async fn wait(self) -> Result<(), ServeError> {
        self.task.await?
    }
}

/// Binds both listeners and serves until [`Running::shutdown`]. Reloading
/// the certificate and the policies is the caller's (see `crate::reload`).
pub async fn start(config: &ServeConfig, state: Arc<AppState>) -> Result<Running, ServeError> {
    let certificate = CertStore::load(&config.tls_cert, &config.tls_key)?;
    state.metrics.tls_expiry(certificate.not_after() as f64);
    let bind = |addr: SocketAddr| {
        let listener = std::net::TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
        listener.set_nonblocking(true)?;
        Ok::<_, ServeError>(listener)
    };
    let webhook_listener = bind(config.listen)?;
    let admin_listener = tokio::net::TcpListener::from_std(bind(config.admin_listen)?)?;
    let webhook_addr = webhook_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;

    let handle = axum_server::Handle::new();
    // Slow clients: the TLS handshake and the request headers must arrive
    // within the request timeout; the body is bounded by `guard`.
    let timeout = state.limits.request_timeout;
    // TCP_NODELAY: a response must not wait for the client's delayed ACK.
    let acceptor =
        RustlsAcceptor::new(certificate.rustls().clone()).handshake_timeout(timeout).acceptor(NoDelayAcceptor::new());
    let mut server = axum_server::from_tcp(webhook_listener)?.acceptor(acceptor).handle(handle.clone());
    server.http_builder().http1().timer(TokioTimer::new()).header_read_timeout(timeout);
    server.http_builder().http2().timer(TokioTimer::new()).keep_alive_interval(Duration::from_secs(30));
    let webhook = server.serve(webhook_router(state.clone()).into_make_service());
    let (admin_stop, mut admin_stopped) = watch::channel(false);
    let admin = axum::serve(admin_listener, admin_router(state.clone()))
        .with_graceful_shutdown(async move {
            let _ = admin_stopped.wait_for(|stop| *stop).await;
        })
        .into_future();

    let (stop, mut stopping) = watch::channel(false);
    let delay = config.shutdown_delay;
    let drain = config.drain_timeout;
    let task = tokio::spawn(async move {
        let mut webhook = tokio::spawn(webhook);
        let admin = tokio::spawn(admin);
        state.set_ready(true);
        info!(%webhook_addr, %admin_addr, "serving");
        let early = tokio::select! {
            result = &mut webhook => Some(result),
            _ = stopping.wait_for(|stop| *stop) => None,
        };
        state.set_ready(false);
        let result = match early {
            Some(result) => {
                warn!("webhook listener stopped unexpectedly");
                result
            }
            None => {
                info!(delay_ms = delay.as_millis() as u64, "shutting down: unready, then draining in-flight reviews");
                tokio::time::sleep(delay).await;
                handle.graceful_shutdown(Some(drain));
                webhook.await
            }
        };
        admin_stop.send_replace(true);
        admin.await??;
        result??;
        info!("stopped");
        Ok(())
    });
    Ok(Running { webhook_addr, admin_addr, certificate, stop, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_review_path_answers_other_methods_405_allowing_post() {
        use tower::ServiceExt as _;
        let router = webhook_router(AppState::new(PolicySet::default()));
        for (method, path) in [(Method::GET, "/validate"), (Method::PUT, "/mutate"), (Method::HEAD, "/validate")] {
            let request = Request::builder().method(method.clone()).uri(path).body(Body::empty()).unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(response.headers()[header::ALLOW], "POST", "{method} {path}");
            assert!(response.extensions().get::<Counted>().is_none(), "{method} {path}");
        }
    }

    #[test]
    fn json_content_types() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        for (value, ok) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/yaml", false),
            ("text/plain", false),
        ] {
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            assert_eq!(is_json(&headers), ok, "{value}");
        }
    }
}
