//! Small helpers shared by several parts of the framework.

pub mod tls;
