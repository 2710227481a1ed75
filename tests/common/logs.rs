//! portcullis's own log lines, captured for assertions on what a cache logs.

use std::sync::{Arc, Mutex, OnceLock};

/// The log lines of one portcullis module, captured on the current thread
/// (where a `#[tokio::test]` runtime runs every task) while the guard lives.
#[derive(Clone)]
pub struct Logs {
    bytes: Arc<Mutex<Vec<u8>>>,
    /// `portcullis::cluster::namespaces`, say.
    target: &'static str,
}

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.bytes.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures everything portcullis logs, down to debug; [`Logs::lines`]
    /// reads the lines of `target`.
    pub fn capture(target: &'static str) -> (Logs, tracing::subscriber::DefaultGuard) {
        // With a single dispatcher registered, tracing decides whether a
        // callsite is enabled by the default dispatcher of the thread that
        // reaches it first, so a test running at the same time on another
        // thread (which has none) would switch this test's debug lines off
        // for good. A second, never dropped, makes it ask every dispatcher.
        static SECOND: OnceLock<tracing::Dispatch> = OnceLock::new();
        SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        let logs = Logs { bytes: Arc::default(), target };
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("portcullis=debug"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        tracing::callsite::rebuild_interest_cache();
        (logs, guard)
    }

    /// The lines logged at `level` whose message starts with `message`.
    pub fn lines(&self, level: &str, message: &str) -> Vec<String> {
        let text = String::from_utf8(self.bytes.lock().unwrap().clone()).unwrap();
        let prefix = format!("{}: {message}", self.target);
        text.lines()
            .filter(|line| line.split_whitespace().nth(1) == Some(level) && line.contains(&prefix))
            .map(String::from)
            .collect()
    }
}
