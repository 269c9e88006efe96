//! The one progress display of the CLI: an indicatif spinner or bar on stderr, drawn
//! only when stderr is a terminal, so piped or redirected output stays clean. Dropping
//! it clears the line, also when the command fails half-way.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner or a bar on stderr, or nothing when stderr is not a terminal.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: ProgressBar,
    shown: bool,
}

impl Progress {
    fn new(template: &str) -> Progress {
        let bar = ProgressBar::hidden();
        let shown = std::io::stderr().is_terminal();
        if shown {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
        }
        Progress { bar, shown }
    }

    /// A spinner with a message, `⠋ measuring fault round trips…`; it turns by itself.
    pub(crate) fn spinner() -> Progress {
        let p = Progress::new("{spinner} {msg}");
        if p.shown {
            p.bar.enable_steady_tick(Duration::from_millis(120));
        }
        p
    }

    /// A bar counting `unit`s, `████░░ 3/8 cases  {msg}`.
    pub(crate) fn bar(unit: &str) -> Progress {
        Progress::new(&format!("{{bar:30}} {{pos}}/{{len}} {unit}  {{msg}}"))
    }

    /// Whether it draws anything (stderr is a terminal).
    pub(crate) fn shown(&self) -> bool {
        self.shown
    }

    /// Replace the message.
    pub(crate) fn message(&self, msg: impl Into<std::borrow::Cow<'static, str>>) {
        self.bar.set_message(msg);
    }

    /// Move the bar to `done` of `total`.
    pub(crate) fn at(&self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
