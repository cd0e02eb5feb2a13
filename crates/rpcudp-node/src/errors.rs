//! Errors cross into JavaScript with a stable `code` property (one of
//! `errorCodes()`), so the TypeScript side maps them without reading messages.

use std::ffi::CString;

use napi::{sys, Env, Error, Status};
use rpcudp_core::Error as CoreError;

/// Throws `e` as a JavaScript error whose `code` is `e.code()`; the returned
/// error tells napi-rs the exception is already pending.
pub(crate) fn throw(env: &Env, e: CoreError) -> Error {
    let message = e.to_string();
    let code = CString::new(e.code()).unwrap_or_default();
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // SAFETY: on the JavaScript thread of `env`, with NUL-terminated strings.
    unsafe { sys::napi_throw_error(env.raw(), code.as_ptr(), text.as_ptr()) };
    Error::new(Status::PendingException, message)
}

pub(crate) fn invalid(what: impl Into<String>) -> CoreError {
    CoreError::InvalidArgument(what.into())
}

/// For the raw libuv/N-API callbacks, which must never unwind into C: a
/// panic is caught and the callback simply ends.
pub(crate) fn no_unwind(f: impl FnOnce()) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
}

pub(crate) fn napi_ok(status: sys::napi_status, what: &str) -> Result<(), CoreError> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(CoreError::Io(std::io::Error::other(format!(
            "{what} failed (napi status {status})"
        ))))
    }
}
