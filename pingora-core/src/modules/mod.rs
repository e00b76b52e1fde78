//! Reusable request/response filters ("modules") that run for every request of a server or
//! proxy, independently of the application's own phases.
//!
//! See [`http`] for the HTTP modules and how they are added and run.

pub mod http;
