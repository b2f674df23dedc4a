//! Where access lines go: one [`Sink`] per destination (stderr, stdout, a
//! file), shared by every route and every plan that names it, each with a
//! bounded buffer and a writer thread of its own. A request only hands its line
//! to the buffer; when the buffer is full the line is dropped and counted
//! (`secgw_access_log_dropped_total`), so a slow disk or a stalled pipe never
//! holds a request. Files are opened by their writer (so `check` creates
//! nothing), in append mode, and reopened after [`reopen_all`] (SIGUSR1).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use log::{error, info};

use crate::metrics::metrics;

/// Lines held per destination while its writer is busy; beyond that, lines
/// are dropped.
pub const BUFFER_LINES: usize = 4096;

/// And bytes: a client may send 64 KiB heads whose lines (escaped) are larger
/// still, and 4,096 of them must not pile up in memory behind a stalled disk.
pub const BUFFER_BYTES: usize = 4 << 20;

/// How often an idle writer looks for a reopen request.
const IDLE_WAKE: Duration = Duration::from_millis(100);

/// Bumped by each SIGUSR1; a writer whose file predates the bump reopens it.
static REOPEN: AtomicU64 = AtomicU64::new(0);

/// Weak: a destination no plan names any more loses its sink, and with the
/// last reference its buffer; its writer then flushes, closes and exits.
static SINKS: LazyLock<Mutex<HashMap<Target, Weak<Sink>>>> = LazyLock::new(Default::default);

/// Lines a writer takes before it flushes and looks for a reopen request:
/// a writer that never catches up must still follow a rotation.
const BATCH: usize = 256;

/// How long a woken writer waits for more lines before it writes.
const COALESCE: Duration = Duration::from_millis(25);

/// A destination, with a file's path resolved against gw.yaml's folder and
/// that folder's links and `..` resolved ([`canonical`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Stderr,
    Stdout,
    File(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Stderr => f.write_str("stderr"),
            Target::Stdout => f.write_str("stdout"),
            Target::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// One destination's buffer; its writer starts with the first line.
#[derive(Debug)]
pub struct Sink {
    target: Target,
    buffer: OnceLock<SyncSender<Message>>,
    /// Bytes handed over and not yet written.
    queued: Arc<AtomicUsize>,
}

/// The sink of `target`, the same one for every plan that names it while
/// one does.
pub fn sink(target: Target) -> Arc<Sink> {
    let mut sinks = SINKS.lock().unwrap_or_else(|e| e.into_inner());
    sinks.retain(|_, s| s.strong_count() > 0);
    if let Some(sink) = sinks.get(&target).and_then(Weak::upgrade) {
        return sink;
    }
    let sink = Arc::new(Sink {
        target: target.clone(),
        buffer: OnceLock::new(),
        queued: Arc::default(),
    });
    sinks.insert(target, Arc::downgrade(&sink));
    sink
}

impl Sink {
    /// Hands a line (with its newline) to the writer; a full buffer drops it.
    pub fn send(&self, line: Vec<u8>) {
        let buffer = self.buffer.get_or_init(|| self.start());
        let len = line.len();
        if self.queued.fetch_add(len, Ordering::Relaxed) + len > BUFFER_BYTES {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            metrics().access_log_dropped();
            return;
        }
        if buffer.try_send(Message::Line(line)).is_err() {
            // Full, or the writer could not start.
            self.queued.fetch_sub(len, Ordering::Relaxed);
            metrics().access_log_dropped();
        }
    }

    fn start(&self) -> SyncSender<Message> {
        let (tx, rx) = sync_channel(BUFFER_LINES);
        let target = self.target.clone();
        RUNNING.fetch_add(1, Ordering::SeqCst);
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn({
                let queued = self.queued.clone();
                move || {
                    // Returns once the sink is gone, its output flushed and closed.
                    Writer::new(target).run(&rx, &queued);
                    RUNNING.fetch_sub(1, Ordering::SeqCst);
                }
            });
        if let Err(e) = spawned {
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            // The receiver is gone with the closure: every line counts as dropped.
            error!("access log {}: cannot start its writer: {e}", self.target);
        }
        tx
    }

    /// Waits until the writer has written every line handed over before, up to `bound`.
    fn drain(&self, bound: Duration) {
        let Some(buffer) = self.buffer.get() else {
            return;
        };
        let deadline = Instant::now() + bound;
        let (done, written) = sync_channel(1);
        let mut ask = Some(Message::Flush(done));
        while let Some(m) = ask.take() {
            match buffer.try_send(m) {
                Ok(()) => {}
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    ask = Some(m);
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        let _ = written.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

/// What travels to a writer: a line, or a request to say when all before it are written.
enum Message {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

/// Whether `path` is an access-log file: the configuration watcher ignores
/// their writes (a log beside gw.yaml would otherwise wake it on every flush).
pub fn is_log_file(path: &Path) -> bool {
    let Some(path) = canonical(path) else {
        return false;
    };
    let sinks = SINKS.lock().unwrap_or_else(|e| e.into_inner());
    sinks.contains_key(&Target::File(path))
}

/// A file's path with its folder resolved (links, `..`): one spelling per
/// file, so two spellings share one writer. `None` when the folder is not there.
pub fn canonical(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = std::fs::canonicalize(dir.unwrap_or(Path::new("."))).ok()?;
    Some(dir.join(name))
}

/// Asks every writer to reopen its file before its next line (SIGUSR1).
pub fn reopen_all() {
    REOPEN.fetch_add(1, Ordering::SeqCst);
}

/// Writers running: one per started sink, until its last line is written
/// after the sink is gone.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Waits (up to `bound` per sink) until every line handed over is written:
/// the process is about to exit. Sinks still named are drained; the writers
/// of sinks already dropped (with the server's plans) are waited for.
pub fn flush_all(bound: Duration) {
    let sinks: Vec<Arc<Sink>> = SINKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .filter_map(Weak::upgrade)
        .collect();
    for sink in &sinks {
        sink.drain(bound);
    }
    let alive = sinks.iter().filter(|s| s.buffer.get().is_some()).count();
    let deadline = Instant::now() + bound;
    while RUNNING.load(Ordering::SeqCst) > alive && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct Writer {
    target: Target,
    out: Option<BufWriter<Box<dyn Write + Send>>>,
    opened_at: u64,
    /// The last write failed (its error is already logged).
    failing: bool,
}

impl Writer {
    fn new(target: Target) -> Writer {
        Writer {
            target,
            out: None,
            opened_at: REOPEN.load(Ordering::SeqCst),
            failing: false,
        }
    }

    fn run(mut self, rx: &Receiver<Message>, queued: &AtomicUsize) {
        loop {
            let first = match rx.recv_timeout(IDLE_WAKE) {
                Ok(line) => Some(line),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            self.reopen_if_asked();
            let Some(first) = first else { continue };
            // The lines of the next moment join this write: one `write` per
            // COALESCE under load instead of one per line, and no request
            // wakes the writer while it sleeps here (a sender wakes only a
            // receiver that waits in `recv`).
            std::thread::sleep(COALESCE);
            let mut asked = Vec::new();
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(m) = next {
                match m {
                    Message::Line(line) => {
                        self.write(&line);
                        queued.fetch_sub(line.len(), Ordering::Relaxed);
                    }
                    Message::Flush(done) => asked.push(done),
                }
                taken += 1;
                if taken % BATCH == 0 {
                    self.flush();
                    self.reopen_if_asked();
                }
                next = rx.try_recv().ok();
            }
            self.flush();
            for done in asked {
                let _ = done.try_send(());
            }
        }
    }

    fn flush(&mut self) {
        if let Some(out) = &mut self.out {
            if let Err(e) = out.flush() {
                self.failed(&e);
            }
        }
    }

    fn reopen_if_asked(&mut self) {
        let asked = REOPEN.load(Ordering::SeqCst);
        if asked == self.opened_at {
            return;
        }
        self.opened_at = asked;
        if let Target::File(_) = self.target {
            if let Some(mut old) = self.out.take() {
                let _ = old.flush();
            }
            if self.open().is_some() {
                info!("access log {}: reopened", self.target);
            }
        }
    }

    fn open(&mut self) -> Option<&mut BufWriter<Box<dyn Write + Send>>> {
        if self.out.is_none() {
            let out: io::Result<Box<dyn Write + Send>> = match &self.target {
                Target::Stderr => Ok(Box::new(io::stderr())),
                Target::Stdout => Ok(Box::new(io::stdout())),
                Target::File(path) => open_append(path).map(|f| Box::new(f) as _),
            };
            match out {
                Ok(out) => self.out = Some(BufWriter::with_capacity(64 * 1024, out)),
                Err(e) => self.failed(&format_args!("cannot open: {e}")),
            }
        }
        self.out.as_mut()
    }

    fn write(&mut self, line: &[u8]) {
        if self.open().is_none() {
            metrics().access_log_dropped();
            return;
        }
        let Some(out) = self.out.as_mut() else { return };
        match out.write_all(line) {
            Ok(()) => self.failing = false,
            Err(e) => {
                self.failed(&e);
                metrics().access_log_dropped();
            }
        }
    }

    /// One error line per run of failures: a full disk fails every write.
    fn failed(&mut self, why: &dyn std::fmt::Display) {
        if !self.failing {
            error!(
                "access log {}: {why}; lines are dropped until it can be written",
                self.target
            );
        }
        self.failing = true;
    }
}

fn open_append(path: &PathBuf) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        // A FIFO swapped in after load must not block the writer at open, and
        // a link swapped in must not point the gateway's writes elsewhere.
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
}
