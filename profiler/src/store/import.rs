//! Storing a profile that came from elsewhere (`profile pull`): whole in place of the local
//! one, or merged into it with the exact-sum rule of `profile merge`, together with its
//! autoencoder's weights, in one transaction: a refused import leaves the store as it was.

use sled::transaction::{ConflictableTransactionError, Transactional};

use super::{merge_into, read_profile, write_profile, Abort, Store, StoreError};
use crate::profile::{Profile, ProfileMeta};

/// What an import does with a local profile of the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Import {
    /// Refuse: the key must be free.
    New,
    /// Take the incoming profile whole (counts, metadata, provenance, model).
    Replace,
    /// Add its counts, runs and origins to the local profile's (refused when they share an
    /// origin); its model only when the local profile has none (weights do not merge).
    Merge,
}

impl Store {
    /// Store `incoming` (with its autoencoder `weights`, which must match its metadata) as
    /// profile `key` named `name`, as `how` says, at time `now`. The stored profile's lineage is
    /// new: local training after a pull is an origin of its own.
    pub fn import(
        &self,
        (key, name): (&str, &str),
        incoming: &Profile,
        weights: Option<&[u8]>,
        how: Import,
        now: u64,
    ) -> Result<ProfileMeta, StoreError> {
        crate::profile::check_name(key)?;
        crate::profile::check_name(name)?;
        let mut whole = incoming.clone();
        whole.meta.key = key.to_owned();
        whole.meta.name = name.to_owned();
        whole.meta.lineage = None;
        let res = (&self.profiles, &self.counts, &self.models).transaction(|(pt, ct, mt)| {
            let current = read_profile(pt, ct, key)?;
            let (p, model) = match (current, how) {
                (Some(_), Import::New) => {
                    return Err(ConflictableTransactionError::Abort(Abort::Exists(
                        key.to_owned(),
                    )))
                }
                (Some(mut p), Import::Merge) => {
                    // The incoming profile under its own key, for messages.
                    merge_into(&mut p, incoming, now)
                        .map_err(ConflictableTransactionError::Abort)?;
                    if whole.meta.image.is_some() {
                        p.meta.image.clone_from(&whole.meta.image);
                    }
                    let take_model = p.meta.autoencoder.is_none() && weights.is_some();
                    if take_model {
                        p.meta.autoencoder.clone_from(&whole.meta.autoencoder);
                    }
                    (p, take_model.then_some(weights).flatten())
                }
                (_, _) => {
                    // A replaced profile's model belongs to the counts that are gone.
                    mt.remove(key.as_bytes())?;
                    (whole.clone(), weights)
                }
            };
            write_profile(pt, ct, key, &p)?;
            if let Some(w) = model {
                mt.insert(key.as_bytes(), w)?;
            }
            Ok(p.meta)
        });
        let meta = res.map_err(|e| self.tx_error(e))?;
        self.db.flush().map_err(|e| self.dberr(e))?;
        Ok(meta)
    }
}
