//! A small bounded map for hot, immutable lookups (token → workspace, conversation → subject
//! key, unwrapped keys). When full it is emptied: entries are cheap to reload, and a clear bound
//! matters more than hit rate here.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

#[derive(Debug)]
pub(crate) struct BoundedCache<K, V> {
    map: Mutex<HashMap<K, V>>,
    cap: usize,
}

impl<K: Eq + Hash, V: Clone> BoundedCache<K, V> {
    pub fn new(cap: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            cap,
        }
    }

    pub fn get(&self, k: &K) -> Option<V> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(k)
            .cloned()
    }

    pub fn insert(&self, k: K, v: V) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= self.cap {
            m.clear();
        }
        m.insert(k, v);
    }

    pub fn remove(&self, k: &K) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(k);
    }

    pub fn clear(&self) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
