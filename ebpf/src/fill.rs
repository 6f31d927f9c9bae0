//! Writing many entries into a map: [`Batch`] gathers keys and values and writes them with
//! `BPF_MAP_UPDATE_BATCH`, a few system calls for the alert program's model tables (tens of
//! thousands of entries for a service, ~4 µs each one by one: most of the program's load time
//! at container start).

use libbpf_rs::{MapCore, MapFlags};

use crate::error::Error;

/// Entries written per system call.
const CHUNK: usize = 4096;

/// Keys and values of fixed sizes, gathered to be written into one map.
#[derive(Debug)]
pub(crate) struct Batch {
    map: &'static str,
    key_len: usize,
    value_len: usize,
    keys: Vec<u8>,
    values: Vec<u8>,
}

impl Batch {
    /// An empty batch for map `map` (named in errors).
    pub(crate) fn new(map: &'static str, key_len: usize, value_len: usize) -> Self {
        Self {
            map,
            key_len,
            value_len,
            keys: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Add one entry; its key and value must have the batch's sizes.
    pub(crate) fn push(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        if key.len() != self.key_len || value.len() != self.value_len {
            return Err(Error::Malformed {
                map: self.map,
                len: key.len() + value.len(),
                want: self.key_len + self.value_len,
            });
        }
        self.keys.extend_from_slice(key);
        self.values.extend_from_slice(value);
        Ok(())
    }

    /// Entries gathered.
    pub(crate) fn len(&self) -> usize {
        self.keys.len().checked_div(self.key_len).unwrap_or(0)
    }

    /// Write every entry into `map` (created with this batch's key and value sizes).
    pub(crate) fn write(self, map: &dyn MapCore) -> Result<(), Error> {
        let err = |source| Error::MapWrite {
            map: self.map,
            source,
        };
        if self.len() == 0 {
            return Ok(());
        }
        let keys = self.keys.chunks(CHUNK * self.key_len);
        let values = self.values.chunks(CHUNK * self.value_len);
        for (k, v) in keys.zip(values) {
            let count = k.len() / self.key_len;
            let n = u32::try_from(count).map_err(|_| Error::BadRule)?;
            // A kernel without batch updates for this map type refuses the call (EINVAL before
            // 5.6, ENOTSUPP): write one by one then. Rewriting entries a failed batch may have
            // written is harmless (ANY), and a real error is the single update's.
            if map
                .update_batch(k, v, n, MapFlags::ANY, MapFlags::ANY)
                .is_err()
            {
                for (key, value) in k.chunks(self.key_len).zip(v.chunks(self.value_len)) {
                    map.update(key, value, MapFlags::ANY).map_err(err)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_of_the_wrong_size_are_refused() {
        let mut b = Batch::new("ng_seen", 20, 4);
        assert!(b.push(&[0; 20], &[0; 4]).is_ok());
        assert!(b.push(&[0; 19], &[0; 4]).is_err());
        assert!(b.push(&[0; 20], &[0; 8]).is_err());
        assert_eq!(b.len(), 1);
        assert_eq!(Batch::new("x", 4, 4).len(), 0);
    }
}
