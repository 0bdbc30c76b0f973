//! Announcing what arrived while the person looks elsewhere: the bell, OSC 9/777 (passed
//! through tmux) and a desktop notification, each stripped of anything agent-written that
//! could act on the terminal.

use std::io::Write;

/// How new requests are announced.
#[derive(Debug, Clone, Copy)]
pub struct Alerts {
    pub bell: bool,
    pub osc: bool,
    pub desktop: bool,
}

/// Strips everything but printable text from a notification (it is agent-controlled).
fn notification_text(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && !crate::domain::text::is_bidi_control(*c) && *c != ';')
        .take(200)
        .collect()
}

pub(super) fn alert(alerts: Alerts, title: &str, body: &str) {
    let mut out = std::io::stdout();
    if alerts.bell {
        let _ = out.write_all(b"\x07");
    }
    if alerts.osc {
        let (t, b) = (notification_text(title), notification_text(body));
        for seq in [
            format!("\x1b]9;{t}: {b}\x07"),
            format!("\x1b]777;notify;{t};{b}\x07"),
        ] {
            let _ = out.write_all(passthrough(&seq, in_tmux()).as_bytes());
        }
    }
    let _ = out.flush();
    if alerts.desktop && desktop_session() {
        let (t, b) = (notification_text(title), notification_text(body));
        // notify-rust blocks and fails without a session bus: its own thread, errors logged.
        std::thread::spawn(move || {
            if let Err(e) = notify_rust::Notification::new()
                .appname("sponsor-console")
                .summary(&t)
                .body(&b)
                .show()
            {
                tracing::debug!(error = %e, "desktop notification not shown");
            }
        });
    }
}

fn in_tmux() -> bool {
    std::env::var_os("TMUX").is_some_and(|v| !v.is_empty())
}

/// Inside tmux an OSC sequence reaches the outer terminal only wrapped in tmux's DCS
/// passthrough (with `allow-passthrough on`), every ESC doubled.
pub fn passthrough(seq: &str, tmux: bool) -> String {
    if tmux {
        format!("\x1bPtmux;{}\x1b\\", seq.replace('\x1b', "\x1b\x1b"))
    } else {
        seq.to_owned()
    }
}

/// Whether a desktop notification can be shown at all (no session bus over SSH or in CI).
fn desktop_session() -> bool {
    if cfg!(target_os = "linux") {
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty())
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_carry_no_control_sequences_and_pass_through_tmux() {
        assert_eq!(notification_text("a\x1b]0;x\x07b;c\u{202e}d"), "a]0xbcd");
        assert_eq!(passthrough("\x1b]9;hi\x07", false), "\x1b]9;hi\x07");
        assert_eq!(
            passthrough("\x1b]9;hi\x07", true),
            "\x1bPtmux;\x1b\x1b]9;hi\x07\x1b\\"
        );
    }
}
