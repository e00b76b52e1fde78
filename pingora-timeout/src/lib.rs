//! pingora-timeout
