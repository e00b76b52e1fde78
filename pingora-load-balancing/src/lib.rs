//! pingora-load-balancing
