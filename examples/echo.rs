//! An HTTP server (no proxying) built on `ServeHttp`: it answers every request with the
//! request body it received, or with a short greeting when there is none.
//!
//! ```text
//! LISTEN=127.0.0.1:6145 cargo run -p pingora-examples --example echo
//! curl -i --data-binary 'hello pingora' http://127.0.0.1:6145/
//! ```

use async_trait::async_trait;
use bytes::BytesMut;
use http::{header, Response, StatusCode};
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::prelude::*;
use pingora::protocols::http::ServerSession;
use pingora::services::listening::Service;
use pingora_examples::listen_addr;
use std::time::Duration;

/// Bodies larger than this are refused with 413.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The echo application.
pub struct Echo;

impl Echo {
    /// Collect the whole request body, or say why not.
    async fn read_body(session: &mut ServerSession) -> std::result::Result<BytesMut, StatusCode> {
        let mut body = BytesMut::new();
        loop {
            let piece =
                pingora::time::timeout(Duration::from_secs(10), session.read_request_body())
                    .await
                    .map_err(|_| StatusCode::REQUEST_TIMEOUT)?
                    .map_err(|_| StatusCode::BAD_REQUEST)?;
            match piece {
                Some(bytes) if body.len() + bytes.len() > MAX_BODY => {
                    return Err(StatusCode::PAYLOAD_TOO_LARGE)
                }
                Some(bytes) => body.extend_from_slice(&bytes),
                None => return Ok(body),
            }
        }
    }
}

#[async_trait]
impl ServeHttp for Echo {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let (status, body) = match Self::read_body(session).await {
            Ok(body) if body.is_empty() => (StatusCode::OK, b"hello from echo\n".to_vec()),
            Ok(body) => (StatusCode::OK, body.to_vec()),
            Err(status) => {
                // the body was not fully read: do not reuse this connection
                session.set_keepalive(None);
                (status, status.to_string().into_bytes())
            }
        };
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, body.len())
            .body(body)
            .expect("static response parts are valid")
    }
}

fn main() {
    env_logger::init();

    let mut server = Server::new(Some(Opt::parse_args())).expect("server setup");
    server.bootstrap();

    let mut echo = Service::new("echo".to_string(), HttpServer::new_app(Echo));
    echo.add_tcp(&listen_addr("127.0.0.1:6145"));
    server.add_service(echo);
    server.run_forever();
}
