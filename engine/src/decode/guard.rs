//! Containing panics from decoder and demuxer code.
//!
//! symphonia's demuxers and codecs still panic on some malformed input (asserts and
//! out-of-bounds indexing: see `tests/media/corrupt/`). Every call into them runs
//! inside [`catch`], so a corrupt file ends its own track instead of the decode thread
//! that also serves other tracks. The release profile must keep `panic = "unwind"` for
//! this to work (see the README's "Panic policy").
//!
//! A caught panic is logged once by the caller; [`install_hook`] keeps the default hook
//! from also dumping it to stderr, and records where it happened so that the message
//! reaching the client names the site.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Set while this thread runs inside [`catch`].
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// The location of the last panic caught on this thread, from the hook.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A panic caught by [`catch`]: its message and, once the hook is installed, where it
/// happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panic {
    /// The panic's message (`"panic"` when its payload is not a string).
    pub message: String,
    /// `file:line:column` of the panic, when the hook saw it.
    pub location: Option<String>,
}

impl std::fmt::Display for Panic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.location {
            Some(at) => write!(f, "{} (at {at})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Runs `f`, turning a panic into `Err`.
///
/// The caller owns the unwind-safety argument (hence `AssertUnwindSafe` here): after
/// an `Err` it must not use the state `f` touched, except what it knows a panic in
/// the decoder cannot leave half-changed, and it must drop that state inside another
/// `catch`, since dropping it may panic again.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, Panic> {
    let outer = GUARDED.with(|g| g.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(outer));
    result.map_err(|payload| Panic {
        message: payload_text(payload.as_ref()),
        location: LOCATION.with(|l| l.borrow_mut().take()),
    })
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Installs (once per process) a panic hook that stays silent for panics inside
/// [`catch`], whose caller logs them, and hands every other panic to the hook that was
/// installed before (by default, the stderr message and backtrace).
pub fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message_and_site() {
        install_hook();
        let caught = catch(|| -> u32 { panic!("bad {}", 7) }).unwrap_err();
        assert_eq!(caught.message, "bad 7");
        assert!(
            caught.location.as_deref().unwrap().contains("guard.rs"),
            "{caught}"
        );
        assert_eq!(catch(|| 5), Ok(5));
        let nested = catch(|| catch::<()>(|| panic!("inner")).is_err());
        assert_eq!(
            nested,
            Ok(true),
            "an inner catch leaves the outer one intact"
        );
    }
}
