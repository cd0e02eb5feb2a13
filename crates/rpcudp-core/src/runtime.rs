//! The one tokio runtime every socket in the process shares.

use std::io;
use std::sync::OnceLock;

use tokio::runtime::Handle;

use crate::error::Error;

/// A current-thread runtime on a dedicated thread (two cores: one for
/// JavaScript, one for this). Created on first use; a failure to create it is
/// remembered and reported to every later caller.
pub(crate) fn runtime() -> Result<&'static Handle, Error> {
    static RT: OnceLock<Result<Handle, String>> = OnceLock::new();
    let r = RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("rpcudp-io".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .map_err(|e| e.to_string())?;
        Ok(handle)
    });
    r.as_ref().map_err(|e| Error::Io(io::Error::other(e.clone())))
}
