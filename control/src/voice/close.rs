//! What to do when the voice WebSocket closes, per Discord's close codes.

/// The driver's next step after a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseAction {
    /// Open a new socket and resume the session.
    Resume,
    /// Open a new socket and identify again with the same credentials.
    Identify,
    /// Stop, and tell the Lavalink client (`WebSocketClosedEvent`).
    Report,
}

impl CloseAction {
    /// The policy of the voice reference's table: resume after drops, crashes and
    /// timeouts; report (and stop) on authentication, session, kick, DAVE, rate limit
    /// and call-terminated codes, and on codes that mean we sent something wrong
    /// (retrying would only loop).
    pub fn for_code(code: u16, can_resume: bool) -> CloseAction {
        let resumable = code < 4000 || code == 4015 || code == 4009;
        match (resumable, can_resume) {
            (true, true) => CloseAction::Resume,
            (true, false) => CloseAction::Identify,
            (false, _) => CloseAction::Report,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_table() {
        for code in [1000, 1001, 1006, 4015, 4009] {
            assert_eq!(
                CloseAction::for_code(code, true),
                CloseAction::Resume,
                "{code}"
            );
            assert_eq!(
                CloseAction::for_code(code, false),
                CloseAction::Identify,
                "{code}"
            );
        }
        for code in [
            4001, 4002, 4003, 4004, 4005, 4006, 4011, 4012, 4014, 4016, 4017, 4020, 4021, 4022,
            4999,
        ] {
            assert_eq!(
                CloseAction::for_code(code, true),
                CloseAction::Report,
                "{code}"
            );
        }
    }
}
