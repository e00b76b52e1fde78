//! Framing of an outgoing HTTP/1 body.

use bytes::BytesMut;
use http::HeaderMap;
use log::warn;
use pingora_error::{Error, ErrorType::*, OrErr, Result};
use std::io::IoSlice;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Write every byte of `bufs` with as few (vectored) writes as the stream
/// allows, without copying them together first.
pub async fn write_all_vectored<S: AsyncWrite + Unpin + ?Sized>(
    stream: &mut S,
    bufs: &mut [IoSlice<'_>],
) -> std::io::Result<()> {
    let mut bufs = bufs;
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let n = stream.write_vectored(bufs).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteMode {
    Uninit,
    ContentLength { total: u64, written: u64 },
    Chunked,
    UntilClose,
    Done,
}

/// The writing state of one outgoing message body.
///
/// Every write takes a `head`: bytes still to be sent before the body (a
/// message head held back so it can share a syscall with the first data).
#[derive(Debug)]
pub struct BodyWriter {
    mode: WriteMode,
    /// Whether the body was sent as framed (a short Content-Length body is not).
    complete: bool,
}

impl Default for BodyWriter {
    fn default() -> Self {
        Self::new()
    }
}

/// `len` as lowercase hex followed by CRLF, in a stack buffer.
fn chunk_size_line(len: usize, out: &mut [u8; 18]) -> &[u8] {
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    out[..len].copy_from_slice(&digits[i..]);
    out[len..len + 2].copy_from_slice(b"\r\n");
    &out[..len + 2]
}

impl BodyWriter {
    /// A writer whose framing is not decided yet.
    pub fn new() -> Self {
        BodyWriter {
            mode: WriteMode::Uninit,
            complete: false,
        }
    }

    /// Whether one of the `init_*` methods still has to be called.
    pub fn need_init(&self) -> bool {
        self.mode == WriteMode::Uninit
    }

    /// A body of exactly `len` bytes (0: no body).
    pub fn init_content_length(&mut self, len: u64) {
        if len == 0 {
            self.mode = WriteMode::Done;
            self.complete = true;
        } else {
            self.mode = WriteMode::ContentLength {
                total: len,
                written: 0,
            };
        }
    }

    /// A chunked body.
    pub fn init_chunked(&mut self) {
        self.mode = WriteMode::Chunked;
    }

    /// A body ended by closing the connection.
    pub fn init_until_close(&mut self) {
        self.mode = WriteMode::UntilClose;
    }

    /// Whether the body is over (finished, or all Content-Length bytes sent).
    pub fn finished(&self) -> bool {
        match self.mode {
            WriteMode::Done => true,
            WriteMode::ContentLength { total, written } => written >= total,
            _ => false,
        }
    }

    /// Whether the whole body went out as framed, so the connection can carry
    /// another message.
    pub fn is_complete(&self) -> bool {
        match self.mode {
            WriteMode::Done => self.complete,
            WriteMode::ContentLength { total, written } => written >= total,
            _ => false,
        }
    }

    /// Whether the body is framed by closing the connection.
    pub fn is_until_close(&self) -> bool {
        self.mode == WriteMode::UntilClose
    }

    /// Whether the body is chunked (and not finished).
    pub fn is_chunked(&self) -> bool {
        self.mode == WriteMode::Chunked
    }

    /// Send `head` then a piece of body. Returns the body bytes accepted:
    /// `None` when the body is already over; fewer than `data.len()` when
    /// data beyond the Content-Length was dropped. Empty data is a no-op for
    /// chunked bodies (an empty chunk would end the body).
    pub async fn write_body<S: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        stream: &mut S,
        head: &[u8],
        data: &[u8],
    ) -> Result<Option<usize>> {
        let accepted = match self.mode {
            WriteMode::Uninit => {
                return Error::e_explain(InternalError, "body written before the message head")
            }
            WriteMode::Done => None,
            WriteMode::ContentLength { total, written } => {
                let room = usize::try_from(total - written).unwrap_or(usize::MAX);
                if data.len() > room {
                    warn!(
                        "dropping {} body bytes beyond Content-Length",
                        data.len() - room
                    );
                }
                let n = data.len().min(room);
                write_all_vectored(stream, &mut [IoSlice::new(head), IoSlice::new(&data[..n])])
                    .await
                    .or_err(WriteError, "writing body")?;
                self.mode = WriteMode::ContentLength {
                    total,
                    written: written + n as u64,
                };
                return Ok(if room == 0 { None } else { Some(n) });
            }
            WriteMode::Chunked if data.is_empty() => Some(0),
            WriteMode::Chunked => {
                let mut line = [0u8; 18];
                let size = chunk_size_line(data.len(), &mut line);
                let mut bufs = [
                    IoSlice::new(head),
                    IoSlice::new(size),
                    IoSlice::new(data),
                    IoSlice::new(b"\r\n"),
                ];
                write_all_vectored(stream, &mut bufs)
                    .await
                    .or_err(WriteError, "writing chunk")?;
                return Ok(Some(data.len()));
            }
            WriteMode::UntilClose => {
                write_all_vectored(stream, &mut [IoSlice::new(head), IoSlice::new(data)])
                    .await
                    .or_err(WriteError, "writing body")?;
                return Ok(Some(data.len()));
            }
        };
        if !head.is_empty() {
            stream
                .write_all(head)
                .await
                .or_err(WriteError, "writing head")?;
        }
        Ok(accepted)
    }

    /// End the body after sending `head`: the last chunk for chunked bodies.
    /// A Content-Length body that is short is marked incomplete (the
    /// connection must then not be reused). Returns the body bytes written
    /// in total when known.
    pub async fn finish<S: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        stream: &mut S,
        head: &[u8],
    ) -> Result<Option<usize>> {
        self.finish_with_trailers(stream, head, None).await
    }

    /// Like [`Self::finish`], sending `trailers` after the last chunk when
    /// the body is chunked (other framings cannot carry trailers: dropped).
    pub async fn finish_with_trailers<S: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        stream: &mut S,
        head: &[u8],
        trailers: Option<&HeaderMap>,
    ) -> Result<Option<usize>> {
        let mut last = BytesMut::new();
        if self.mode == WriteMode::Chunked {
            last.extend_from_slice(b"0\r\n");
            for (name, value) in trailers.into_iter().flatten() {
                last.extend_from_slice(name.as_str().as_bytes());
                last.extend_from_slice(b": ");
                last.extend_from_slice(value.as_bytes());
                last.extend_from_slice(b"\r\n");
            }
            last.extend_from_slice(b"\r\n");
        }
        if !head.is_empty() || !last.is_empty() {
            write_all_vectored(stream, &mut [IoSlice::new(head), IoSlice::new(&last)])
                .await
                .or_err(WriteError, "finishing body")?;
        }
        let res = match self.mode {
            WriteMode::ContentLength { total, written } => {
                if written < total {
                    warn!("body ended after {written} of {total} bytes");
                }
                self.complete = written >= total;
                usize::try_from(written).ok()
            }
            WriteMode::Chunked => {
                self.complete = true;
                None
            }
            // closing the connection is what ends such a body
            WriteMode::UntilClose => {
                self.complete = false;
                None
            }
            WriteMode::Uninit | WriteMode::Done => None,
        };
        if self.mode != WriteMode::Uninit {
            self.mode = WriteMode::Done;
        }
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_test::io::Builder;

    #[test]
    fn size_lines() {
        let mut b = [0u8; 18];
        assert_eq!(chunk_size_line(0, &mut b), b"0\r\n");
        assert_eq!(chunk_size_line(255, &mut b), b"ff\r\n");
        assert_eq!(chunk_size_line(usize::MAX, &mut b), b"ffffffffffffffff\r\n");
    }

    #[tokio::test]
    async fn chunked_with_head() {
        let mut s = Builder::new()
            .write(b"HEAD\r\n5\r\nhello\r\n")
            .write(b"0\r\n\r\n")
            .build();
        let mut w = BodyWriter::new();
        w.init_chunked();
        assert_eq!(
            w.write_body(&mut s, b"HEAD\r\n", b"hello").await.unwrap(),
            Some(5)
        );
        assert_eq!(w.write_body(&mut s, b"", b"").await.unwrap(), Some(0));
        assert!(!w.finished());
        w.finish(&mut s, b"").await.unwrap();
        assert!(w.finished() && w.is_complete());
    }

    #[tokio::test]
    async fn content_length_truncates_and_tracks() {
        let mut s = Builder::new().write(b"abc").write(b"de").build();
        let mut w = BodyWriter::new();
        w.init_content_length(5);
        assert_eq!(w.write_body(&mut s, b"", b"abc").await.unwrap(), Some(3));
        assert_eq!(w.write_body(&mut s, b"", b"defg").await.unwrap(), Some(2));
        assert!(w.finished());
        assert_eq!(w.write_body(&mut s, b"", b"x").await.unwrap(), None);
        assert_eq!(w.finish(&mut s, b"").await.unwrap(), Some(5));
        assert!(w.is_complete());
    }

    #[tokio::test]
    async fn short_content_length_is_incomplete() {
        let mut s = Builder::new().write(b"ab").build();
        let mut w = BodyWriter::new();
        w.init_content_length(5);
        w.write_body(&mut s, b"", b"ab").await.unwrap();
        w.finish(&mut s, b"").await.unwrap();
        assert!(w.finished() && !w.is_complete());
    }

    #[tokio::test]
    async fn chunked_trailers() {
        let mut s = Builder::new().write(b"0\r\nx-sum: 9\r\n\r\n").build();
        let mut w = BodyWriter::new();
        w.init_chunked();
        let mut t = HeaderMap::new();
        t.insert("x-sum", "9".parse().unwrap());
        w.finish_with_trailers(&mut s, b"", Some(&t)).await.unwrap();
        assert!(w.is_complete());
    }

    #[tokio::test]
    async fn uninit_is_an_error() {
        let mut s = Builder::new().build();
        let mut w = BodyWriter::new();
        assert!(w.write_body(&mut s, b"", b"x").await.is_err());
    }
}
