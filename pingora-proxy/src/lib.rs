//! pingora-proxy
