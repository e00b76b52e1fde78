//! Descriptions of upstream servers: where to connect and how.

pub mod peer;
