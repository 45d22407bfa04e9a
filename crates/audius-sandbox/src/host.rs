//! One host: the accept loop, its connections, and the way to each request's answer (the log,
//! the host's fault, CORS, then the routes).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::faults::{DropConnection, Fault, fault_response};
use crate::limits::{HEADER_READ_TIMEOUT, MAX_BODY_BYTES, MAX_CONNECTIONS, MAX_URI_BYTES};
use crate::log::LoggedRequest;
use crate::params::logged_grant_type;
use crate::respond::{INVALID_REQUEST_BODY, error_json, oauth_error};
use crate::state::Shared;

/// One host: its index, the shared state, and its routes.
pub(crate) struct Host {
    index: usize,
    shared: Arc<Shared>,
    router: axum::Router,
}

impl Host {
    /// Host `index` of the sandbox whose state is `shared`.
    pub(crate) fn new(index: usize, shared: Arc<Shared>) -> Self {
        Self {
            index,
            router: crate::routes::router(shared.clone(), index),
            shared,
        }
    }
}

/// Accepts connections until the sandbox stops, serving each as a task of `tracker`.
pub(crate) async fn accept_loop(listener: TcpListener, host: Arc<Host>, tracker: TaskTracker) {
    let shutdown = host.shared.shutdown.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    let host = host.clone();
                    tracker.spawn(async move {
                        serve_connection(stream, host).await;
                        drop(slot);
                    });
                }
                Err(_) => {
                    tracing::warn!(%peer, host = host.index, "too many connections; closing this one");
                    drop(stream);
                }
            },
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, host = host.index, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    tracing::debug!(host = host.index, "listener closed");
}

/// Grace given to answers in flight when the sandbox stops.
const STOP_GRACE: Duration = Duration::from_millis(500);

async fn serve_connection(stream: TcpStream, host: Arc<Host>) {
    let _ = stream.set_nodelay(true);
    let shutdown = host.shared.shutdown.clone();
    let service = hyper::service::service_fn(move |req| {
        let host = host.clone();
        async move { host.handle(req).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(STOP_GRACE, conn.as_mut()).await;
        }
    }
}

impl Host {
    async fn handle(&self, req: Request<Incoming>) -> Result<Response<Body>, DropConnection> {
        let path = req.uri().path().to_owned();
        let control = path == "/_sandbox" || path.starts_with("/_sandbox/");
        let cors = !(path == "/oauth/auth" || path.starts_with("/oauth/auth/"));
        if req.uri().to_string().len() > MAX_URI_BYTES {
            return Ok(with_cors(
                error_json(StatusCode::URI_TOO_LONG, "the request URI is too long"),
                cors,
            ));
        }
        let fault = if control {
            None
        } else {
            self.shared.take_fault(self.index, &path)
        };
        if !control {
            let (parts, body) = req.into_parts();
            let mut body = Body::new(body);
            let mut grant_type = None;
            if parts.method == Method::POST && path == TOKEN_ROUTE {
                // Read the body now, to log its grant_type (never the codes or tokens).
                let read = tokio::time::timeout(
                    HEADER_READ_TIMEOUT,
                    axum::body::to_bytes(body, MAX_BODY_BYTES),
                )
                .await;
                let bytes = match read {
                    Ok(Ok(bytes)) => bytes,
                    Ok(Err(_)) => {
                        return Ok(with_cors(
                            oauth_error(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                "invalid_request",
                                INVALID_REQUEST_BODY,
                            ),
                            cors,
                        ));
                    }
                    Err(_) => {
                        return Ok(with_cors(
                            oauth_error(
                                StatusCode::REQUEST_TIMEOUT,
                                "invalid_request",
                                INVALID_REQUEST_BODY,
                            ),
                            cors,
                        ));
                    }
                };
                grant_type = logged_grant_type(&parts.headers, &bytes);
                body = Body::from(bytes);
            }
            let mut entry =
                LoggedRequest::from_parts(self.index, &parts, fault.as_ref().map(Fault::describe));
            entry.grant_type = grant_type;
            self.shared.log_request(entry);
            let oauth = parts.method == Method::POST && OAUTH_POST_ROUTES.contains(&path.as_str());
            return self
                .answer(Request::from_parts(parts, body), fault, cors, oauth)
                .await;
        }
        self.answer(req.map(Body::new), None, true, false).await
    }

    async fn answer(
        &self,
        req: Request<Body>,
        fault: Option<Fault>,
        cors: bool,
        oauth: bool,
    ) -> Result<Response<Body>, DropConnection> {
        if let Some(fault) = fault {
            if !fault.latency.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(fault.latency) => {}
                    () = self.shared.shutdown.cancelled() => {
                        return Ok(error_json(StatusCode::SERVICE_UNAVAILABLE, "the sandbox is stopping"));
                    }
                }
            }
            if let Some(response) = fault_response(fault.action, oauth)? {
                return Ok(with_cors(response, cors));
            }
        }
        if req.method() == Method::OPTIONS {
            return Ok(preflight(&req));
        }
        let response = match self.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        Ok(with_cors(response, cors))
    }
}

/// The token endpoint (its request bodies are read before routing, to log the grant type).
const TOKEN_ROUTE: &str = "/v1/oauth/token";
/// The OAuth endpoints, whose errors are `{"error", "error_description"}`.
const OAUTH_POST_ROUTES: [&str; 2] = [TOKEN_ROUTE, "/v1/oauth/revoke"];

fn with_cors(mut response: Response<Body>, cors: bool) -> Response<Body> {
    if cors {
        response.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    response
}

/// The answer to a CORS preflight: 204, any origin, the usual methods, the headers asked for.
fn preflight(req: &Request<Body>) -> Response<Body> {
    let asked = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .filter(|v| v.len() <= 1024)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("Authorization, Content-Type"));
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .header(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "GET, POST, PUT, DELETE, OPTIONS",
        )
        .header(header::ACCESS_CONTROL_ALLOW_HEADERS, asked)
        .header(header::ACCESS_CONTROL_MAX_AGE, "600")
        .body(Body::empty())
        .unwrap_or_default()
}
