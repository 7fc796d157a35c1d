//! The one cache mechanism of the MLP model: shared values (host time tables, device weights,
//! device time tables) kept per key, at most `CAP` of them, the oldest dropped first.

use std::sync::{Arc, Mutex};

use crate::error::Result;

/// Up to `CAP` values by key. Lookups and insertions take a short lock; the value is made without
/// it (making one may run rayon tasks or GPU uploads, and a sampler may itself run inside a rayon
/// task). A clone starts empty: the values belong to the model state they were made from.
#[derive(Debug)]
pub(super) struct RecentCache<K, V, const CAP: usize> {
    entries: Mutex<Vec<(K, Arc<V>)>>,
}

impl<K, V, const CAP: usize> Default for RecentCache<K, V, CAP> {
    fn default() -> Self {
        RecentCache {
            entries: Mutex::new(Vec::new()),
        }
    }
}

impl<K, V, const CAP: usize> Clone for RecentCache<K, V, CAP> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<K: PartialEq, V, const CAP: usize> RecentCache<K, V, CAP> {
    /// The value stored for `key`, or `make()`'s, stored (dropping the oldest entry past `CAP`).
    /// Entries failing `keep` are dropped first (e.g. those of a backend that is gone).
    pub(super) fn get_or_make(
        &self,
        key: K,
        keep: impl Fn(&K) -> bool,
        make: impl FnOnce() -> Result<V>,
    ) -> Result<Arc<V>> {
        let lock = || self.entries.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut entries = lock();
            entries.retain(|(k, _)| keep(k));
            if let Some((_, v)) = entries.iter().find(|(k, _)| *k == key) {
                return Ok(v.clone());
            }
        }
        let value = Arc::new(make()?);
        let mut entries = lock();
        // Another thread may have made the same value meanwhile: keep one entry.
        if let Some((_, v)) = entries.iter().find(|(k, _)| *k == key) {
            return Ok(v.clone());
        }
        if entries.len() >= CAP {
            entries.remove(0);
        }
        entries.push((key, value.clone()));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::RecentCache;

    #[test]
    fn keeps_the_last_entries_and_makes_each_once() {
        let cache: RecentCache<u32, u32, 2> = RecentCache::default();
        let made = std::cell::Cell::new(0);
        let get = |k: u32, keep: &dyn Fn(&u32) -> bool| {
            *cache
                .get_or_make(k, keep, || {
                    made.set(made.get() + 1);
                    Ok(k * 10)
                })
                .unwrap()
        };
        assert_eq!(get(1, &|_| true), 10);
        assert_eq!(get(1, &|_| true), 10);
        assert_eq!(get(2, &|_| true), 20);
        assert_eq!(get(3, &|_| true), 30); // drops 1, the oldest
        assert_eq!(get(2, &|_| true), 20);
        assert_eq!(get(1, &|_| true), 10); // made again
        assert_eq!(get(3, &|k| *k != 3), 30); // 3 dropped by `keep`, made again
        assert_eq!(made.get(), 5);
    }
}
