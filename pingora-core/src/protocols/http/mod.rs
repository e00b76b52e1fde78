//! HTTP sessions: the [`ServerSession`] that reads requests and writes
//! responses, and the client [`client::HttpSession`] that talks to upstreams.
//! Both are enums over HTTP/1.x ([`v1`]) and HTTP/2 ([`v2`]).

pub mod body_buffer;
pub mod bridge;
pub mod client;
pub mod date;
pub mod error_resp;
pub mod server;
pub mod v1;
pub mod v2;

pub use server::Session as ServerSession;

/// The server name sent in generated responses.
pub const SERVER_NAME: &[u8; 7] = b"Pingora";

/// One step of a response as it flows through the proxy: the header, pieces
/// of body, trailers, the end, or a failure.
#[derive(Debug)]
pub enum HttpTask {
    /// The response header, and whether the response ends with it.
    Header(Box<pingora_http::ResponseHeader>, bool),
    /// A piece of body (`None`: no data in this step), and whether it is the last.
    Body(Option<bytes::Bytes>, bool),
    /// The trailers, which end the response.
    Trailer(Option<Box<http::HeaderMap>>),
    /// The response is complete.
    Done,
    /// Reading the response failed.
    Failed(pingora_error::BError),
}

impl HttpTask {
    /// Whether this task ends the response.
    pub fn is_end(&self) -> bool {
        match self {
            HttpTask::Header(_, end) | HttpTask::Body(_, end) => *end,
            HttpTask::Trailer(_) | HttpTask::Done | HttpTask::Failed(_) => true,
        }
    }

    /// The variant's name, for logs.
    pub fn type_str(&self) -> &'static str {
        match self {
            HttpTask::Header(..) => "Header",
            HttpTask::Body(..) => "Body",
            HttpTask::Trailer(_) => "Trailer",
            HttpTask::Done => "Done",
            HttpTask::Failed(_) => "Failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_end() {
        let h = pingora_http::ResponseHeader::build(200, None).unwrap();
        assert!(!HttpTask::Header(Box::new(h), false).is_end());
        assert!(HttpTask::Body(None, true).is_end());
        assert!(!HttpTask::Body(Some(bytes::Bytes::from_static(b"x")), false).is_end());
        assert!(HttpTask::Trailer(None).is_end());
        assert!(HttpTask::Done.is_end());
        assert_eq!(HttpTask::Done.type_str(), "Done");
    }
}
