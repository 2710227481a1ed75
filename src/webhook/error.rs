//! Why a request to `/validate` or `/mutate` got no AdmissionReview back: one
//! error type, answered with its status and a one-line reason. Every such
//! answer is counted as `decision="error"` by the webhook's guard, which sees
//! the [`Counted`] mark the response carries.

use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::review::DecodeError;

/// A request the webhook could not review.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// More reviews in flight than `--max-in-flight`: refused at once.
    #[error("portcullis is overloaded: {0} reviews in flight; retry")]
    Overloaded(usize),
    /// The review was not received and answered within `--request-timeout`.
    #[error("review not received and answered within {0}s")]
    Timeout(f64),
    #[error("Content-Type must be application/json")]
    NotJson,
    /// The body could not be read: too large (413) or broken off.
    #[error("{0}")]
    Body(#[from] BytesRejection),
    #[error("{0}")]
    Undecodable(#[from] DecodeError),
    /// The evaluation of the review ended without an answer (it panicked, or
    /// the runtime is shutting down).
    #[error("the review could not be evaluated")]
    Evaluation,
}

/// Marks a response as an error answer, for the error metric.
#[derive(Clone, Copy, Debug)]
pub struct Counted;

impl WebhookError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebhookError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebhookError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            WebhookError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WebhookError::Body(rejection) => rejection.status(),
            WebhookError::Undecodable(_) => StatusCode::BAD_REQUEST,
            WebhookError::Evaluation => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), format!("{self}\n")).into_response();
        let headers = response.headers_mut();
        match self {
            WebhookError::Overloaded(_) => {
                headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            }
            // The rest of a slow body may never come: do not wait for it.
            WebhookError::Timeout(_) => {
                headers.insert(header::CONNECTION, header::HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response.extensions_mut().insert(Counted);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status_and_a_one_line_reason_and_is_marked() {
        let cases = [
            (
                WebhookError::Overloaded(8),
                StatusCode::SERVICE_UNAVAILABLE,
                "portcullis is overloaded: 8 reviews in flight; retry\n",
            ),
            (WebhookError::Timeout(3.0), StatusCode::REQUEST_TIMEOUT, "review not received and answered within 3s\n"),
            (WebhookError::NotJson, StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json\n"),
            (
                WebhookError::Undecodable(DecodeError::NoUid),
                StatusCode::BAD_REQUEST,
                "AdmissionReview request has no uid\n",
            ),
        ];
        for (error, status, body) in cases {
            assert_eq!(format!("{error}\n"), body);
            let response = error.into_response();
            assert_eq!(response.status(), status);
            assert!(response.extensions().get::<Counted>().is_some());
        }
    }
}
