//! The routers called in process (`tower::ServiceExt::oneshot`), no sockets.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A router's answer, body collected.
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// Sends `request` to `router`.
pub async fn call(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type =
        response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    Reply { status, content_type, body }
}

/// POSTs `body` to `path`, with a Content-Type header when one is given.
pub async fn post(router: &Router, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
    let mut request = Request::builder().method("POST").uri(path);
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    call(router, request.body(Body::from(body)).unwrap()).await
}

/// POSTs an AdmissionReview as JSON to `path`; the answer must be 200 with a
/// JSON AdmissionReview, which is returned.
pub async fn post_review(router: &Router, path: &str, review: &Value) -> Value {
    let reply = post(router, path, Some("application/json"), serde_json::to_vec(review).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.content_type, "application/json");
    reply.json()
}

/// GETs `path`.
pub async fn get(router: &Router, path: &str) -> Reply {
    call(router, Request::builder().uri(path).body(Body::empty()).unwrap()).await
}
