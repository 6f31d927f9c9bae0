//! The shapes the kernel program and user space share (mirrors `src/bpf/ngram.h`): sizes, the
//! slots of the statistics array, and the n-gram key's packing. Pure.

/// Largest n the kernel program supports (`NGRAM_MAX_N`).
pub const MAX_N: usize = 8;
/// Smallest n (a 1-gram has no order to learn).
pub const MIN_N: usize = 2;
/// System-call numbers below this are counted in the per-call array (`NGRAM_NR_SLOTS`); the
/// noise set must be below it too.
pub const NR_SLOTS: u32 = 512;
/// Default capacity of the n-gram map (`NGRAM_DEFAULT_MAX_GRAMS`).
pub const DEFAULT_MAX_NGRAMS: u32 = 262_144;
/// Calls of a thread the alert program keeps (`NGRAM_RAW`).
pub const RAW: usize = 16;
/// The alert program's largest window, in n-grams (`NGRAM_MAX_WINDOW`).
pub const MAX_WINDOW: u32 = 16;
/// Bytes of an order key of the alert program's model maps (`struct ngram_okey`).
pub const OKEY_LEN: usize = KEY_LEN + 4;

/// Pack a k-gram of order `order` (1..=[`MAX_N`] numbers) into an order key.
pub fn encode_okey(gram: &[u16], order: u32) -> Option<[u8; OKEY_LEN]> {
    let key = encode_key(gram)?;
    let mut out = [0u8; OKEY_LEN];
    out[..KEY_LEN].copy_from_slice(&key);
    out[KEY_LEN..].copy_from_slice(&order.to_ne_bytes());
    Some(out)
}

/// Bytes of an n-gram key: `MAX_N` native-endian u16 numbers, zero after the first n.
pub const KEY_LEN: usize = 2 * MAX_N;

/// Slots of the `ng_stats` per-CPU array (`NGRAM_STAT_*`).
pub mod stat {
    pub const CALLS: u32 = 0;
    pub const NGRAMS: u32 = 1;
    pub const NOISE: u32 = 2;
    pub const OTHER_ARCH: u32 = 3;
    pub const LOST_NGRAMS: u32 = 4;
    pub const LOST_WINDOW: u32 = 5;
    pub const LOST_CALLS: u32 = 6;
    pub const BEFORE_EXEC: u32 = 7;
    pub const COLLAPSED: u32 = 8;
    pub const ANOMALIES: u32 = 9;
    pub const EVENTS: u32 = 10;
    pub const LOST_EVENTS: u32 = 11;
    pub const DENIED: u32 = 12;
    pub const REFUSED: u32 = 13;
    pub const SPARED: u32 = 14;
    pub const LOST_PROCS: u32 = 15;
    /// Number of slots (`NGRAM_STATS`).
    pub const COUNT: u32 = 16;
}

/// Pack an n-gram (1..=[`MAX_N`] numbers) into the kernel's key; `None` if it is too long.
pub fn encode_key(gram: &[u16]) -> Option<[u8; KEY_LEN]> {
    if gram.len() > MAX_N {
        return None;
    }
    let mut key = [0u8; KEY_LEN];
    for (slot, nr) in key.chunks_exact_mut(2).zip(gram) {
        slot.copy_from_slice(&nr.to_ne_bytes());
    }
    Some(key)
}

/// Why a key does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// Not [`KEY_LEN`] bytes.
    Length(usize),
    /// A non-zero number after the first n.
    Padding,
}

/// The first `n` numbers of a kernel key; the rest must be zero.
pub fn decode_key(key: &[u8], n: usize) -> Result<Vec<u16>, KeyError> {
    if key.len() != KEY_LEN {
        return Err(KeyError::Length(key.len()));
    }
    let mut nrs = key
        .chunks_exact(2)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let gram: Vec<u16> = nrs.by_ref().take(n).collect();
    if nrs.any(|nr| nr != 0) {
        return Err(KeyError::Padding);
    }
    Ok(gram)
}

/// A u64 value of a map (native endian); `None` if it is not 8 bytes.
pub fn decode_u64(value: &[u8]) -> Option<u64> {
    Some(u64::from_ne_bytes(value.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_for_every_n() {
        for n in MIN_N..=MAX_N {
            let gram: Vec<u16> = (1..=1000).step_by(97).take(n).collect();
            let key = encode_key(&gram).unwrap();
            assert_eq!(decode_key(&key, n).unwrap(), gram);
        }
    }

    #[test]
    fn zero_is_a_call_number_not_padding() {
        // read (0) three times: the key is all zeros, and n says how many are calls.
        let key = encode_key(&[0, 0, 0]).unwrap();
        assert_eq!(decode_key(&key, 3).unwrap(), vec![0, 0, 0]);
        assert_eq!(decode_key(&key, 6).unwrap(), vec![0; 6]);
    }

    #[test]
    fn keys_are_native_endian_u16s_in_order() {
        let key = encode_key(&[0x0102, 0x0304]).unwrap();
        assert_eq!(&key[..2], &0x0102u16.to_ne_bytes());
        assert_eq!(&key[2..4], &0x0304u16.to_ne_bytes());
        assert!(key[4..].iter().all(|&b| b == 0));
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(decode_key(&[0; 15], 2), Err(KeyError::Length(15)));
        let key = encode_key(&[1, 2, 3]).unwrap();
        assert_eq!(decode_key(&key, 2), Err(KeyError::Padding));
        assert!(encode_key(&[1; MAX_N + 1]).is_none());
    }

    #[test]
    fn u64_values_decode() {
        assert_eq!(decode_u64(&7u64.to_ne_bytes()), Some(7));
        assert_eq!(decode_u64(&[1, 2, 3]), None);
    }
}
