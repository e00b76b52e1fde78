//! HTTP/1.x: the server session, the client session, and the body framing
//! they share.

pub mod body;
pub mod client;
pub mod common;
mod head;
pub mod server;
