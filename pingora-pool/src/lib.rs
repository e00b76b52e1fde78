//! pingora-pool
