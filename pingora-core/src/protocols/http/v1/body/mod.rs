//! HTTP/1 message body framing, shared by the server and client sessions:
//! [`BodyReader`] decodes an incoming body (Content-Length, chunked, or
//! delimited by the connection closing) and [`BodyWriter`] frames an
//! outgoing one.
//!
//! Bodies are streamed: each read returns what arrived (zero-copy slices of
//! one reused buffer), never the whole body.

pub mod chunked;
mod writer;

pub use writer::{write_all_vectored, BodyWriter};

use bytes::{Bytes, BytesMut};
use chunked::{ChunkDecoder, Decoded};
use http::HeaderMap;
use pingora_error::{Error, ErrorType::*, OrErr, Result};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::Poll;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// The most read from the connection at a time: a 64 KiB body the peer sent at once comes in
/// one read (and goes out in one write), rather than in four reads and four writes.
pub const BODY_READ_SIZE: usize = 64 * 1024;

/// Room made for each read past a completed body (see [`BodyReader::read_after_body`]).
const AFTER_BODY_READ_SIZE: usize = 1024;

#[derive(Debug)]
enum ReadMode {
    /// The framing is not known yet.
    Uninit,
    /// `remaining` bytes are still expected.
    ContentLength { remaining: u64 },
    /// Chunked coding.
    Chunked(ChunkDecoder),
    /// Everything until the peer closes the connection.
    UntilClose,
    /// The body is complete.
    Done,
}

/// The reading state of one incoming message body.
#[derive(Debug)]
pub struct BodyReader {
    mode: ReadMode,
    /// Bytes read from the connection but not handed out yet. After the body
    /// is complete it holds whatever followed it (a pipelined message).
    buf: BytesMut,
    empty: bool,
    /// The body bytes read with the head are fewer than the body: before they are handed
    /// out, what else the connection already holds is appended (without waiting), so the
    /// first piece is as large as one read allows.
    top_up: bool,
    trailers: Option<Box<HeaderMap>>,
}

impl Default for BodyReader {
    fn default() -> Self {
        Self::new()
    }
}

impl BodyReader {
    /// A reader whose framing is not known yet.
    pub fn new() -> Self {
        BodyReader {
            mode: ReadMode::Uninit,
            buf: BytesMut::new(),
            empty: false,
            top_up: false,
            trailers: None,
        }
    }

    /// Whether one of the `init_*` methods still has to be called.
    pub fn need_init(&self) -> bool {
        matches!(self.mode, ReadMode::Uninit)
    }

    /// A body of exactly `len` bytes; `preread` holds bytes that were read
    /// together with the message head.
    pub fn init_content_length(&mut self, len: u64, preread: BytesMut) {
        self.top_up = !preread.is_empty() && (preread.len() as u64) < len;
        self.buf = preread;
        self.empty = len == 0;
        self.mode = if len == 0 {
            ReadMode::Done
        } else {
            ReadMode::ContentLength { remaining: len }
        };
    }

    /// A chunked body.
    pub fn init_chunked(&mut self, preread: BytesMut) {
        self.top_up = false;
        self.buf = preread;
        self.empty = false;
        self.mode = ReadMode::Chunked(ChunkDecoder::new());
    }

    /// A body that lasts until the peer closes the connection (HTTP/1.0
    /// style responses, or upgraded connections).
    pub fn init_until_close(&mut self, preread: BytesMut) {
        self.top_up = false;
        self.buf = preread;
        self.empty = false;
        self.mode = ReadMode::UntilClose;
    }

    /// Switch a finished (or never started) body to read until close, keeping
    /// any bytes already buffered: used once a connection is upgraded.
    pub fn convert_to_until_close(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.init_until_close(buf);
    }

    /// Whether no (more) body bytes will come.
    pub fn body_done(&self) -> bool {
        matches!(self.mode, ReadMode::Done)
    }

    /// Whether the message was framed as having no body at all.
    pub fn body_empty(&self) -> bool {
        self.empty
    }

    /// Whether the body is framed by the connection closing.
    pub fn is_until_close(&self) -> bool {
        matches!(self.mode, ReadMode::UntilClose)
    }

    /// The trailers that followed a chunked body, once it is complete.
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_deref()
    }

    /// The trailers that followed a chunked body, once it is complete, taken
    /// out of the reader.
    pub fn take_trailers(&mut self) -> Option<Box<HeaderMap>> {
        self.trailers.take()
    }

    /// Bytes already read that follow the body (only meaningful once
    /// [`Self::body_done`]); they belong to the next message.
    pub fn take_leftover(&mut self) -> BytesMut {
        std::mem::take(&mut self.buf)
    }

    /// How many bytes are buffered (beyond the body, once it is complete).
    pub fn leftover_len(&self) -> usize {
        self.buf.len()
    }

    /// Whether bytes beyond the body are buffered.
    pub fn has_leftover(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Read more bytes past a completed body into the leftover buffer
    /// (while idling between messages). Returns the bytes read; 0 when the
    /// peer closed.
    pub async fn read_after_body<S: AsyncRead + Unpin + ?Sized>(
        &mut self,
        stream: &mut S,
    ) -> Result<usize> {
        if self.buf.capacity() - self.buf.len() >= AFTER_BODY_READ_SIZE {
            return stream
                .read_buf(&mut self.buf)
                .await
                .or_err(ReadError, "while reading past the body");
        }
        // Usually nothing comes (this watches for the peer going away while, e.g., the
        // upstream is asked), at most the start of a pipelined message. So the read goes to
        // a buffer on the stack of each poll and what came is appended: the usual answer,
        // "nothing yet", costs no heap buffer (each request would otherwise allocate one).
        std::future::poll_fn(|cx| {
            let mut room = [MaybeUninit::<u8>::uninit(); AFTER_BODY_READ_SIZE];
            let mut read = ReadBuf::uninit(&mut room);
            match Pin::new(&mut *stream).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    self.buf.extend_from_slice(read.filled());
                    Poll::Ready(Ok(read.filled().len()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
        .or_err(ReadError, "while reading past the body")
    }

    /// Room for the next read: [`BODY_READ_SIZE`], or for a Content-Length body what is left
    /// of it (up to that size) plus a little, so a small body does not pin a large buffer.
    /// The little extra makes the read that ends the body a short one, which tells the
    /// runtime the socket is drained: the pool's look at the connection then costs no syscall.
    fn read_size(&self) -> usize {
        match self.mode {
            ReadMode::ContentLength { remaining } => {
                usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(BODY_READ_SIZE)
                    + AFTER_BODY_READ_SIZE
            }
            _ => BODY_READ_SIZE,
        }
    }

    async fn fill<S: AsyncRead + Unpin + ?Sized>(&mut self, stream: &mut S) -> Result<usize> {
        self.buf.reserve(self.read_size());
        stream
            .read_buf(&mut self.buf)
            .await
            .or_err(ReadError, "while reading body")
    }

    /// Append to the bytes read with the head what the connection already holds, up to one
    /// read's worth, without waiting. A read that would wait costs nothing more than it does
    /// now: the next [`Self::fill`] would have made the same attempt.
    fn top_up_now<S: AsyncRead + Unpin + ?Sized>(&mut self, stream: &mut S) -> Result<()> {
        use futures::FutureExt;
        let want = self.read_size().saturating_sub(self.buf.len());
        if want == 0 {
            return Ok(());
        }
        self.buf.reserve(want);
        match stream.read_buf(&mut self.buf).now_or_never() {
            // end of stream: the next read reports the body as cut short
            Some(Ok(_)) | None => Ok(()),
            Some(Err(e)) => Err(e).or_err(ReadError, "while reading body"),
        }
    }

    /// Read the next piece of body. `Ok(None)` once the body is complete.
    /// Errors: `ConnectionClosed` when the peer closes early, `H1Error` for
    /// framing violations, `ReadError` for IO failures. The caller sets the
    /// error source (upstream / downstream).
    pub async fn read_body<S: AsyncRead + Unpin + ?Sized>(
        &mut self,
        stream: &mut S,
    ) -> Result<Option<Bytes>> {
        loop {
            match &mut self.mode {
                ReadMode::Uninit => {
                    return Error::e_explain(InternalError, "body reader not initialized")
                }
                ReadMode::Done => return Ok(None),
                ReadMode::ContentLength { .. } if self.top_up => {
                    self.top_up = false;
                    self.top_up_now(stream)?;
                }
                ReadMode::ContentLength { remaining } => {
                    if !self.buf.is_empty() {
                        let n = usize::try_from(*remaining)
                            .unwrap_or(usize::MAX)
                            .min(self.buf.len());
                        *remaining -= n as u64;
                        if *remaining == 0 {
                            self.mode = ReadMode::Done;
                        }
                        return Ok(Some(self.buf.split_to(n).freeze()));
                    }
                    let want = *remaining;
                    if self.fill(stream).await? == 0 {
                        return Error::e_explain(
                            ConnectionClosed,
                            format!("peer closed with {want} body bytes outstanding"),
                        );
                    }
                }
                ReadMode::UntilClose => {
                    if !self.buf.is_empty() {
                        return Ok(Some(self.buf.split().freeze()));
                    }
                    if self.fill(stream).await? == 0 {
                        self.mode = ReadMode::Done;
                        return Ok(None);
                    }
                }
                ReadMode::Chunked(decoder) => match decoder.decode(&mut self.buf) {
                    Ok(Decoded::Data(data)) => return Ok(Some(data)),
                    Ok(Decoded::Done) => {
                        self.trailers = decoder.take_trailers();
                        self.mode = ReadMode::Done;
                        return Ok(None);
                    }
                    Ok(Decoded::NeedMore) => {
                        if self.fill(stream).await? == 0 {
                            return Error::e_explain(
                                ConnectionClosed,
                                "peer closed before the last chunk",
                            );
                        }
                    }
                    Err(msg) => return Error::e_explain(H1Error, msg),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_test::io::Builder;

    async fn read_all(r: &mut BodyReader, s: &mut tokio_test::io::Mock) -> Result<Vec<u8>> {
        let mut out = vec![];
        while let Some(b) = r.read_body(s).await? {
            assert!(!b.is_empty());
            out.extend_from_slice(&b);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn content_length_with_preread_and_pipelined_rest() {
        let mut s = Builder::new().read(b"lo wor").read(b"ldGET /").build();
        let mut r = BodyReader::new();
        assert!(r.need_init());
        r.init_content_length(11, BytesMut::from(&b"hel"[..]));
        assert_eq!(read_all(&mut r, &mut s).await.unwrap(), b"hello world");
        assert!(r.body_done());
        assert_eq!(&r.take_leftover()[..], b"GET /");
    }

    #[tokio::test]
    async fn preread_is_topped_up_into_one_piece() {
        // what already arrived goes out with the bytes read with the head
        let mut s = Builder::new().read(b"lo world").build();
        let mut r = BodyReader::new();
        r.init_content_length(11, BytesMut::from(&b"hel"[..]));
        assert_eq!(
            &r.read_body(&mut s).await.unwrap().unwrap()[..],
            b"hello world"
        );
        assert!(r.body_done());

        // nothing there yet: the bytes read with the head are not held back waiting for more
        let mut s = Builder::new()
            .wait(std::time::Duration::from_millis(20))
            .read(b"lo world")
            .build();
        let mut r = BodyReader::new();
        r.init_content_length(11, BytesMut::from(&b"hel"[..]));
        assert_eq!(&r.read_body(&mut s).await.unwrap().unwrap()[..], b"hel");
        assert_eq!(
            &r.read_body(&mut s).await.unwrap().unwrap()[..],
            b"lo world"
        );
        assert!(r.read_body(&mut s).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn content_length_premature_close() {
        let mut s = Builder::new().read(b"abc").build();
        let mut r = BodyReader::new();
        r.init_content_length(10, BytesMut::new());
        let e = read_all(&mut r, &mut s).await.unwrap_err();
        assert_eq!(e.etype(), &ConnectionClosed);
    }

    #[tokio::test]
    async fn zero_length_is_empty_and_done() {
        let mut s = Builder::new().build();
        let mut r = BodyReader::new();
        r.init_content_length(0, BytesMut::from(&b"next"[..]));
        assert!(r.body_empty() && r.body_done());
        assert!(r.read_body(&mut s).await.unwrap().is_none());
        assert_eq!(&r.take_leftover()[..], b"next");
    }

    #[tokio::test]
    async fn chunked_split_across_reads() {
        let mut s = Builder::new()
            .read(b"5\r")
            .read(b"\nhel")
            .read(b"lo\r\n6\r\n world\r")
            .read(b"\n0\r\nA: b\r\n\r")
            .read(b"\n")
            .build();
        let mut r = BodyReader::new();
        r.init_chunked(BytesMut::new());
        assert_eq!(read_all(&mut r, &mut s).await.unwrap(), b"hello world");
        assert_eq!(r.take_trailers().unwrap().get("a").unwrap(), "b");
    }

    #[tokio::test]
    async fn chunked_errors() {
        let mut s = Builder::new().read(b"5\r\nhelloX\r\n").build();
        let mut r = BodyReader::new();
        r.init_chunked(BytesMut::new());
        assert_eq!(
            read_all(&mut r, &mut s).await.unwrap_err().etype(),
            &H1Error
        );

        let mut s = Builder::new().read(b"5\r\nhel").build();
        let mut r = BodyReader::new();
        r.init_chunked(BytesMut::new());
        let e = read_all(&mut r, &mut s).await.unwrap_err();
        assert_eq!(e.etype(), &ConnectionClosed);
    }

    #[tokio::test]
    async fn reads_after_the_body_keep_what_comes_and_see_the_close() {
        use futures::FutureExt;
        use tokio::io::AsyncWriteExt;

        let (mut client, mut server) = tokio::io::duplex(4096);
        let mut r = BodyReader::new();
        r.init_content_length(0, BytesMut::from(&b"GE"[..]));
        // nothing yet: waiting for it holds no buffer beyond what came with the head
        let cap = r.buf.capacity();
        assert!(r.read_after_body(&mut server).now_or_never().is_none());
        assert_eq!(r.buf.capacity(), cap);

        // a pipelined request, in pieces larger than one read, is kept whole and in order
        let mut next = b"T / HTTP/1.1\r\nX: ".to_vec();
        next.extend(std::iter::repeat_n(b'a', 3000));
        client.write_all(&next).await.unwrap();
        let mut got = 0;
        while got < next.len() {
            got += r.read_after_body(&mut server).await.unwrap();
        }
        assert_eq!(r.leftover_len(), 2 + next.len());
        assert_eq!(&r.take_leftover()[..5], b"GET /");

        drop(client);
        assert_eq!(r.read_after_body(&mut server).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn until_close() {
        let mut s = Builder::new().read(b"abc").read(b"def").build();
        let mut r = BodyReader::new();
        r.init_until_close(BytesMut::from(&b"0"[..]));
        assert!(!r.body_empty());
        assert_eq!(read_all(&mut r, &mut s).await.unwrap(), b"0abcdef");
        assert!(r.body_done());
    }
}
