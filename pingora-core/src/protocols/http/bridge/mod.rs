//! Translations between HTTP flavours, at the paths Pingora has them. The implementations
//! live with the HTTP modules that use them ([`crate::modules::http`]).

pub mod grpc_web {
    //! The gRPC-web <-> gRPC translation state (see
    //! [`crate::modules::http::grpc_web`]).
    pub use crate::modules::http::grpc_web::GrpcWebCtx;
}
