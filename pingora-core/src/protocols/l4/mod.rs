//! Layer 4: TCP and Unix domain socket connections.

pub mod ext;
pub mod socket;
pub mod stream;
