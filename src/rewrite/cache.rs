//! The nonce template cache: one LRU for every route of the process, bounded
//! in bytes (`nonce_cache`), emptied when a newer plan (a reload) serves.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::HeaderValue;
use lru::LruCache;
use prometheus::IntGauge;

use super::html::{Record, Recording, RecordingBudget};
use super::template::Template;
use crate::config::schema::NonceCacheConfig;
use crate::metrics::Metrics;

/// Responses of one key that may leave their templates in a row (with no
/// whole match between) before the key is retired: its page changes per response.
const RETIRE_AFTER: u8 = 3;

/// What an entry costs besides its key's and template's own bytes: the LRU's
/// node (two links, the key and the value) and its hash table slot.
const ENTRY_OVERHEAD: usize = 64;

/// Everything a page's nonce decisions depend on, besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    /// The route's [`crate::policy::nonce::NoncePlan::id`]: its policy.
    pub route: u64,
    /// The document's URL (scheme, host, port, path and query): `'self'`,
    /// relative URLs and `<base>` resolve against it.
    pub url: String,
    /// The charset comes from it.
    pub content_type: HeaderValue,
    /// ETag, Last-Modified and Content-Length, as the upstream sent them.
    pub validators: [Option<HeaderValue>; 3],
}

impl TemplateKey {
    fn size(&self) -> usize {
        std::mem::size_of::<TemplateKey>()
            + self.url.len()
            + self.content_type.len()
            + self
                .validators
                .iter()
                .flatten()
                .map(HeaderValue::len)
                .sum::<usize>()
    }
}

enum Entry {
    Template(Arc<Template>),
    /// A key whose page changes per response: neither followed nor recorded.
    Retired,
}

impl Entry {
    fn size(&self) -> usize {
        match self {
            Entry::Template(t) => t.size(),
            Entry::Retired => 0,
        }
    }
}

/// What the cache has for a key.
pub enum Lookup {
    /// A template to follow.
    Template(Arc<Template>),
    /// Nothing: a public page may be recorded.
    Miss,
    /// A retired key, or the cache is off: neither.
    Skip,
}

/// The plan a request is served by: the cache follows the newest.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    /// [`crate::policy::Plan::generation`].
    pub generation: u64,
    pub bounds: NonceCacheConfig,
}

impl Scope {
    /// The largest page worth recording (0 when the cache is off).
    pub fn max_page_bytes(&self) -> usize {
        if self.bounds.max_bytes == 0 {
            0
        } else {
            size(self.bounds.max_page_bytes)
        }
    }
}

fn size(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The process's one cache, created by the proxy and shared by its plans in
/// turn: a newer plan empties it.
pub struct NonceCache {
    held: Mutex<Held>,
    /// What pages being recorded hold; at most `max_bytes` of the plan.
    recordings: Arc<RecordingBudget>,
    bytes: IntGauge,
    templates: IntGauge,
}

struct Held {
    /// The plan whose templates these are.
    generation: u64,
    max_bytes: usize,
    lru: LruCache<TemplateKey, Entry>,
    /// The bytes of every entry, as [`entry_size`] counts them.
    bytes: usize,
    templates: usize,
}

fn entry_size(key: &TemplateKey, entry: &Entry) -> usize {
    ENTRY_OVERHEAD + key.size() + entry.size()
}

impl NonceCache {
    /// An empty cache whose gauges are `metrics`'.
    pub fn new(metrics: &Metrics) -> NonceCache {
        let (bytes, templates) = metrics.nonce_cache();
        NonceCache {
            held: Mutex::new(Held::empty(0, 0)),
            recordings: Arc::default(),
            bytes,
            templates,
        }
    }

    /// The bounds of one recording under `scope`: the page's size, and the
    /// process's recordings together within `max_bytes`, beside the cache.
    pub fn record(&self, scope: Scope) -> Record {
        Record::new(
            scope.max_page_bytes(),
            &self.recordings,
            size(scope.bounds.max_bytes),
        )
    }

    /// The entries for `scope`'s plan: emptied first when that plan is newer
    /// than theirs; `None` for an older plan's request.
    fn held(&self, scope: Scope) -> Option<MutexGuard<'_, Held>> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if scope.generation < held.generation {
            return None;
        }
        if scope.generation > held.generation {
            self.bytes.sub(gauge(held.bytes));
            self.templates.sub(gauge(held.templates));
            *held = Held::empty(scope.generation, size(scope.bounds.max_bytes));
        }
        Some(held)
    }

    pub fn get(&self, scope: Scope, key: &TemplateKey) -> Lookup {
        if scope.max_page_bytes() == 0 {
            return Lookup::Skip;
        }
        let Some(mut held) = self.held(scope) else {
            return Lookup::Skip;
        };
        match held.lru.get(key) {
            Some(Entry::Template(t)) => Lookup::Template(t.clone()),
            Some(Entry::Retired) => Lookup::Skip,
            None => Lookup::Miss,
        }
    }

    /// Keeps the template of a page recorded under `key` that had none.
    pub fn insert(&self, scope: Scope, key: TemplateKey, recorded: Recording) {
        if let Some(template) = Template::new(recorded, 0) {
            self.put(scope, key, Entry::Template(Arc::new(template)), None);
        }
    }

    /// A response left `left`, the template of `key`: the template is replaced
    /// by the response's page when it was `recorded`, and the key is retired
    /// once its responses left their templates [`RETIRE_AFTER`] times in a row.
    /// Only `left` itself is replaced, not a template that took its place since.
    pub fn diverged(
        &self,
        scope: Scope,
        key: TemplateKey,
        left: &Arc<Template>,
        recorded: Option<Recording>,
    ) {
        let divergences = left.diverged();
        let entry = if divergences >= RETIRE_AFTER {
            Entry::Retired
        } else {
            match recorded.and_then(|r| Template::new(r, divergences)) {
                Some(t) => Entry::Template(Arc::new(t)),
                None => return,
            }
        };
        self.put(scope, key, entry, Some(left));
    }

    /// Puts `entry` under `key` (only in place of `replacing`, when given)
    /// and evicts the least recently used entries past `max_bytes`.
    fn put(&self, scope: Scope, key: TemplateKey, entry: Entry, replacing: Option<&Arc<Template>>) {
        let size = entry_size(&key, &entry);
        let Some(mut held) = self.held(scope) else {
            return;
        };
        if let Some(old) = replacing {
            let current = held.lru.peek(&key);
            if !matches!(current, Some(Entry::Template(t)) if Arc::ptr_eq(t, old)) {
                return;
            }
        }
        if size > held.max_bytes {
            return;
        }
        let before = (held.bytes, held.templates);
        held.add(size, matches!(entry, Entry::Template(_)));
        if let Some((old_key, old)) = held.lru.push(key, entry) {
            held.remove(&old_key, &old);
        }
        while held.bytes > held.max_bytes {
            let Some((old_key, old)) = held.lru.pop_lru() else {
                break;
            };
            held.remove(&old_key, &old);
        }
        self.bytes.add(gauge(held.bytes) - gauge(before.0));
        self.templates.add(gauge(held.templates) - gauge(before.1));
    }
}

impl Held {
    fn empty(generation: u64, max_bytes: usize) -> Held {
        Held {
            generation,
            max_bytes,
            lru: LruCache::unbounded(),
            bytes: 0,
            templates: 0,
        }
    }

    fn add(&mut self, size: usize, template: bool) {
        self.bytes += size;
        self.templates += usize::from(template);
    }

    fn remove(&mut self, key: &TemplateKey, entry: &Entry) {
        self.bytes -= entry_size(key, entry);
        self.templates -= usize::from(matches!(entry, Entry::Template(_)));
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
