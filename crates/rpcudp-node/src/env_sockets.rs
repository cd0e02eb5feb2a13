//! The sockets open in this JavaScript thread's environment. `close()` takes a
//! socket out; when the environment ends with sockets still open (a Worker that
//! exits, is terminated or dies, or the process shutting down), a cleanup hook
//! closes the rest while the environment is alive, so no driver or
//! threadsafe function outlives it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::raw::c_void;
use std::ptr;
use std::sync::Arc;

use napi::sys;
use rpcudp_core::socket::Socket;
use rpcudp_core::Error as CoreError;

use crate::errors::{napi_ok, no_unwind};

struct Registry {
    env: sys::napi_env,
    open: HashMap<u64, Arc<Socket>>,
    next_id: u64,
}

thread_local! {
    static REGISTRY: RefCell<Option<Registry>> = const { RefCell::new(None) };
}

/// Registers an open socket of `env`; returns its id.
///
/// # Safety
/// On `env`'s JavaScript thread.
pub(crate) unsafe fn register(env: sys::napi_env, socket: Arc<Socket>) -> Result<u64, CoreError> {
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        if r.as_ref().map_or(true, |r| r.env != env) {
            napi_ok(
                sys::napi_add_env_cleanup_hook(env, Some(on_env_teardown), ptr::null_mut()),
                "napi_add_env_cleanup_hook",
            )?;
            *r = Some(Registry {
                env,
                open: HashMap::new(),
                next_id: 0,
            });
        }
        let r = r.as_mut().expect("created above");
        r.next_id += 1;
        r.open.insert(r.next_id, socket);
        Ok(r.next_id)
    })
}

/// Takes socket `id` out of the registry (None once closed or torn down).
pub(crate) fn take(id: u64) -> Option<Arc<Socket>> {
    REGISTRY
        .try_with(|r| r.try_borrow_mut().ok()?.as_mut()?.open.remove(&id))
        .ok()
        .flatten()
}

/// Sends what is queued, then stops the driver and frees the port.
pub(crate) fn close(socket: Arc<Socket>) {
    socket.close();
}

unsafe extern "C" fn on_env_teardown(_arg: *mut c_void) {
    no_unwind(|| {
        let registry = REGISTRY.try_with(|r| r.borrow_mut().take()).ok().flatten();
        if let Some(registry) = registry {
            registry.open.into_values().for_each(close);
        }
    });
}
