//! The one cache mechanism of the MLP model: shared values (host time tables, device weights,
//! device time tables) kept per key, at most `CAP` per owner (all entries, or those of one device
//! backend), the oldest of that owner dropped first.

use std::sync::{Arc, Mutex};

use crate::error::Result;

/// Up to `CAP` values by key and owner. Lookups and insertions take a short lock; the value is made without
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
    /// The value stored for `key`, or `make()`'s, stored. Entries failing `keep` are dropped first
    /// (e.g. those of a backend that is gone); then, past `CAP` entries with the new key's owner
    /// (`same_owner(entry, key)`), the oldest of them. Device caches pass "the same backend": an
    /// entry's memory is then only ever freed by a lookup for its own backend, which holds that
    /// backend's run lock, never onto another backend's stream in the middle of its run.
    pub(super) fn get_or_make(
        &self,
        key: K,
        keep: impl Fn(&K) -> bool,
        same_owner: impl Fn(&K, &K) -> bool,
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
        if entries.iter().filter(|(k, _)| same_owner(k, &key)).count() >= CAP {
            if let Some(oldest) = entries.iter().position(|(k, _)| same_owner(k, &key)) {
                entries.remove(oldest);
            }
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
                .get_or_make(
                    k,
                    keep,
                    |_, _| true,
                    || {
                        made.set(made.get() + 1);
                        Ok(k * 10)
                    },
                )
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

    #[test]
    fn evicts_only_entries_of_the_new_keys_owner() {
        // Keys (owner, value); at most 2 per owner.
        let cache: RecentCache<(u8, u32), u32, 2> = RecentCache::default();
        let made = std::cell::Cell::new(0);
        let get = |k: (u8, u32)| {
            *cache
                .get_or_make(
                    k,
                    |_| true,
                    |a, b| a.0 == b.0,
                    || {
                        made.set(made.get() + 1);
                        Ok(k.1)
                    },
                )
                .unwrap()
        };
        for k in [(0, 1), (0, 2), (1, 3), (1, 4), (1, 5)] {
            get(k); // the third key of owner 1 drops (1, 3), not owner 0's oldest
        }
        assert_eq!(made.get(), 5);
        get((0, 1));
        get((0, 2));
        assert_eq!(made.get(), 5, "owner 0 kept both");
        get((1, 3));
        assert_eq!(made.get(), 6, "owner 1's oldest was dropped");
    }
}
