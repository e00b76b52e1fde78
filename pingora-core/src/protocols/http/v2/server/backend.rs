//! The two kinds of stream a session can sit on: one of an `h2` crate
//! connection (for servers that configure `h2` themselves through
//! [`H2Options`](super::H2Options)), or one of a connection on our own codec
//! (the default). The session's logic is the same over both.

use super::super::{h2_error, send_end, send_flow_controlled, strip_connection_headers};
use super::stream::StreamHandle;
use crate::protocols::http::v2::frame::ErrorCode;
use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, StatusCode};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{known, ResponseHeader};
use std::future::poll_fn;
use std::task::{Context, Poll};

pub(super) enum Backend {
    /// A stream of an `h2` crate connection.
    Crate {
        request_body: RecvStream,
        send_response: SendResponse<Bytes>,
        send_body: Option<SendStream<Bytes>>,
    },
    /// A stream of a connection on our codec.
    Codec(StreamHandle),
}

impl Backend {
    /// The next piece of request body, its window released; `None` at the end.
    pub async fn data(&mut self) -> Option<Result<Bytes>> {
        match self {
            Backend::Crate { request_body, .. } => loop {
                match request_body.data().await? {
                    Ok(data) => {
                        // hand back the window: the caller only asks for more
                        // once this piece went on, so the client follows our pace
                        let _ = request_body.flow_control().release_capacity(data.len());
                        if !data.is_empty() {
                            return Some(Ok(data));
                        }
                    }
                    Err(e) => {
                        return Some(Err(h2_error(
                            e,
                            ErrorType::ReadError,
                            "while reading HTTP/2 request body",
                        )))
                    }
                }
            },
            Backend::Codec(s) => poll_fn(|cx| s.poll_data(cx)).await.transpose(),
        }
    }

    /// The request trailers, after the body's end.
    pub async fn trailers(&mut self) -> Result<Option<HeaderMap>> {
        match self {
            Backend::Crate { request_body, .. } => poll_fn(|cx| request_body.poll_trailers(cx))
                .await
                .map_err(|e| h2_error(e, ErrorType::ReadError, "reading request trailers")),
            Backend::Codec(s) => Ok(s.take_trailers()),
        }
    }

    pub fn is_body_done(&self) -> bool {
        match self {
            Backend::Crate { request_body, .. } => request_body.is_end_stream(),
            Backend::Codec(s) => s.is_body_done(),
        }
    }

    /// Whether the client already reset the stream (without waiting).
    pub fn is_reset(&mut self) -> bool {
        match self {
            Backend::Crate { send_response, .. } => {
                let waker = futures::task::noop_waker();
                let mut cx = Context::from_waker(&waker);
                matches!(send_response.poll_reset(&mut cx), Poll::Ready(Ok(_)))
            }
            Backend::Codec(s) => s.is_reset(),
        }
    }

    /// Wait for the client to reset the stream: `Ok` with the reason, or
    /// the stream's failure.
    pub async fn reset_wait(&mut self) -> Result<String> {
        match self {
            Backend::Crate {
                send_response,
                send_body,
                ..
            } => {
                let reset = match send_body.as_mut() {
                    Some(body) => poll_fn(|cx| body.poll_reset(cx)).await,
                    None => poll_fn(|cx| send_response.poll_reset(cx)).await,
                };
                reset
                    .map(|r| r.to_string())
                    .map_err(|e| h2_error(e, ErrorType::ReadError, "HTTP/2 stream failed"))
            }
            Backend::Codec(s) => {
                let code = poll_fn(|cx| s.poll_reset(cx)).await;
                Ok(format!("error code {:#x}", code.0))
            }
        }
    }

    /// Send the final response head; `end`: no body follows.
    pub fn send_head(&mut self, head: &ResponseHeader, end: bool) -> Result<()> {
        match self {
            Backend::Crate {
                send_response,
                send_body,
                ..
            } => {
                let resp = http::Response::from_parts(h2_parts(head), ());
                let body = send_response.send_response(resp, end).map_err(|e| {
                    h2_error(e, ErrorType::WriteError, "while sending HTTP/2 response")
                })?;
                if !end {
                    *send_body = Some(body);
                }
                Ok(())
            }
            Backend::Codec(s) => s.send_head(head, end),
        }
    }

    /// Send an interim (1xx) head.
    pub fn send_informational(&mut self, head: &ResponseHeader) -> Result<()> {
        debug_assert!(
            head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS
        );
        match self {
            Backend::Crate { send_response, .. } => send_response
                .send_informational(http::Response::from_parts(h2_parts(head), ()))
                .map_err(|e| {
                    h2_error(
                        e,
                        ErrorType::WriteError,
                        "while sending an HTTP/2 informational response",
                    )
                }),
            Backend::Codec(s) => s.send_head(head, false),
        }
    }

    /// Send body under the client's window; `end` ends the response.
    pub async fn send_data(&mut self, mut data: Bytes, end: bool) -> Result<()> {
        match self {
            Backend::Crate { send_body, .. } => {
                let Some(body) = send_body.as_mut() else {
                    return Error::e_explain(ErrorType::H2Error, "response body before its header");
                };
                send_flow_controlled(body, data, end).await
            }
            Backend::Codec(s) => poll_fn(|cx| s.poll_send(cx, &mut data, end)).await,
        }
    }

    /// Send trailers, ending the response.
    pub fn send_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        match self {
            Backend::Crate { send_body, .. } => {
                let Some(body) = send_body.as_mut() else {
                    return Error::e_explain(
                        ErrorType::H2Error,
                        "trailers before the response header",
                    );
                };
                body.send_trailers(trailers).map_err(|e| {
                    h2_error(e, ErrorType::WriteError, "while sending HTTP/2 trailers")
                })
            }
            Backend::Codec(s) => s.send_trailers(&trailers),
        }
    }

    /// End the response with an empty DATA frame.
    pub fn send_end(&mut self) -> Result<()> {
        match self {
            Backend::Crate { send_body, .. } => match send_body.as_mut() {
                Some(body) => send_end(body),
                None => Error::e_explain(ErrorType::H2Error, "finished before any response"),
            },
            Backend::Codec(s) => s.send_end(),
        }
    }

    /// Abort the stream with `INTERNAL_ERROR`.
    pub fn reset(&mut self) {
        match self {
            Backend::Crate {
                send_response,
                send_body,
                ..
            } => match send_body.as_mut() {
                Some(body) => body.send_reset(Reason::INTERNAL_ERROR),
                None => send_response.send_reset(Reason::INTERNAL_ERROR),
            },
            Backend::Codec(s) => s.reset(ErrorCode::INTERNAL_ERROR),
        }
    }
}

/// `head` as the `h2` crate takes it, without what HTTP/2 forbids.
fn h2_parts(head: &ResponseHeader) -> http::response::Parts {
    let mut parts = head.as_owned_parts();
    parts.version = http::Version::HTTP_2;
    // every name `strip_connection_headers` may remove is either one of these
    // or named by a `Connection` header, which is one of these: usually none
    // is there (the proxy already stripped the hop-by-hop headers)
    const FORBIDDEN: u16 = known::HOP_BY_HOP | known::TRANSFER_ENCODING;
    if head.known_headers() & FORBIDDEN != 0 {
        strip_connection_headers(&mut parts.headers);
    }
    parts
}
