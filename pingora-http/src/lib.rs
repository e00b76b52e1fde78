//! pingora-http
