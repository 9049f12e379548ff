//! A tiny `tracing` subscriber that records the engines' per-statement events (target
//! `s3o::sql`) while a capture is open, and is disabled for everything else (so measured runs
//! pay one atomic load per statement and nothing more).

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

/// The target both engines emit their statement events on.
const TARGET: &str = "s3o::sql";

/// One captured statement: its exact text plus its parameters as the engine reported them
/// (`params` on PostgreSQL, `expanded` on SQLite).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Captured {
    /// The statement text, exactly as sent.
    pub(crate) sql: String,
    /// PostgreSQL: the parameters' `Debug` forms, separated by U+001F.
    pub(crate) params: String,
    /// SQLite: the statement with its parameters inlined.
    pub(crate) expanded: String,
}

static ON: AtomicBool = AtomicBool::new(false);
static EVENTS: Mutex<Vec<Captured>> = Mutex::new(Vec::new());

struct SqlSubscriber;

struct Fields<'a>(&'a mut Captured);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "sql" => value.clone_into(&mut self.0.sql),
            "params" => value.clone_into(&mut self.0.params),
            "expanded" => value.clone_into(&mut self.0.expanded),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%display` fields arrive here; their Debug is the Display text.
        let s = format!("{value:?}");
        self.record_str(field, &s);
    }
}

impl Subscriber for SqlSubscriber {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.target() == TARGET {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        meta.target() == TARGET && ON.load(Ordering::Relaxed)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut c = Captured::default();
        event.record(&mut Fields(&mut c));
        EVENTS.lock().unwrap_or_else(|p| p.into_inner()).push(c);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Installs the subscriber as the global default. Call once, before any store is opened.
pub(crate) fn install() {
    // Fails only if another subscriber is installed, in which case nothing is captured and
    // script generation reports it.
    let _ = tracing::subscriber::set_global_default(SqlSubscriber);
}

/// Runs `fut` with capture on and returns its output with every statement event emitted
/// meanwhile, in order. Only one operation should run while capturing.
pub(crate) async fn capture<T>(fut: impl Future<Output = T>) -> (T, Vec<Captured>) {
    EVENTS.lock().unwrap_or_else(|p| p.into_inner()).clear();
    ON.store(true, Ordering::SeqCst);
    let out = fut.await;
    ON.store(false, Ordering::SeqCst);
    let events = std::mem::take(&mut *EVENTS.lock().unwrap_or_else(|p| p.into_inner()));
    (out, events)
}
