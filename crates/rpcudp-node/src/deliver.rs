//! The threadsafe function that carries events from the runtime thread to
//! JavaScript: every batch in `io: "thread"` mode, only timeouts on the loop.

use std::sync::{Arc, Weak};

use napi::bindgen_prelude::{Buffer, Function};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use rpcudp_core::socket::Socket;
use rpcudp_core::{EventQueue, Wake};

/// Weak (never keeps the process alive by itself); `ref()` makes it strong while listening.
pub(crate) type Deliver = ThreadsafeFunction<(), (), Buffer, Status, false, true>;

/// Builds the function, reading each batch from whatever queue `source` is later set to.
/// The function holds the queue weakly: the queue's waker holds the function, and a
/// strong link back would keep both (and the JavaScript callback) alive forever.
pub(crate) fn build(
    on_events: Function<Buffer, ()>,
    source: Arc<std::sync::OnceLock<Weak<EventQueue>>>,
) -> napi::Result<Arc<Deliver>> {
    let deliver = on_events
        .build_threadsafe_function::<()>()
        .weak::<true>()
        .callee_handled::<false>()
        .build_callback(move |_ctx| {
            let events = source
                .get()
                .and_then(Weak::upgrade)
                .map(|q| q.take())
                .unwrap_or_default();
            Ok(Buffer::from(events))
        })?;
    Ok(Arc::new(deliver))
}

/// Points the function at `socket`'s queue.
pub(crate) fn connect(source: &std::sync::OnceLock<Weak<EventQueue>>, socket: &Socket) {
    let _ = source.set(Arc::downgrade(&socket.events()));
}

pub(crate) struct JsWaker(pub(crate) Arc<Deliver>);

impl Wake for JsWaker {
    fn wake(&self) {
        self.0.call((), ThreadsafeFunctionCallMode::NonBlocking);
    }
}
