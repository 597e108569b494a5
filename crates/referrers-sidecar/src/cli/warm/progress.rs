//! A `warm` run's progress: what became of each artifact, the run's counts, and how they are
//! shown (a bar on a terminal, a line now and then, or JSON lines).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::Artifact;

/// How often plain progress lines are printed (not on a terminal, without `--json`).
const LINE_EVERY: Duration = Duration::from_secs(10);

/// What became of one artifact, by the result the sidecar named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Fetched into the cache (or a stale list's refresh started).
    Warmed,
    /// Already fresh: nothing fetched.
    Fresh,
    /// Not served: a repository outside Harbor's proxy allowlist.
    Skipped,
    /// Not warmed: the upstream failed, its breaker is open, its list too large, ….
    Failed,
}

impl Outcome {
    /// From the sidecar's result (`harbor_referrers_operator_warms_total`'s labels).
    pub(super) fn of(result: &str) -> Self {
        match result {
            "fetched" | "stale" => Self::Warmed,
            "fresh" => Self::Fresh,
            "unserved" => Self::Skipped,
            _ => Self::Failed,
        }
    }
}

/// The counts of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counts {
    pub(super) listed: u64,
    /// Listed but not used within `--since`: not warmed.
    pub(super) older: u64,
    pub(super) warmed: u64,
    pub(super) fresh: u64,
    pub(super) skipped: u64,
    pub(super) failed: u64,
}

impl Counts {
    pub(super) fn done(&self) -> u64 {
        self.warmed + self.fresh + self.skipped + self.failed
    }

    pub(super) fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Warmed => self.warmed += 1,
            Outcome::Fresh => self.fresh += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Failed => self.failed += 1,
        }
    }

    /// The counts in words.
    pub(super) fn describe(&self) -> String {
        let mut text = format!(
            "{} warmed, {} already fresh, {} failed",
            self.warmed, self.fresh, self.failed
        );
        if self.skipped > 0 {
            text.push_str(&format!(
                ", {} outside Harbor's proxy allowlist",
                self.skipped
            ));
        }
        text
    }
}

/// How progress is shown.
enum Display {
    /// A bar on the terminal (stderr).
    Bar(ProgressBar),
    /// A line now and then on stderr.
    Lines { last: Mutex<Instant> },
    /// Nothing but the JSON lines on stdout.
    Quiet,
}

/// The run's progress: its counts, and how they are shown.
pub(super) struct Progress {
    counts: Mutex<Counts>,
    listing: Mutex<bool>,
    pub(super) started: Instant,
    display: Display,
    json: bool,
    project: String,
}

impl Progress {
    pub(super) fn new(project: &str, json: bool) -> Self {
        let display = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix} [{bar:30}] {pos}/{len} listed · {msg} · {per_sec:1} · ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("warming {project}"));
            bar.enable_steady_tick(Duration::from_millis(200));
            Display::Bar(bar)
        } else if json {
            Display::Quiet
        } else {
            Display::Lines {
                last: Mutex::new(Instant::now()),
            }
        };
        Self {
            counts: Mutex::default(),
            listing: Mutex::new(true),
            started: Instant::now(),
            display,
            json,
            project: project.to_owned(),
        }
    }

    pub(super) fn counts(&self) -> Counts {
        *self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn update(&self, change: impl FnOnce(&mut Counts)) {
        let counts = {
            let mut counts = self
                .counts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            change(&mut counts);
            *counts
        };
        match &self.display {
            Display::Bar(bar) => {
                bar.set_length(counts.listed);
                bar.set_position(counts.done());
                bar.set_message(counts.describe());
            }
            Display::Lines { last } => {
                let mut last = last
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    eprintln!("{}", self.line(&counts));
                }
            }
            Display::Quiet => {}
        }
    }

    pub(super) fn listed_all(&self) {
        *self
            .listing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = false;
    }

    /// A plain progress line: counts, rate, and (once listed) the time left.
    pub(super) fn line(&self, counts: &Counts) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let done = counts.done();
        // Whole artifacts a second: what a reader needs, and exact enough.
        #[allow(clippy::cast_precision_loss)]
        let rate = if elapsed > 0.0 {
            done as f64 / elapsed
        } else {
            0.0
        };
        let listing = *self
            .listing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let left = if listing {
            "listing".to_owned()
        } else if rate > 0.0 {
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let seconds = (counts.listed.saturating_sub(done) as f64 / rate).ceil() as u64;
            format!(
                "ETA {}",
                humantime::format_duration(Duration::from_secs(seconds))
            )
        } else {
            "ETA unknown".to_owned()
        };
        format!(
            "warming {}: {done}/{} listed · {} · {rate:.1}/s · {left}",
            self.project,
            counts.listed,
            counts.describe()
        )
    }

    /// An artifact's outcome: counted; with `--json`, a line on stdout; a failure is said.
    pub(super) fn done(&self, artifact: &Artifact, result: &str) {
        let outcome = Outcome::of(result);
        self.update(|counts| counts.add(outcome));
        if self.json {
            let line = json!({"repository": artifact.repository, "digest": artifact.digest, "result": result});
            match &self.display {
                Display::Bar(bar) => bar.suspend(|| println!("{line}")),
                _ => println!("{line}"),
            }
        } else if outcome == Outcome::Failed {
            self.say(&format!(
                "not warmed: {}@{}: {result}",
                artifact.repository, artifact.digest
            ));
        }
    }

    /// A line on stderr that does not break the bar.
    pub(super) fn say(&self, text: &str) {
        match &self.display {
            Display::Bar(bar) => bar.suspend(|| eprintln!("{text}")),
            _ => eprintln!("{text}"),
        }
    }

    /// What the run waits for, on the bar.
    pub(super) fn waiting(&self, why: &str) {
        if let Display::Bar(bar) = &self.display {
            bar.set_message(format!("{} · {why}", self.counts().describe()));
        }
    }

    pub(super) fn finish(&self) {
        if let Display::Bar(bar) = &self.display {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn the_sidecars_results_are_counted_as_warmed_fresh_skipped_or_failed() {
        let mut counts = Counts::default();
        for result in [
            "fetched",
            "stale",
            "fresh",
            "unserved",
            "error",
            "skipped",
            "rate_limited",
            "too_large",
            "refused (400: invalid digest)",
        ] {
            counts.add(Outcome::of(result));
        }
        assert_eq!(
            (counts.warmed, counts.fresh, counts.skipped, counts.failed),
            (2, 1, 1, 5)
        );
        assert_eq!(counts.done(), 9);
        assert_eq!(
            counts.describe(),
            "2 warmed, 1 already fresh, 5 failed, 1 outside Harbor's proxy allowlist"
        );
    }
}
