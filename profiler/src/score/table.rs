//! The frozen hash table the model's orders are stored in: rolling n-gram id -> value, built
//! once from a map and read on every scored call.

use crate::ngram::FxHashMap;

/// Key of a [`FlatTable`]: a rolling n-gram id, in 64 bits when it fits (the common case:
/// half the memory, so more of the table stays in cache) or 128.
pub(super) trait TableKey: Copy + Eq + Default + std::fmt::Debug {
    /// Exact when the model's ids fit the key type (checked when the model is built).
    fn from_id(id: u128) -> Self;
    fn to_id(self) -> u128;
    fn fold(self) -> u64;
}

impl TableKey for u64 {
    #[inline]
    fn from_id(id: u128) -> Self {
        // Only used when every id fits in 64 bits.
        #[allow(clippy::cast_possible_truncation)]
        let k = id as u64;
        k
    }
    #[inline]
    fn to_id(self) -> u128 {
        u128::from(self)
    }
    #[inline]
    fn fold(self) -> u64 {
        self
    }
}

impl TableKey for u128 {
    #[inline]
    fn from_id(id: u128) -> Self {
        id
    }
    #[inline]
    fn to_id(self) -> u128 {
        self
    }
    #[inline]
    fn fold(self) -> u64 {
        // The two halves, mixed.
        #[allow(clippy::cast_possible_truncation)]
        let x = (self as u64) ^ ((self >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x
    }
}

/// One slot of a [`FlatTable`]: key and value packed side by side (12 bytes for 64-bit keys
/// and 32-bit values), read by value only.
#[derive(Debug, Clone, Copy)]
#[repr(C, packed)]
struct Slot<K: Copy, V: Copy> {
    key: K,
    val: V,
}

/// A frozen open-addressing hash table from rolling n-gram ids to values: linear probing at a
/// load of at most 0.8, Fibonacci hashing mapped onto the capacity by a multiply-shift (so the
/// capacity need not be a power of two), key and value packed in one slot. Small enough that a
/// typical profile's top order stays in a core's L2 cache. Key 0 marks an empty slot (a real
/// key 0 is kept aside).
#[derive(Debug, Clone)]
pub(super) struct FlatTable<K: Copy, V: Copy> {
    slots: Vec<Slot<K, V>>,
    zero: Option<V>,
    /// One-hash Bloom filter of the keys, 8 bits a key: most absent keys are rejected by one
    /// bit test instead of a probe sequence (long at load 0.8).
    filter: Vec<u64>,
    filter_shift: u32,
}

impl<K: TableKey, V: Copy + Default> FlatTable<K, V> {
    pub(super) fn from_map(map: &FxHashMap<u128, V>) -> Self {
        let cap = (map.len() * 5 / 4 + 1).max(8);
        let mut t = Self {
            slots: vec![
                Slot {
                    key: K::default(),
                    val: V::default(),
                };
                cap
            ],
            zero: None,
            filter: Vec::new(),
            filter_shift: 0,
        };
        let bits = (map.len() * 8).max(64).next_power_of_two();
        t.filter = vec![0; bits / 64];
        t.filter_shift = 64 - bits.trailing_zeros();
        // Insert in key order so the layout does not depend on the map's iteration order.
        let mut entries: Vec<(u128, V)> = map.iter().map(|(&k, &v)| (k, v)).collect();
        entries.sort_unstable_by_key(|e| e.0);
        for (k, v) in entries {
            if k == 0 {
                t.zero = Some(v);
                continue;
            }
            let key = K::from_id(k);
            let mut i = t.slot(key);
            while {
                let Slot { key: k, .. } = t.slots[i];
                k != K::default()
            } {
                i += 1;
                if i == cap {
                    i = 0;
                }
            }
            t.slots[i] = Slot { key, val: v };
            let b = t.filter_bit(key);
            t.filter[b / 64] |= 1 << (b % 64);
        }
        t
    }

    #[inline]
    fn filter_bit(&self, key: K) -> usize {
        // filter_shift >= 58, so the result is below the filter's bit count: fits usize.
        #[allow(clippy::cast_possible_truncation)]
        let b = (key.fold().wrapping_mul(0xbf58_476d_1ce4_e5b9) >> self.filter_shift) as usize;
        b
    }

    #[inline]
    fn slot(&self, key: K) -> usize {
        let h = key.fold().wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // (h * cap) >> 64 < cap: fits usize.
        #[allow(clippy::cast_possible_truncation)]
        let i = ((u128::from(h) * self.slots.len() as u128) >> 64) as usize;
        i
    }

    #[inline]
    pub(super) fn get(&self, id: u128) -> Option<V> {
        if id == 0 {
            return self.zero;
        }
        let key = K::from_id(id);
        let b = self.filter_bit(key);
        if self.filter[b / 64] & (1 << (b % 64)) == 0 {
            return None;
        }
        let mut i = self.slot(key);
        loop {
            let Slot { key: k, val: v } = self.slots[i];
            if k == key {
                return Some(v);
            }
            if k == K::default() {
                return None;
            }
            i += 1;
            if i == self.slots.len() {
                i = 0;
            }
        }
    }

    /// Every (id, value) of the table, in no particular order.
    pub(super) fn entries(&self) -> impl Iterator<Item = (u128, V)> + '_ {
        let zero = self.zero.map(|v| (0, v));
        self.slots
            .iter()
            .filter(|&&Slot { key, .. }| key != K::default())
            .map(|&Slot { key, val }| (key.to_id(), val))
            .chain(zero)
    }

    pub(super) fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<K, V>>() + self.filter.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(keys: impl IntoIterator<Item = u128>) -> FxHashMap<u128, u32> {
        keys.into_iter()
            .map(|k| {
                #[allow(clippy::cast_possible_truncation)]
                let v = (k % 1000) as u32 + 1;
                (k, v)
            })
            .collect()
    }

    #[test]
    fn finds_every_key_and_no_other() {
        let keys: Vec<u128> = (0..5000u128).map(|i| i * 7919 + (i % 3)).collect();
        let m = map(keys.iter().copied());
        let narrow: FlatTable<u64, u32> = FlatTable::from_map(&m);
        for &k in &keys {
            assert_eq!(narrow.get(k), m.get(&k).copied(), "key {k}");
        }
        for k in (0..5000u128).map(|i| i * 7919 + 5) {
            assert_eq!(narrow.get(k), None, "absent key {k}");
        }
    }

    #[test]
    fn key_zero_and_wide_keys() {
        let keys = [0u128, 1, u128::from(u64::MAX) + 1, u128::MAX, 1 << 100];
        let m = map(keys);
        let wide: FlatTable<u128, u32> = FlatTable::from_map(&m);
        for k in keys {
            assert_eq!(wide.get(k), m.get(&k).copied(), "key {k}");
        }
        assert_eq!(wide.get(2), None);
        assert_eq!(wide.get(1 << 101), None);
        let empty: FlatTable<u64, u32> = FlatTable::from_map(&FxHashMap::default());
        assert_eq!(empty.get(0), None);
        assert_eq!(empty.get(1), None);
    }
}
