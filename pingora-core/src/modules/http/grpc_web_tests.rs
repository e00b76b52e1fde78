use super::*;

fn request(content_type: &str, len: Option<usize>) -> RequestHeader {
    let mut req = RequestHeader::build("POST", b"/pkg.Svc/Method", None).expect("request");
    // HTTP/2, so that the END_STREAM choice is visible
    req.set_version(http::Version::HTTP_2);
    req.insert_header(CONTENT_TYPE, content_type)
        .expect("header");
    if let Some(len) = len {
        req.insert_header(CONTENT_LENGTH, len).expect("header");
    }
    req
}

fn grpc_response(content_type: &str) -> ResponseHeader {
    let mut resp = ResponseHeader::build(200, None).expect("response");
    resp.insert_header(CONTENT_TYPE, content_type)
        .expect("header");
    resp.insert_header(CONTENT_LENGTH, "12").expect("header");
    resp
}

/// A gRPC message frame: flag 0, big-endian length, payload.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn header<'a>(h: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn bridge() -> HttpModuleCtx {
    let mut modules = HttpModules::new();
    modules.add_module(Box::new(GrpcWeb));
    let mut ctx = modules.build_ctx();
    ctx.get_mut::<GrpcWebBridge>().expect("added").init();
    ctx
}

/// A bridge that already saw a request of `content_type` (no length).
async fn bridged(content_type: &str) -> HttpModuleCtx {
    let mut ctx = bridge();
    ctx.request_header_filter(&mut request(content_type, None))
        .await
        .expect("filter");
    ctx
}

/// Run the response header filter on a `200` of `content_type`; returns the filtered head.
async fn respond(ctx: &mut HttpModuleCtx, content_type: &str) -> ResponseHeader {
    let mut resp = grpc_response(content_type);
    ctx.response_header_filter(&mut resp, false)
        .await
        .expect("filter");
    resp
}

/// A trailer block of `pairs`, as the response trailer filter takes it.
fn trailers(pairs: &[(&'static str, &str)]) -> Option<Box<HeaderMap>> {
    let mut t = HeaderMap::new();
    for (name, value) in pairs {
        t.insert(*name, value.parse().expect("value"));
    }
    Some(Box::new(t))
}

/// The bridge's state.
fn state(ctx: &HttpModuleCtx) -> &GrpcWebCtx {
    ctx.get::<GrpcWebBridge>().expect("bridge")
}

#[test]
fn content_type_parsing() {
    assert_eq!(
        parse_grpc_web("application/grpc-web"),
        Some((Flavour::Binary, ""))
    );
    assert_eq!(
        parse_grpc_web("Application/gRPC-Web+proto"),
        Some((Flavour::Binary, "+proto"))
    );
    assert_eq!(
        parse_grpc_web("application/grpc-web-text+proto"),
        Some((Flavour::Text, "+proto"))
    );
    assert_eq!(
        parse_grpc_web("application/grpc-web-text; charset=x"),
        Some((Flavour::Text, "; charset=x"))
    );
    assert_eq!(parse_grpc_web("application/grpc-we"), None);
    assert_eq!(parse_grpc_web("application/grpc-webx"), None);
    assert_eq!(parse_grpc_web("application/grpc"), None);
}

#[test]
fn disabled_or_not_grpc_web_is_untouched() {
    let mut req = request("application/grpc-web", Some(5));
    let mut ctx = GrpcWebCtx::default();
    ctx.request_header_filter(&mut req);
    assert_eq!(ctx, GrpcWebCtx::Disabled);
    assert_eq!(
        header(&req.headers, "content-type"),
        Some("application/grpc-web")
    );
    assert!(req.headers.get("te").is_none());

    let mut req = request("application/json", Some(5));
    ctx.init();
    ctx.request_header_filter(&mut req);
    assert_eq!(ctx, GrpcWebCtx::Init);
    assert_eq!(
        header(&req.headers, "content-type"),
        Some("application/json")
    );
    assert!(req.headers.get("te").is_none());
    assert_eq!(req.send_end_stream(), Some(true));
}

#[tokio::test]
async fn binary_request_becomes_grpc() {
    let mut ctx = bridge();
    let mut req = request("application/grpc-web+proto", Some(10));
    ctx.request_header_filter(&mut req).await.expect("filter");
    assert_eq!(
        header(&req.headers, "content-type"),
        Some("application/grpc+proto")
    );
    assert_eq!(header(&req.headers, "te"), Some("trailers"));
    // the body is unchanged, and so is its length
    assert_eq!(header(&req.headers, "content-length"), Some("10"));
    assert_eq!(req.send_end_stream(), Some(false));
    let b = ctx.get::<GrpcWebBridge>().expect("bridge");
    assert_eq!(**b, GrpcWebCtx::Upgrade);
    assert!(!b.is_text());
    let msg = frame(b"hello");
    let mut body = Some(Bytes::from(msg.clone()));
    ctx.request_body_filter(&mut body, true)
        .await
        .expect("body");
    assert_eq!(body.as_deref(), Some(&msg[..]));
}

#[tokio::test]
async fn text_request_body_is_decoded_across_pieces() {
    let mut ctx = bridge();
    let mut req = request("application/grpc-web-text", Some(100));
    ctx.request_header_filter(&mut req).await.expect("filter");
    assert_eq!(
        header(&req.headers, "content-type"),
        Some("application/grpc")
    );
    assert!(req.headers.get("content-length").is_none());
    assert!(ctx.get::<GrpcWebBridge>().expect("bridge").is_text());

    // two messages, each encoded on its own (padding in the middle of the stream)
    let (m1, m2) = (frame(b"first message"), frame(b"2nd"));
    let mut wire = base64::encode(&m1).to_vec();
    wire.extend_from_slice(&base64::encode(&m2));
    let mut got = Vec::new();
    let pieces: Vec<&[u8]> = wire.chunks(7).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let mut body = Some(Bytes::copy_from_slice(piece));
        let end = i + 1 == pieces.len();
        ctx.request_body_filter(&mut body, end)
            .await
            .expect("valid");
        got.extend_from_slice(body.as_deref().unwrap_or_default());
    }
    let mut want = m1;
    want.extend_from_slice(&m2);
    assert_eq!(got, want);
}

#[tokio::test]
async fn bad_text_request_body_is_a_client_error() {
    let mut ctx = bridge();
    let mut req = request("application/grpc-web-text", None);
    ctx.request_header_filter(&mut req).await.expect("filter");
    let mut body = Some(Bytes::from_static(b"AAAA*AAA"));
    let e = ctx
        .request_body_filter(&mut body, false)
        .await
        .expect_err("not base64");
    assert_eq!(e.etype(), &ErrorType::HTTPStatus(400));
    assert_eq!(e.esource(), &pingora_error::ErrorSource::Downstream);

    let mut ctx = bridged("application/grpc-web-text").await;
    let mut body = Some(Bytes::from_static(b"AAAAAA"));
    assert!(ctx.request_body_filter(&mut body, true).await.is_err());
}

#[tokio::test]
async fn binary_response_and_trailers() {
    let mut ctx = bridged("application/grpc-web").await;
    // informational responses pass and keep the state
    let mut info = ResponseHeader::build(100, None).expect("100");
    ctx.response_header_filter(&mut info, false)
        .await
        .expect("filter");
    assert_eq!(*state(&ctx), GrpcWebCtx::Upgrade);

    let resp = respond(&mut ctx, "application/grpc+proto").await;
    assert_eq!(
        header(&resp.headers, "content-type"),
        Some("application/grpc-web+proto")
    );
    assert!(resp.headers.get("content-length").is_none());
    assert_eq!(header(&resp.headers, "transfer-encoding"), Some("chunked"));

    let msg = frame(b"reply");
    let mut body = Some(Bytes::from(msg.clone()));
    ctx.response_body_filter(&mut body, false).expect("body");
    assert_eq!(body.as_deref(), Some(&msg[..]));

    let out = ctx
        .response_trailer_filter(&mut trailers(&[
            ("grpc-status", "0"),
            ("grpc-message", "OK"),
        ]))
        .expect("trailers")
        .expect("a trailer frame");
    let block = b"grpc-status: 0\r\ngrpc-message: OK\r\n";
    assert_eq!(out[0], 0x80);
    assert_eq!(&out[1..5], &(block.len() as u32).to_be_bytes());
    assert_eq!(&out[5..], block);
    assert_eq!(*state(&ctx), GrpcWebCtx::Done);
}

#[tokio::test]
async fn text_response_is_base64() {
    let mut ctx = bridged("application/grpc-web-text+proto").await;
    let resp = respond(&mut ctx, "application/grpc+proto").await;
    assert_eq!(
        header(&resp.headers, "content-type"),
        Some("application/grpc-web-text+proto")
    );
    let msg = frame(b"streamed reply");
    let mut body = Some(Bytes::from(msg.clone()));
    ctx.response_body_filter(&mut body, false).expect("body");
    let mut d = base64::Decoder::default();
    assert_eq!(
        &d.decode(body.as_deref().expect("body")).expect("b64")[..],
        &msg[..]
    );

    let out = ctx
        .response_trailer_filter(&mut trailers(&[("grpc-status", "5")]))
        .expect("trailers")
        .expect("frame");
    let decoded = d.decode(&out).expect("b64");
    assert_eq!(decoded[0], 0x80);
    assert_eq!(&decoded[5..], b"grpc-status: 5\r\n");
}

#[tokio::test]
async fn non_grpc_response_disables_the_bridge() {
    let mut ctx = bridged("application/grpc-web-text").await;
    let resp = respond(&mut ctx, "text/html").await;
    assert_eq!(header(&resp.headers, "content-type"), Some("text/html"));
    assert_eq!(header(&resp.headers, "content-length"), Some("12"));
    let mut body = Some(Bytes::from_static(b"<html>"));
    ctx.response_body_filter(&mut body, true).expect("body");
    assert_eq!(body.as_deref(), Some(&b"<html>"[..]));
    assert_eq!(
        ctx.response_trailer_filter(&mut trailers(&[]))
            .expect("no-op"),
        None
    );
}
