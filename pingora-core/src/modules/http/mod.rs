//! HTTP modules: filters written once and plugged into any HTTP proxy or server.
//!
//! A module is a type implementing [`HttpModule`]; it gets its own instance per request (made
//! by its [`HttpModuleBuilder`]) so it can keep per-request state. The builders are collected
//! in an [`HttpModules`] when the service is set up (a proxy does this in
//! `ProxyHttp::init_downstream_modules`), and for each request [`HttpModules::build_ctx`]
//! makes the [`HttpModuleCtx`] that runs every module's filters, in order, at each phase.
//!
//! The application finds its module instance in the context by type
//! ([`HttpModuleCtx::get_mut`]), e.g. to switch it on for one request:
//!
//! ```
//! use pingora_core::modules::http::grpc_web::{GrpcWeb, GrpcWebBridge};
//! use pingora_core::modules::http::HttpModules;
//!
//! let mut modules = HttpModules::new();
//! modules.add_module(Box::new(GrpcWeb));
//! let mut ctx = modules.build_ctx();
//! ctx.get_mut::<GrpcWebBridge>().expect("added above").init();
//! ```

pub mod grpc_web;

mod base64;

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderMap;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// One HTTP module's per-request instance: filters called at each phase of the request.
///
/// Every filter has a default that changes nothing, so a module only writes the phases it
/// cares about. [`HttpModule::as_any`] and [`HttpModule::as_any_mut`] (return `self`) let
/// [`HttpModuleCtx::get`] find the instance by its type.
#[async_trait]
pub trait HttpModule {
    /// See or change the request header, before it goes anywhere.
    async fn request_header_filter(&mut self, _req: &mut RequestHeader) -> Result<()> {
        Ok(())
    }

    /// See or change one piece of the request body (`end_of_stream` on the last call).
    async fn request_body_filter(
        &mut self,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
    ) -> Result<()> {
        Ok(())
    }

    /// See or change the response header right before it is sent to the client.
    async fn response_header_filter(
        &mut self,
        _resp: &mut ResponseHeader,
        _end_of_stream: bool,
    ) -> Result<()> {
        Ok(())
    }

    /// See or change one piece of the response body right before it is sent.
    fn response_body_filter(
        &mut self,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
    ) -> Result<()> {
        Ok(())
    }

    /// See or change the response trailers. Returning `Some(bytes)` sends those bytes as the
    /// last piece of the body instead of the trailers (for clients that cannot take trailers).
    fn response_trailer_filter(
        &mut self,
        _trailers: &mut Option<Box<HeaderMap>>,
    ) -> Result<Option<Bytes>> {
        Ok(None)
    }

    /// Called when the response ends without the filters above having seen its end (for
    /// instance an upstream that closed). `Some(bytes)` are sent as a last piece of body.
    fn response_done_filter(&mut self) -> Result<Option<Bytes>> {
        Ok(None)
    }

    /// `self`, for lookups by type.
    fn as_any(&self) -> &dyn Any;

    /// `self`, for lookups by type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// A boxed per-request module instance.
pub type Module = Box<dyn HttpModule + 'static + Send + Sync>;

/// Makes a module's per-request instance; one builder per module type is added to
/// [`HttpModules`].
pub trait HttpModuleBuilder {
    /// Where the module runs relative to the others: higher values run earlier at every
    /// phase. Modules of equal order run in the order they were added.
    fn order(&self) -> i16 {
        0
    }

    /// A fresh instance for one request.
    fn init(&self) -> Module;
}

/// A boxed module builder.
pub type ModuleBuilder = Box<dyn HttpModuleBuilder + 'static + Send + Sync>;

/// The modules of a service: their builders in running order.
#[derive(Default)]
pub struct HttpModules {
    modules: Vec<ModuleBuilder>,
    /// Type of each module instance -> its position; fixed by the first `build_ctx`.
    module_index: OnceLock<Arc<HashMap<TypeId, usize>>>,
}

impl HttpModules {
    /// No modules yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a module. Each module type may be added once.
    ///
    /// # Panics
    /// When called after [`Self::build_ctx`] (the type index is shared by every context
    /// already built), or, at the next [`Self::build_ctx`], when two builders make instances
    /// of the same type: both are set-up mistakes that must not go unnoticed.
    pub fn add_module(&mut self, builder: ModuleBuilder) {
        assert!(
            self.module_index.get().is_none(),
            "HttpModules::add_module called after build_ctx"
        );
        self.modules.push(builder);
        // stable: equal orders keep their insertion order
        self.modules.sort_by_key(|m| std::cmp::Reverse(m.order()));
    }

    /// Whether no module was added.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// The per-request context: a fresh instance of every module.
    pub fn build_ctx(&self) -> HttpModuleCtx {
        let module_ctx: Vec<Module> = self.modules.iter().map(|b| b.init()).collect();
        let module_index = self
            .module_index
            .get_or_init(|| {
                let mut index = HashMap::with_capacity(module_ctx.len());
                for (i, m) in module_ctx.iter().enumerate() {
                    let type_id = m.as_any().type_id();
                    assert!(
                        index.insert(type_id, i).is_none(),
                        "the same HTTP module type was added twice"
                    );
                }
                Arc::new(index)
            })
            .clone();
        HttpModuleCtx {
            module_ctx,
            module_index: Some(module_index),
        }
    }
}

/// The module instances of one request, run in order at each phase.
pub struct HttpModuleCtx {
    module_ctx: Vec<Module>,
    /// `None` without modules: every request makes a context, and an empty one should cost
    /// no allocation (nor reference counting).
    module_index: Option<Arc<HashMap<TypeId, usize>>>,
}

impl Default for HttpModuleCtx {
    fn default() -> Self {
        Self::empty()
    }
}

impl HttpModuleCtx {
    /// A context without modules (every filter is a no-op).
    pub fn empty() -> Self {
        HttpModuleCtx {
            module_ctx: Vec::new(),
            module_index: None,
        }
    }

    /// Whether there is no module to run.
    pub fn is_empty(&self) -> bool {
        self.module_ctx.is_empty()
    }

    /// This request's instance of module type `T`, if it was added.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        let i = *self.module_index.as_ref()?.get(&TypeId::of::<T>())?;
        self.module_ctx.get(i)?.as_any().downcast_ref::<T>()
    }

    /// This request's instance of module type `T`, mutably, if it was added.
    pub fn get_mut<T: 'static>(&mut self) -> Option<&mut T> {
        let i = *self.module_index.as_ref()?.get(&TypeId::of::<T>())?;
        self.module_ctx.get_mut(i)?.as_any_mut().downcast_mut::<T>()
    }

    /// Run every module's [`HttpModule::request_header_filter`].
    pub async fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
        for m in self.module_ctx.iter_mut() {
            m.request_header_filter(req).await?;
        }
        Ok(())
    }

    /// Run every module's [`HttpModule::request_body_filter`].
    pub async fn request_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        for m in self.module_ctx.iter_mut() {
            m.request_body_filter(body, end_of_stream).await?;
        }
        Ok(())
    }

    /// Run every module's [`HttpModule::response_header_filter`].
    pub async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        end_of_stream: bool,
    ) -> Result<()> {
        for m in self.module_ctx.iter_mut() {
            m.response_header_filter(resp, end_of_stream).await?;
        }
        Ok(())
    }

    /// Run every module's [`HttpModule::response_body_filter`].
    pub fn response_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        for m in self.module_ctx.iter_mut() {
            m.response_body_filter(body, end_of_stream)?;
        }
        Ok(())
    }

    /// Run every module's [`HttpModule::response_trailer_filter`]. When several modules turn
    /// the trailers into body bytes, the last one's bytes are returned.
    pub fn response_trailer_filter(
        &mut self,
        trailers: &mut Option<Box<HeaderMap>>,
    ) -> Result<Option<Bytes>> {
        let mut out = None;
        for m in self.module_ctx.iter_mut() {
            if let Some(b) = m.response_trailer_filter(trailers)? {
                out = Some(b);
            }
        }
        Ok(out)
    }

    /// Run every module's [`HttpModule::response_done_filter`]. When several modules return
    /// bytes, the last one's are returned.
    pub fn response_done_filter(&mut self) -> Result<Option<Bytes>> {
        let mut out = None;
        for m in self.module_ctx.iter_mut() {
            if let Some(b) = m.response_done_filter()? {
                out = Some(b);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends its name to header `x-order` (request) and to the body (response). `ID` makes
    /// each instance its own type, so each can be found by type.
    struct Tag<const ID: u8>(&'static str);

    #[async_trait]
    impl<const ID: u8> HttpModule for Tag<ID> {
        async fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
            let prev = req
                .headers
                .get("x-order")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            req.insert_header("x-order", format!("{prev}{}", self.0))
        }
        fn response_body_filter(&mut self, body: &mut Option<Bytes>, end: bool) -> Result<()> {
            if end {
                let mut b = body.take().map(|b| b.to_vec()).unwrap_or_default();
                b.extend_from_slice(self.0.as_bytes());
                *body = Some(b.into());
            }
            Ok(())
        }
        fn response_trailer_filter(
            &mut self,
            trailers: &mut Option<Box<HeaderMap>>,
        ) -> Result<Option<Bytes>> {
            if let Some(t) = trailers {
                t.insert("x-seen", self.0.parse().expect("valid value"));
            }
            Ok(Some(Bytes::from_static(self.0.as_bytes())))
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
        fn as_any_mut(&mut self) -> &mut dyn Any {
            self
        }
    }

    type TagA = Tag<1>;
    type TagB = Tag<2>;
    type TagC = Tag<3>;

    /// Builders with orders -5, 10 and the default 0.
    struct A;
    struct B;
    struct C;

    impl HttpModuleBuilder for A {
        fn order(&self) -> i16 {
            -5
        }
        fn init(&self) -> Module {
            Box::new(TagA::new("a"))
        }
    }
    impl HttpModuleBuilder for B {
        fn order(&self) -> i16 {
            10
        }
        fn init(&self) -> Module {
            Box::new(TagB::new("b"))
        }
    }
    impl HttpModuleBuilder for C {
        fn init(&self) -> Module {
            Box::new(TagC::new("c"))
        }
    }

    impl<const ID: u8> Tag<ID> {
        fn new(name: &'static str) -> Self {
            Tag(name)
        }
    }

    #[tokio::test]
    async fn modules_run_by_order_and_are_found_by_type() {
        let mut modules = HttpModules::new();
        assert!(modules.is_empty());
        modules.add_module(Box::new(A));
        modules.add_module(Box::new(C));
        modules.add_module(Box::new(B));
        let mut ctx = modules.build_ctx();
        assert!(!ctx.is_empty());
        assert_eq!(ctx.get::<TagA>().map(|t| t.0), Some("a"));
        assert!(ctx.get_mut::<TagC>().is_some());
        assert!(ctx.get::<u32>().is_none());

        let mut req = RequestHeader::build("GET", b"/", None).expect("request");
        ctx.request_header_filter(&mut req).await.expect("filters");
        // highest order first: b (10), c (0), a (-5)
        assert_eq!(req.headers.get("x-order").expect("set"), "bca");

        let mut body = Some(Bytes::from_static(b">"));
        ctx.response_body_filter(&mut body, true).expect("body");
        assert_eq!(body.as_deref(), Some(&b">bca"[..]));

        let mut trailers = Some(Box::new(HeaderMap::new()));
        let out = ctx
            .response_trailer_filter(&mut trailers)
            .expect("trailers");
        // the last module's bytes win; every module saw the trailers in turn
        assert_eq!(out.as_deref(), Some(&b"a"[..]));
        assert_eq!(trailers.expect("kept").get("x-seen").expect("set"), "a");
        assert_eq!(ctx.response_done_filter().expect("done"), None);

        // each context has its own instances
        let ctx2 = modules.build_ctx();
        assert!(ctx2.get::<TagB>().is_some());
    }

    #[tokio::test]
    async fn empty_ctx_changes_nothing() {
        let mut ctx = HttpModuleCtx::empty();
        let mut req = RequestHeader::build("GET", b"/", None).expect("request");
        ctx.request_header_filter(&mut req).await.expect("no-op");
        assert!(req.headers.is_empty());
        let mut body = None;
        ctx.request_body_filter(&mut body, true)
            .await
            .expect("no-op");
        assert!(body.is_none());
        let mut trailers = None;
        assert_eq!(
            ctx.response_trailer_filter(&mut trailers).expect("no-op"),
            None
        );
    }

    #[test]
    #[should_panic(expected = "added twice")]
    fn duplicate_module_type_panics() {
        let mut modules = HttpModules::new();
        modules.add_module(Box::new(C));
        modules.add_module(Box::new(C));
        let _ = modules.build_ctx();
    }

    #[test]
    #[should_panic(expected = "after build_ctx")]
    fn adding_after_build_panics() {
        let mut modules = HttpModules::new();
        modules.add_module(Box::new(C));
        let _ = modules.build_ctx();
        modules.add_module(Box::new(A));
    }
}
