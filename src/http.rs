//! The HTTP listener (`http-listen`, default `127.0.0.1:9644`): `/metrics`
//! in Prometheus' text format ([`crate::metrics`]) and `/v1/faults`, the
//! fault injection API ([`crate::faults`]).
//!
//! HTTP/1.1 by hyper on the broker's own runtime; one task per connection.
//! It binds to loopback by default: what it shows (topic names, groups) is
//! for the developer on the machine, not the network.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::Broker;

/// Binds `http-listen`; `Ok(None)` when it is empty (disabled).
pub async fn bind(address: &str) -> std::io::Result<Option<TcpListener>> {
    if address.is_empty() {
        return Ok(None);
    }
    TcpListener::bind(address).await.map(Some)
}

/// Serves HTTP on `listener` until the runtime shuts down.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>) {
    let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "HTTP accept failed");
                continue;
            }
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let broker = broker.clone();
                async move {
                    if loopback && !local_host(&req) {
                        return Ok::<_, Infallible>(respond(
                            StatusCode::MISDIRECTED_REQUEST,
                            "text/plain; charset=utf-8",
                            "a loopback listener answers requests for localhost only\n".into(),
                        ));
                    }
                    Ok(route(&broker, req, peer).await)
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
        });
    }
}

/// Whether the request names this machine (`localhost`, a loopback
/// address, any IP literal) in its Host header. A loopback listener
/// refuses other names: a web page whose domain was re-pointed at
/// 127.0.0.1 (DNS rebinding) would otherwise read the console, its CSRF
/// token included, and post to `/v1/faults` as a same-origin page.
fn local_host(req: &Request<Incoming>) -> bool {
    let Some(host) = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return true; // HTTP/1.0 clients (curl -0, scripts) send none
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The largest request body read (a fault rule is a few hundred bytes).
const MAX_BODY: usize = 64 << 10;

const JSON: &str = "application/json";

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let mut body = serde_json::to_string(value).expect("serializable");
    body.push('\n');
    respond(status, JSON, body)
}

fn json_error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message.into() }))
}

/// A request's body, at most [`MAX_BODY`] bytes (400 beyond).
async fn body(req: Request<Incoming>) -> Result<Bytes, Response<Full<Bytes>>> {
    Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| json_error(StatusCode::BAD_REQUEST, e.to_string()))
}

/// `/v1/faults`: GET lists, POST adds (JSON only: a browser cannot send
/// that cross-origin without a CORS preflight, which is never granted),
/// DELETE clears.
async fn faults(broker: &Broker, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match *req.method() {
        Method::GET => json(StatusCode::OK, &broker.faults.list()),
        Method::DELETE => json(
            StatusCode::OK,
            &serde_json::json!({ "cleared": broker.faults.clear() }),
        ),
        Method::POST => {
            let is_json = req
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(';').next().unwrap_or("").trim() == JSON);
            if !is_json {
                return json_error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Content-Type must be application/json",
                );
            }
            let body = match body(req).await {
                Ok(b) => b,
                Err(refused) => return refused,
            };
            let spec: crate::faults::RuleSpec = match serde_json::from_slice(&body) {
                Ok(s) => s,
                Err(e) => return json_error(StatusCode::BAD_REQUEST, e.to_string()),
            };
            match broker.faults.add(spec) {
                Ok(rule) => {
                    tracing::info!(?rule, "fault rule added");
                    json(StatusCode::CREATED, &rule)
                }
                Err(e) => json_error(StatusCode::BAD_REQUEST, e),
            }
        }
        _ => json_error(StatusCode::METHOD_NOT_ALLOWED, "GET, POST or DELETE"),
    }
}

async fn route(
    broker: &Broker,
    req: Request<Incoming>,
    _peer: SocketAddr,
) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (_, "/v1/faults") => faults(broker, req).await,
        (&Method::GET, "/metrics") => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            crate::metrics::render(broker).await,
        ),
        (_, "/metrics") => respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "GET only\n".into(),
        ),
        (&Method::GET, path) => {
            let query = req.uri().query().unwrap_or("").to_string();
            match crate::console::get_page(broker, path, &query).await {
                Some(p) => html(p),
                None => not_found(),
            }
        }
        (&Method::POST, path) if path.starts_with("/groups/") => {
            let path = path.to_string();
            let body = match body(req).await {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(refused) => return refused,
            };
            match crate::console::post(broker, &path, &body).await {
                Some(p) => html(p),
                None => not_found(),
            }
        }
        _ => not_found(),
    }
}

fn not_found() -> Response<Full<Bytes>> {
    respond(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "not found\n".into(),
    )
}

/// A console page; pages are not to be framed by other sites.
fn html(p: crate::console::Page) -> Response<Full<Bytes>> {
    let mut r = respond(
        StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        "text/html; charset=utf-8",
        p.body,
    );
    let headers = r.headers_mut();
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    if let Some(loc) = p.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(hyper::header::LOCATION, loc);
    }
    r
}
