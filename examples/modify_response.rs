//! Rewrite a JSON upstream response into YAML.
//!
//! `response_filter` decides from `Content-Type` whether to convert, drops `Content-Length`
//! (the new size is unknown until the whole body is seen) and switches to chunked encoding;
//! `response_body_filter` buffers every piece and emits the converted document at the end.
//! Bodies that fail to parse as JSON are passed on unchanged.
//!
//! ```text
//! printf '{"name":"pingora","ok":true}' > /tmp/x.json; (cd /tmp && python3 -m http.server 8000 &)
//! UPSTREAMS=127.0.0.1:8000 LISTEN=127.0.0.1:6193 cargo run -p pingora-examples --example modify_response
//! curl -i http://127.0.0.1:6193/x.json
//! ```

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::prelude::*;
use pingora_examples::{listen_addr, upstreams};
use std::time::Duration;

/// Proxies to one upstream and converts JSON bodies to YAML.
pub struct Json2Yaml {
    upstream: String,
}

/// Per-request state: whether to convert, and the body collected so far.
#[derive(Default)]
pub struct Ctx {
    convert: bool,
    buffer: BytesMut,
}

/// JSON text to YAML text; `None` when the input is not valid JSON.
fn json_to_yaml(json: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    serde_yaml::to_string(&value).ok()
}

#[async_trait]
impl ProxyHttp for Json2Yaml {
    type CTX = Ctx;
    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.convert = upstream_response
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        if ctx.convert {
            upstream_response.remove_header("Content-Length");
            upstream_response.insert_header("Transfer-Encoding", "chunked")?;
            upstream_response.insert_header("Content-Type", "application/yaml")?;
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        if !ctx.convert {
            return Ok(None);
        }
        // hold every piece back until the document is complete
        if let Some(piece) = body.take() {
            ctx.buffer.extend_from_slice(&piece);
        }
        if end_of_stream {
            let json = ctx.buffer.split().freeze();
            *body = Some(match json_to_yaml(&json) {
                Some(yaml) => Bytes::from(yaml),
                None => json,
            });
        }
        Ok(None)
    }
}

fn main() {
    env_logger::init();

    let mut server = Server::new(Some(Opt::parse_args())).expect("server setup");
    server.bootstrap();

    let upstream = upstreams("127.0.0.1:8000")
        .into_iter()
        .next()
        .expect("UPSTREAMS needs an address");
    let mut proxy = http_proxy_service(&server.configuration, Json2Yaml { upstream });
    proxy.add_tcp(&listen_addr("127.0.0.1:6193"));
    server.add_service(proxy);
    server.run_forever();
}
