//! The trained weights of a profile's autoencoder, kept in the `models` tree beside its counts,
//! with a summary ([`ModelInfo`]) in its metadata. The store keeps the bytes as they are given:
//! their format and its version belong to the detector (`ngram_autoencoder::FORMAT`), which
//! refuses another version by name.

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::{Abort, Store, StoreError};
use crate::model_info::ModelInfo;
use crate::profile::ProfileMeta;

impl Store {
    /// Store `weights` as the autoencoder of profile `name`, replacing any before, with `info`
    /// in its metadata, atomically.
    pub fn put_model(
        &self,
        name: &str,
        info: &ModelInfo,
        weights: &[u8],
    ) -> Result<ProfileMeta, StoreError> {
        let key = self.resolve(name)?;
        let res = (&self.profiles, &self.models).transaction(|(pt, mt)| {
            let abort = ConflictableTransactionError::Abort;
            let bytes = pt
                .get(key.as_bytes())?
                .ok_or_else(|| abort(Abort::NotFound(key.clone())))?;
            let mut meta: ProfileMeta =
                serde_json::from_slice(&bytes).map_err(|e| abort(Abort::Decode(key.clone(), e)))?;
            meta.autoencoder = Some(info.clone());
            let encoded =
                serde_json::to_vec(&meta).map_err(|e| abort(Abort::Decode(key.clone(), e)))?;
            pt.insert(key.as_bytes(), encoded)?;
            mt.insert(key.as_bytes(), weights)?;
            Ok(meta)
        });
        let meta = res.map_err(|e| match e {
            TransactionError::Storage(e) => self.dberr(e),
            TransactionError::Abort(Abort::Decode(key, source)) => StoreError::Decode {
                path: self.path.clone(),
                key,
                source,
            },
            TransactionError::Abort(_) => StoreError::NotFound {
                path: self.path.clone(),
                name: name.to_owned(),
            },
        })?;
        self.db.flush().map_err(|e| self.dberr(e))?;
        Ok(meta)
    }

    /// The metadata of profile `name` and the stored weights of its autoencoder, if it has
    /// one.
    pub fn model(&self, name: &str) -> Result<(ProfileMeta, Option<Vec<u8>>), StoreError> {
        let meta = self.meta(name)?;
        let weights = self
            .models
            .get(meta.key.as_bytes())
            .map_err(|e| self.dberr(e))?
            .map(|v| v.to_vec());
        Ok((meta, weights))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_info::TrainedOn;
    use crate::ngram::NgramCounts;
    use crate::syscalls::Arch;

    fn info(bytes: u64) -> ModelInfo {
        ModelInfo {
            detector: "autoencoder".into(),
            format: 1,
            input: "sequence".into(),
            config: serde_json::json!({"window": 10}),
            parameters: 3,
            bytes,
            trained: TrainedOn {
                at: 5,
                sources: vec!["t/".into()],
                traces: 1,
                calls: 9,
                windows: 9,
                epoch_loss: vec![1.5],
                seconds: 0.1,
            },
            calibration: None,
        }
    }

    #[test]
    fn a_model_is_stored_beside_the_counts_and_removed_with_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let mut c = NgramCounts::new(3, Arch::I386).expect("counts");
        let events: Vec<crate::trace::Event> = [3u16, 4, 5, 6, 3, 4]
            .iter()
            .map(|&nr| crate::trace::Event {
                tid: 1,
                nr,
                ts_ns: None,
            })
            .collect();
        c.add_events(&events);
        store.train("web", "web", &c, 1, 1).expect("train");
        let (meta, none) = store.model("web").expect("read");
        assert!(meta.autoencoder.is_none() && none.is_none());
        // A profile written before models existed has no `autoencoder` key at all.
        let json = serde_json::to_value(&meta).expect("json");
        assert!(json.get("autoencoder").is_none(), "{json}");

        let meta = store
            .put_model("web", &info(4), b"NGAE")
            .expect("put_model");
        assert_eq!(meta.autoencoder, Some(info(4)));
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        let (meta, weights) = store.model("web").expect("read");
        assert_eq!(meta.autoencoder, Some(info(4)));
        assert_eq!(weights.as_deref(), Some(b"NGAE".as_slice()));
        // The counts are untouched, and training on keeps the model.
        assert_eq!(store.load("web").expect("load").meta.runs, 1);
        store.train("web", "web", &c, 1, 2).expect("train");
        assert_eq!(store.meta("web").expect("meta").autoencoder, Some(info(4)));

        assert!(matches!(
            store.put_model("nope", &info(1), b"x"),
            Err(StoreError::NotFound { .. })
        ));
        store.remove("web").expect("remove");
        store.train("web", "web", &c, 1, 3).expect("train");
        let (meta, weights) = store.model("web").expect("read");
        assert!(meta.autoencoder.is_none() && weights.is_none());
    }
}
