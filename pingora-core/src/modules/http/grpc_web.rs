//! The gRPC-web bridge: lets HTTP/1.1 (browser) clients speaking gRPC-web reach a gRPC
//! server, which only speaks gRPC over HTTP/2.
//!
//! gRPC-web ([protocol](https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md)) frames
//! messages exactly like gRPC, but since HTTP/1.1 clients cannot read trailers, the gRPC
//! trailers (`grpc-status`, `grpc-message`, ...) travel as one last frame of the body, flagged
//! `0x80`. The `application/grpc-web-text` variant base64-encodes the whole body both ways.
//!
//! The bridge, switched on per request with [`GrpcWebCtx::init`]:
//! * turns the request's `application/grpc-web[-text][+codec]` content type into
//!   `application/grpc[+codec]`, adds `te: trailers` and, for text, decodes the body (and
//!   drops its `Content-Length`, which no longer fits);
//! * turns the gRPC response back: content type, chunked framing, trailers folded into the
//!   body as the trailer frame, and for text the body base64-encoded.
//!
//! Requests that are not gRPC-web, and responses that are not gRPC, pass untouched.

use super::base64;
use super::*;
use bytes::{BufMut, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use pingora_error::{Error, ErrorType};
use std::ops::{Deref, DerefMut};

const GRPC: &str = "application/grpc";
const GRPC_WEB: &str = "application/grpc-web";
const GRPC_WEB_TEXT: &str = "application/grpc-web-text";

/// Flag byte of the gRPC-web frame that carries the trailers.
const TRAILER_FRAME_FLAG: u8 = 0x80;

/// The gRPC-web flavours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Binary,
    Text,
}

/// Split a gRPC-web content type into its flavour and what follows the media type (`+proto`,
/// parameters), or `None` when it is not gRPC-web.
fn parse_grpc_web(content_type: &str) -> Option<(Flavour, &str)> {
    let lower_prefix =
        |p: &str| content_type.len() >= p.len() && content_type[..p.len()].eq_ignore_ascii_case(p);
    let (flavour, rest) = if lower_prefix(GRPC_WEB_TEXT) {
        (Flavour::Text, &content_type[GRPC_WEB_TEXT.len()..])
    } else if lower_prefix(GRPC_WEB) {
        (Flavour::Binary, &content_type[GRPC_WEB.len()..])
    } else {
        return None;
    };
    (rest.is_empty() || rest.starts_with(['+', ';'])).then_some((flavour, rest))
}

/// The gRPC-web bridging state of one request.
#[derive(Default, PartialEq, Eq, Debug, Clone, Copy)]
pub enum GrpcWebCtx {
    /// Not switched on for this request: nothing is changed.
    #[default]
    Disabled,
    /// Switched on; waiting for the request header to tell whether it is gRPC-web.
    Init,
    /// The request was turned into gRPC; waiting for the response header.
    Upgrade,
    /// The response is gRPC being turned into gRPC-web; the trailers are still to come.
    Trailers,
    /// The trailers were sent as the final frame.
    Done,
}

impl GrpcWebCtx {
    /// Switch the bridge on for this request.
    pub fn init(&mut self) {
        *self = Self::Init;
    }

    /// Turn a gRPC-web request header into a gRPC one (when switched on and it is gRPC-web).
    pub fn request_header_filter(&mut self, req: &mut RequestHeader) {
        if *self != Self::Init {
            return;
        }
        let content_type = req
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let Some((_, rest)) = parse_grpc_web(content_type) else {
            return;
        };
        let grpc_type = format!("{GRPC}{rest}");
        // Neither value can be invalid: the first is made of a valid header value's bytes.
        if req.insert_header(CONTENT_TYPE, grpc_type).is_err()
            || req.insert_header("te", "trailers").is_err()
        {
            return;
        }
        // gRPC ends the request stream with its last DATA frame, even an empty one.
        req.set_send_end_stream(false);
        *self = Self::Upgrade;
    }

    /// Turn a gRPC response header into a gRPC-web one (for a bridged request).
    pub fn response_header_filter(&mut self, resp: &mut ResponseHeader) {
        if *self != Self::Upgrade || resp.status.is_informational() {
            return;
        }
        let content_type = resp
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let is_grpc = content_type.len() >= GRPC.len()
            && content_type[..GRPC.len()].eq_ignore_ascii_case(GRPC)
            && content_type[GRPC.len()..]
                .chars()
                .next()
                .is_none_or(|c| c == '+' || c == ';');
        if !is_grpc {
            *self = Self::Disabled;
            return;
        }
        let web_type = format!("{GRPC_WEB}{}", &content_type[GRPC.len()..]);
        if resp.insert_header(CONTENT_TYPE, web_type).is_err() {
            *self = Self::Disabled;
            return;
        }
        // The trailer frame is added to the body: no length can be announced.
        resp.remove_header(&CONTENT_LENGTH);
        let _ = resp.insert_header(TRANSFER_ENCODING, "chunked");
        *self = Self::Trailers;
    }

    /// Encode the gRPC trailers as the gRPC-web trailer frame, to be sent as the last piece
    /// of the body. `None` when the response is not being bridged.
    pub fn response_trailer_filter(&mut self, trailers: &mut HeaderMap) -> Result<Option<Bytes>> {
        if *self != Self::Trailers {
            *self = Self::Disabled;
            return Ok(None);
        }
        let mut block = BytesMut::with_capacity(128);
        for (name, value) in trailers.iter() {
            block.put_slice(name.as_str().as_bytes());
            block.put_slice(b": ");
            block.put_slice(value.as_bytes());
            block.put_slice(b"\r\n");
        }
        let len = u32::try_from(block.len()).map_err(|_| {
            Error::explain(ErrorType::InternalError, "gRPC trailers too large to frame")
        })?;
        let mut frame = BytesMut::with_capacity(5 + block.len());
        frame.put_u8(TRAILER_FRAME_FLAG);
        frame.put_u32(len);
        frame.put_slice(&block);
        *self = Self::Done;
        Ok(Some(frame.freeze()))
    }
}

/// The gRPC-web bridge module's per-request instance (binary and text flavours).
///
/// It does nothing until switched on with [`GrpcWebCtx::init`] (reached through `Deref`),
/// typically in `early_request_filter`:
/// `session.downstream_modules_ctx.get_mut::<GrpcWebBridge>().map(|b| b.init())`.
#[derive(Default, Debug)]
pub struct GrpcWebBridge {
    ctx: GrpcWebCtx,
    text: bool,
    decoder: base64::Decoder,
}

impl GrpcWebBridge {
    /// Whether this request is bridged as `application/grpc-web-text` (base64 bodies).
    pub fn is_text(&self) -> bool {
        self.text
    }
}

impl Deref for GrpcWebBridge {
    type Target = GrpcWebCtx;

    fn deref(&self) -> &GrpcWebCtx {
        &self.ctx
    }
}

impl DerefMut for GrpcWebBridge {
    fn deref_mut(&mut self) -> &mut GrpcWebCtx {
        &mut self.ctx
    }
}

#[async_trait]
impl HttpModule for GrpcWebBridge {
    async fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
        if self.ctx != GrpcWebCtx::Init {
            return Ok(());
        }
        let flavour = req
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_web)
            .map(|(f, _)| f);
        self.ctx.request_header_filter(req);
        if self.ctx == GrpcWebCtx::Upgrade && flavour == Some(Flavour::Text) {
            self.text = true;
            // decoding shrinks the body: its length is no longer known
            req.remove_header(&CONTENT_LENGTH);
        }
        Ok(())
    }

    async fn request_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        if !self.text {
            return Ok(());
        }
        if let Some(data) = body.as_ref() {
            let decoded = self.decoder.decode(data).map_err(|msg| {
                Error::explain(
                    ErrorType::HTTPStatus(400),
                    format!("gRPC-web-text body: {msg}"),
                )
                .into_down()
            })?;
            *body = Some(decoded);
        }
        if end_of_stream && !self.decoder.is_aligned() {
            return Error::e_explain(
                ErrorType::HTTPStatus(400),
                "gRPC-web-text body ends inside a base64 quantum",
            )
            .map_err(|e| e.into_down());
        }
        Ok(())
    }

    async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        _end_of_stream: bool,
    ) -> Result<()> {
        self.ctx.response_header_filter(resp);
        if self.text && self.ctx == GrpcWebCtx::Trailers {
            // `application/grpc-web[+codec]` -> `application/grpc-web-text[+codec]`
            let rest = resp
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_grpc_web)
                .map(|(_, rest)| rest.to_string())
                .unwrap_or_default();
            resp.insert_header(CONTENT_TYPE, format!("{GRPC_WEB_TEXT}{rest}"))?;
        }
        Ok(())
    }

    fn response_body_filter(&mut self, body: &mut Option<Bytes>, _end: bool) -> Result<()> {
        if self.text && self.ctx == GrpcWebCtx::Trailers {
            if let Some(data) = body.as_ref().filter(|d| !d.is_empty()) {
                // Each piece is encoded on its own (padded) so nothing waits for the next one.
                *body = Some(base64::encode(data));
            }
        }
        Ok(())
    }

    fn response_trailer_filter(
        &mut self,
        trailers: &mut Option<Box<HeaderMap>>,
    ) -> Result<Option<Bytes>> {
        let Some(trailers) = trailers else {
            return Ok(None);
        };
        let frame = self.ctx.response_trailer_filter(trailers)?;
        Ok(match frame {
            Some(f) if self.text => Some(base64::encode(&f)),
            other => other,
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The builder of the gRPC-web bridge module: add it with `HttpModules::add_module`.
pub struct GrpcWeb;

impl HttpModuleBuilder for GrpcWeb {
    fn init(&self) -> Module {
        Box::new(GrpcWebBridge::default())
    }
}

#[cfg(test)]
#[path = "grpc_web_tests.rs"]
mod tests;
