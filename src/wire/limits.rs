//! Size limits checked on frame headers before any byte of a body is buffered.

/// PostgreSQL's own cap on a startup packet (and on any pre-authentication message).
pub const MAX_STARTUP_PACKET: usize = 10_000;
/// Cap on the bodies of small control messages (Sync, Flush, Close, Describe, Execute,
/// Terminate, CopyDone, CopyFail), as PostgreSQL enforces.
pub const MAX_SMALL_MESSAGE: usize = 10_000;
/// Default cap on any other message.
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// Hard cap a configuration may not exceed.
pub const HARD_MAX_MESSAGE: usize = 1024 * 1024 * 1024;

/// Limits applied by the codecs; copyable and cheap to pass around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted message (PostgreSQL) or logical payload (MySQL), in bytes.
    pub max_message: usize,
    /// Largest accepted pre-authentication message, in bytes.
    pub max_startup: usize,
}

impl Limits {
    /// Limits with `max_message` clamped to [`HARD_MAX_MESSAGE`].
    pub fn with_max_message(max_message: usize) -> Self {
        Limits {
            max_message: max_message.min(HARD_MAX_MESSAGE),
            ..Limits::default()
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: DEFAULT_MAX_MESSAGE,
            max_startup: MAX_STARTUP_PACKET,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_message_is_clamped_to_the_hard_cap() {
        assert_eq!(
            Limits::with_max_message(usize::MAX).max_message,
            HARD_MAX_MESSAGE
        );
        assert_eq!(Limits::with_max_message(100).max_message, 100);
    }
}
