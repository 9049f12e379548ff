//! The read cache: whole bodies of small objects, kept in memory by storage path.
//!
//! A storage path names one write's bytes and is never written again (every write, copy and
//! conversion gets a new path, or copies the same bytes to another backend), so a cached body
//! can never be stale and nothing has to invalidate it. A GET still looks the key up in the
//! ledger first: a deleted or overwritten object is answered from the ledger's view, exactly
//! as without the cache, and only the bytes of the version found come from memory. What a hit
//! saves is the backend round trip, and the request and egress it costs against the
//! backend's monthly budget.
//!
//! Only bodies verified against their single-PUT ETag (MD5) are kept, so a copy corrupted on
//! its backend is never served from memory; encrypted versions are not cached (their
//! plaintext would sit in memory unsealed).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::Bytes;

/// Bodies of small objects by storage path, least recently used evicted first.
pub(crate) struct ReadCache {
    /// Bytes of bodies held at most.
    capacity: usize,
    /// Largest body kept.
    object_max: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Path → (body, its last use).
    bodies: HashMap<String, (Bytes, u64)>,
    /// Last use → path: the eviction order.
    by_use: BTreeMap<u64, String>,
    held: usize,
    clock: u64,
    hits: u64,
    misses: u64,
}

impl ReadCache {
    /// A cache of `capacity` bytes for bodies of at most `object_max` bytes; `None` when
    /// either is 0 (no cache).
    pub(crate) fn new(capacity: u64, object_max: u64) -> Option<ReadCache> {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
        let object_max = usize::try_from(object_max)
            .unwrap_or(usize::MAX)
            .min(capacity);
        (capacity > 0 && object_max > 0).then(|| ReadCache {
            capacity,
            object_max,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// Whether a body of `size` bytes is kept.
    pub(crate) fn takes(&self, size: u64) -> bool {
        usize::try_from(size).is_ok_and(|s| s <= self.object_max)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The body at `path`, if held; counts a hit or a miss.
    pub(crate) fn get(&self, path: &str) -> Option<Bytes> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let Some((body, used)) = inner.bodies.get_mut(path) else {
            inner.misses += 1;
            return None;
        };
        let (body, before) = (body.clone(), std::mem::replace(used, now));
        inner.by_use.remove(&before);
        inner.by_use.insert(now, path.to_owned());
        inner.hits += 1;
        Some(body)
    }

    /// Keeps `body` as the bytes at `path`, evicting the least recently used bodies to make
    /// room. The caller has verified it.
    pub(crate) fn insert(&self, path: &str, body: Bytes) {
        if body.len() > self.object_max {
            return;
        }
        let mut inner = self.lock();
        if inner.bodies.contains_key(path) {
            return;
        }
        while inner.held + body.len() > self.capacity {
            let Some((_, oldest)) = inner.by_use.pop_first() else {
                break;
            };
            if let Some((gone, _)) = inner.bodies.remove(&oldest) {
                inner.held -= gone.len();
            }
        }
        inner.clock += 1;
        let now = inner.clock;
        inner.held += body.len();
        inner.by_use.insert(now, path.to_owned());
        inner.bodies.insert(path.to_owned(), (body, now));
    }

    /// Prometheus lines: hits, misses, bytes and bodies held.
    pub(crate) fn render(&self, out: &mut String) {
        let inner = self.lock();
        let held = inner.held as u64;
        let objects = inner.bodies.len() as u64;
        for (name, kind, help, value) in [
            (
                "hits_total",
                "counter",
                "GETs of small objects answered from memory.",
                inner.hits,
            ),
            (
                "misses_total",
                "counter",
                "GETs of small objects read from a backend.",
                inner.misses,
            ),
            (
                "bytes",
                "gauge",
                "Bytes of bodies held by the read cache.",
                held,
            ),
            (
                "objects",
                "gauge",
                "Bodies held by the read cache.",
                objects,
            ),
        ] {
            out.push_str(&format!(
                "# HELP s3o_gateway_read_cache_{name} {help}\n\
                 # TYPE s3o_gateway_read_cache_{name} {kind}\n\
                 s3o_gateway_read_cache_{name} {value}\n"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_capacity() {
        let c = ReadCache::new(10, 4).expect("cache");
        c.insert("a", Bytes::from_static(b"aaaa"));
        c.insert("b", Bytes::from_static(b"bbbb"));
        assert_eq!(c.get("a").as_deref(), Some(&b"aaaa"[..]));
        // 4 + 4 + 4 > 10: the least recently used ("b") goes.
        c.insert("c", Bytes::from_static(b"cccc"));
        assert!(c.get("b").is_none());
        assert!(c.get("a").is_some() && c.get("c").is_some());
        // Too big for one body: not kept, nothing evicted.
        c.insert("d", Bytes::from_static(b"ddddd"));
        assert!(c.get("d").is_none() && c.get("a").is_some());
        assert!(c.lock().held <= 10);
        assert!(c.takes(4) && !c.takes(5));
        let mut m = String::new();
        c.render(&mut m);
        assert!(m.contains("s3o_gateway_read_cache_objects 2\n"), "{m}");
    }

    #[test]
    fn zero_sizes_disable_it() {
        assert!(ReadCache::new(0, 10).is_none());
        assert!(ReadCache::new(10, 0).is_none());
    }
}
