//! The few operations whose API differs between OpenSSL and BoringSSL (or
//! that neither Rust binding exposes), behind one signature each.
//!
//! Everything else in the framework calls the shared `ssl` / `x509` API.

use super::error::ErrorStack;
use super::ssl::{SslContextBuilder, SslRef, SslStream};
use std::ffi::{c_char, c_int, c_void};
#[cfg(feature = "openssl")]
use std::ffi::{CStr, CString};

#[cfg(feature = "openssl")]
use foreign_types_03::ForeignTypeRef;
#[cfg(all(feature = "boringssl", not(feature = "openssl")))]
use foreign_types_05::ForeignTypeRef;

/// The key-exchange groups offered when the user configured none: the
/// post-quantum hybrid first, then the classical ones.
pub const PQ_DEFAULT_GROUPS: &str = "X25519MLKEM768:X25519:P-256:P-384";

// Functions both libraries export under the same name and ABI, but which
// the Rust bindings do not (all) declare. Pointers are passed untyped so
// the same declarations serve either library.
extern "C" {
    fn SSL_set_cert_cb(
        ssl: *mut c_void,
        cb: Option<unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int>,
        arg: *mut c_void,
    );
    fn SSL_get0_param(ssl: *mut c_void) -> *mut c_void;
    fn X509_VERIFY_PARAM_add1_host(
        param: *mut c_void,
        name: *const c_char,
        namelen: usize,
    ) -> c_int;
}

#[cfg(feature = "openssl")]
extern "C" {
    fn SSL_ctrl(
        ssl: *mut c_void,
        cmd: c_int,
        larg: std::ffi::c_long,
        parg: *mut c_void,
    ) -> std::ffi::c_long;
    // OpenSSL 3.0+
    fn SSL_group_to_name(ssl: *mut c_void, id: c_int) -> *const c_char;
    fn EVP_default_properties_is_fips_enabled(libctx: *mut c_void) -> c_int;
}

#[cfg(feature = "openssl")]
const SSL_CTRL_SET_GROUPS_LIST: c_int = 92;
#[cfg(feature = "openssl")]
const SSL_CTRL_GET_NEGOTIATED_GROUP: c_int = 134;

/// Make the next handshake step of `ssl` stop right before the server
/// certificate is chosen (after the ClientHello, so SNI is known): the
/// handshake call then fails with [`is_certificate_pause`] true, and can be
/// resumed once [`resume_certificate`] was called.
pub(crate) fn pause_for_certificate(ssl: &mut SslRef) {
    unsafe extern "C" fn pause(_ssl: *mut c_void, _arg: *mut c_void) -> c_int {
        // negative: suspend the handshake (SSL_ERROR_WANT_X509_LOOKUP)
        -1
    }
    // SAFETY: `ssl` is a live SSL object; the callback ignores its args.
    unsafe {
        SSL_set_cert_cb(
            ssl.as_ptr() as *mut c_void,
            Some(pause),
            std::ptr::null_mut(),
        )
    }
}

/// Let a handshake paused by [`pause_for_certificate`] continue.
pub(crate) fn resume_certificate(ssl: &mut SslRef) {
    // SAFETY: `ssl` is a live SSL object; clearing the callback is allowed
    // at any time.
    unsafe { SSL_set_cert_cb(ssl.as_ptr() as *mut c_void, None, std::ptr::null_mut()) }
}

/// Whether a handshake error is the pause set up by
/// [`pause_for_certificate`].
pub(crate) fn is_certificate_pause(e: &super::ssl::Error) -> bool {
    // SSL_ERROR_WANT_X509_LOOKUP is 4 in both libraries
    e.code().as_raw() == 4
}

/// Mutable access to the `SslRef` of a stream (not every backend's binding
/// offers it).
pub(crate) fn ssl_mut<S>(stream: &mut SslStream<S>) -> &mut SslRef {
    // SAFETY: the pointer comes from the stream we borrow mutably, so no
    // other reference to the SSL object exists for the returned lifetime.
    unsafe { SslRef::from_ptr_mut(stream.ssl().as_ptr()) }
}

/// Also accept `name` when verifying the peer's certificate hostname (in
/// addition to the one set already).
pub fn add_host(ssl: &mut SslRef, name: &str) -> Result<(), ErrorStack> {
    // SAFETY: the param belongs to `ssl`; the name is copied by the library.
    let ok = unsafe {
        let param = SSL_get0_param(ssl.as_ptr() as *mut c_void);
        X509_VERIFY_PARAM_add1_host(param, name.as_ptr() as *const c_char, name.len())
    };
    if ok == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}

/// Set the key-exchange groups (curves) offered or accepted on one
/// connection, as a colon-separated list (e.g. `"X25519MLKEM768:X25519"`).
pub fn set_groups_list(ssl: &mut SslRef, groups: &str) -> Result<(), ErrorStack> {
    #[cfg(feature = "openssl")]
    {
        let list = CString::new(groups).map_err(|_| ErrorStack::get())?;
        // SAFETY: SSL_set1_groups_list is this ctrl; the string is copied.
        let ok = unsafe {
            SSL_ctrl(
                ssl.as_ptr() as *mut c_void,
                SSL_CTRL_SET_GROUPS_LIST,
                0,
                list.as_ptr() as *mut c_void,
            )
        };
        if ok == 1 {
            Ok(())
        } else {
            Err(ErrorStack::get())
        }
    }
    #[cfg(all(feature = "boringssl", not(feature = "openssl")))]
    {
        ssl.set_curves_list(groups)
    }
}

/// Set the key-exchange groups of a whole context.
pub fn set_ctx_groups_list(ctx: &mut SslContextBuilder, groups: &str) -> Result<(), ErrorStack> {
    #[cfg(feature = "openssl")]
    {
        ctx.set_groups_list(groups)
    }
    #[cfg(all(feature = "boringssl", not(feature = "openssl")))]
    {
        ctx.set_curves_list(groups)
    }
}

/// Offer the post-quantum hybrid group first when the linked library knows
/// it; otherwise keep the library's default groups. Returns whether the
/// hybrid group is configured.
pub fn offer_pq_groups(ctx: &mut SslContextBuilder) -> bool {
    let ok = set_ctx_groups_list(ctx, PQ_DEFAULT_GROUPS).is_ok();
    if !ok {
        // drop the queued error so it is not reported by a later call
        let _ = ErrorStack::get();
    }
    ok
}

/// The key-exchange group the handshake negotiated (e.g. `"X25519MLKEM768"`,
/// `"x25519"`), when known.
pub fn negotiated_group(ssl: &SslRef) -> Option<String> {
    #[cfg(feature = "openssl")]
    {
        // SAFETY: SSL_get_negotiated_group is this ctrl; the name returned by
        // SSL_group_to_name is a static string (or NULL).
        unsafe {
            let ptr = ssl.as_ptr() as *mut c_void;
            let id = SSL_ctrl(ptr, SSL_CTRL_GET_NEGOTIATED_GROUP, 0, std::ptr::null_mut());
            if id <= 0 {
                return None;
            }
            let name = SSL_group_to_name(ptr, id as c_int);
            if name.is_null() {
                return Some(format!("group-{id:#x}"));
            }
            Some(CStr::from_ptr(name).to_string_lossy().into_owned())
        }
    }
    #[cfg(all(feature = "boringssl", not(feature = "openssl")))]
    {
        ssl.curve_name().map(str::to_string)
    }
}

/// Whether the TLS library runs in FIPS mode.
///
/// BoringSSL: true only in a build made with boring's `fips` feature.
/// OpenSSL 3: true when the default properties require the FIPS provider.
pub fn fips_enabled() -> bool {
    #[cfg(feature = "openssl")]
    {
        // SAFETY: NULL selects the default library context.
        unsafe { EVP_default_properties_is_fips_enabled(std::ptr::null_mut()) == 1 }
    }
    #[cfg(all(feature = "boringssl", not(feature = "openssl")))]
    {
        boring::fips::enabled()
    }
}

/// Add an intermediate certificate to the chain sent on one connection.
pub fn add_chain_cert(ssl: &mut SslRef, cert: super::x509::X509) -> Result<(), ErrorStack> {
    #[cfg(feature = "openssl")]
    {
        ssl.add_chain_cert(cert)
    }
    #[cfg(all(feature = "boringssl", not(feature = "openssl")))]
    {
        ssl.add_chain_cert(&cert)
    }
}

/// Why the peer's certificate failed verification, if it did.
pub fn verify_failure(ssl: &SslRef) -> Option<&'static str> {
    #[cfg(feature = "openssl")]
    {
        let v = ssl.verify_result();
        (v != super::x509::X509VerifyResult::OK).then(|| v.error_string())
    }
    #[cfg(all(feature = "boringssl", not(feature = "openssl")))]
    {
        // INVALID_CALL: no certificate was verified (yet), not a failure
        ssl.verify_result()
            .err()
            .filter(|e| *e != super::x509::X509VerifyError::INVALID_CALL)
            .map(|e| e.error_string())
    }
}
