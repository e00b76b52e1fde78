//! The upstream exchange over a stream of a shared HTTP/2 connection, for HTTP/1 and HTTP/2
//! clients alike.
//!
//! As for HTTP/1 upstreams, two halves run concurrently and hand each other [`HttpTask`]s
//! through small bounded channels: the downstream half (the same one as for HTTP/1 upstreams,
//! in `proxy_h1`) reads the request body and writes the (filtered) response; the upstream half
//! here sends the body up and reads the response. A half only takes the next piece once the
//! previous one was handed on, and the HTTP/2 session releases flow-control window only as
//! pieces are taken, so a slow client slows the upstream down instead of filling memory.

use bytes::Bytes;
use http::{header, Version};
use log::debug;
use pingora_core::protocols::http::v2::client::Http2Session;
use pingora_core::protocols::http::HttpTask;
use pingora_core::protocols::UniqueID;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::RequestHeader;
use tokio::sync::mpsc;

use crate::proxy_common::{request_trailers, strip_request_hop_by_hop};
use crate::proxy_h1::{ClientRequest, DEFAULT_TUNNEL_IDLE_TIMEOUT};
use crate::{HttpProxy, ProxyHttp, Session};

/// How many tasks may wait in each direction between the two halves.
const TASK_BUFFER_SIZE: usize = 4;

/// Turn a copy of the client's request into the request for an HTTP/2 upstream: hop-by-hop
/// headers go (`te: trailers` stays), and the body is sent as DATA frames, never chunked.
/// `Host` becomes `:authority` when the request is sent.
pub(crate) fn prepare_h2_upstream_request(req: &mut RequestHeader) {
    let te_trailers = req
        .headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    strip_request_hop_by_hop(req);
    req.remove_header(&header::TRANSFER_ENCODING);
    if te_trailers {
        let _ = req.insert_header(header::TE, "trailers");
    }
    req.set_version(Version::HTTP_2);
}

impl<SV> HttpProxy<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    <SV as ProxyHttp>::CTX: Send + Sync,
{
    /// Proxy the request over the upstream HTTP/2 stream `client`.
    /// Returns (client connection reusable, error).
    pub(crate) async fn proxy_to_h2_upstream(
        &self,
        session: &mut Session,
        client: &mut Http2Session,
        reused: bool,
        peer: &HttpPeer,
        ctx: &mut SV::CTX,
    ) -> (bool, Option<Box<Error>>) {
        let fd = client.id();
        if let Err(e) = self
            .inner
            .connected_to_upstream(session, reused, peer, fd, client.digest(), ctx)
            .await
        {
            return (false, Some(e));
        }
        client.read_timeout = peer.options.read_timeout;
        client.write_timeout = peer.options.write_timeout;

        let mut req = session.req_header().clone();
        prepare_h2_upstream_request(&mut req);
        if let Err(e) = self
            .inner
            .upstream_request_filter(session, &mut req, ctx)
            .await
        {
            return (false, Some(e));
        }
        session.downstream_session.enable_retry_buffering();
        // A request without body (and nothing to replay) is complete with its header.
        let replay = session.downstream_session.get_retry_buffer();
        let headers_only = replay.is_none()
            && session.downstream_session.is_body_done()
            && request_trailers(session).is_none();
        debug!(
            "sending request upstream over h2: {} {}",
            req.method, req.uri
        );
        if let Err(e) = client.write_request_header(Box::new(req), headers_only) {
            return (false, Some(e.into_up()));
        }

        let client_req = ClientRequest {
            method: session.req_header().method.clone(),
            version: session.req_header().version,
            upgrade: false,
            extended_connect: false,
            tunnel_idle: DEFAULT_TUNNEL_IDLE_TIMEOUT,
        };
        let (tx_resp, rx_resp) = mpsc::channel::<HttpTask>(TASK_BUFFER_SIZE);
        let (tx_body, rx_body) = mpsc::channel::<HttpTask>(TASK_BUFFER_SIZE);
        let res = tokio::try_join!(
            self.downstream_half(session, &client_req, tx_body, rx_resp, ctx),
            h2_upstream_half(client, tx_resp, rx_body, headers_only),
        );
        match res {
            Ok((downstream_reuse, ())) => (downstream_reuse, None),
            Err(e) => (false, Some(e)),
        }
    }
}

/// The next response task from the upstream stream: interim (1xx) heads first, then the
/// final head, body pieces and trailers.
async fn read_response_task(client: &mut Http2Session) -> Result<HttpTask> {
    if client.response_header().is_none() {
        if let Some(interim) = client.read_informational().await? {
            return Ok(HttpTask::Header(Box::new(interim), false));
        }
        client.read_response_header().await?;
        let header = client
            .response_header()
            .cloned()
            .ok_or_else(|| Error::explain(ErrorType::H2Error, "no response header"))?;
        return Ok(HttpTask::Header(
            Box::new(header),
            client.response_finished(),
        ));
    }
    match client.read_response_body().await? {
        Some(data) => Ok(HttpTask::Body(Some(data), false)),
        None => Ok(match client.read_trailers().await? {
            Some(t) => HttpTask::Trailer(Some(Box::new(t))),
            None => HttpTask::Done,
        }),
    }
}

/// Send the request body pieces coming from the downstream half up the stream and read the
/// response, handing it to the downstream half.
async fn h2_upstream_half(
    client: &mut Http2Session,
    tx_resp: mpsc::Sender<HttpTask>,
    mut rx_body: mpsc::Receiver<HttpTask>,
    request_ended: bool,
) -> Result<()> {
    let mut request_done = request_ended;
    let mut response_done = false;
    let mut pending: Option<HttpTask> = None;
    while !request_done || !response_done || pending.is_some() {
        tokio::select! {
            task = read_response_task(client), if !response_done && pending.is_none() => {
                match task {
                    Ok(task) => {
                        response_done = task.is_end();
                        pending = Some(task);
                    }
                    Err(e) => {
                        pending = Some(HttpTask::Failed(e.into_up()));
                        response_done = true;
                        request_done = true;
                        rx_body.close();
                    }
                }
            }
            permit = tx_resp.reserve(), if pending.is_some() => {
                let Ok(permit) = permit else {
                    // the downstream half failed; the stream is reset on drop
                    return Ok(());
                };
                if let Some(task) = pending.take() {
                    let failed = matches!(task, HttpTask::Failed(_));
                    permit.send(task);
                    if failed {
                        return Ok(());
                    }
                }
            }
            body = rx_body.recv(), if !request_done => {
                match body {
                    Some(HttpTask::Trailer(Some(trailers))) => {
                        if let Err(e) = client.write_request_trailers(*trailers) {
                            debug!("failed to send request trailers upstream over h2: {e}");
                            rx_body.close();
                        }
                        request_done = true;
                    }
                    Some(HttpTask::Body(data, end)) => {
                        let data = data.unwrap_or_else(Bytes::new);
                        if let Err(e) = client.write_request_body(data, end).await {
                            // the upstream may have answered early; keep reading it
                            debug!("failed to send request body upstream over h2: {e}");
                            rx_body.close();
                            request_done = true;
                        } else if end {
                            request_done = true;
                        }
                    }
                    Some(_) => {}
                    None => request_done = true,
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h2_request_has_no_hop_by_hop() {
        let mut req = RequestHeader::build("POST", b"/x", None).expect("request");
        req.insert_header("Host", "a.test").expect("header");
        req.insert_header("Connection", "keep-alive, x-private")
            .expect("header");
        req.insert_header("X-Private", "1").expect("header");
        req.insert_header("Transfer-Encoding", "chunked")
            .expect("header");
        req.insert_header("TE", "trailers").expect("header");
        req.insert_header("Upgrade", "foo").expect("header");
        prepare_h2_upstream_request(&mut req);
        for gone in ["connection", "x-private", "transfer-encoding", "upgrade"] {
            assert!(!req.headers.contains_key(gone), "{gone}");
        }
        assert_eq!(
            req.headers.get("te").map(|v| v.as_bytes()),
            Some(&b"trailers"[..])
        );
        assert_eq!(req.version, Version::HTTP_2);
        let mut req = RequestHeader::build("GET", b"/", None).expect("request");
        req.insert_header("TE", "gzip").expect("header");
        prepare_h2_upstream_request(&mut req);
        assert!(!req.headers.contains_key("te"));
    }
}
