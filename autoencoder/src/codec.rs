//! The stored form of a trained [`Autoencoder`] (kept with its profile in the store): a
//! versioned header and the weights.
//!
//! Layout: the 4 bytes `NGAE`, the format version (u32, little-endian), the length of the
//! header (u32, little-endian), the header as JSON (`{config, vocab, parameters}`), then the
//! `parameters` weights as f32 little-endian, in [`Autoencoder::weights`]' order. A reader
//! refuses another format version by name rather than guessing at the bytes.

use serde::{Deserialize, Serialize};

use crate::vocab::Vocab;
use crate::{Autoencoder, Config, Error};

/// The format version this code writes and reads.
pub const FORMAT: u32 = 1;
const MAGIC: &[u8; 4] = b"NGAE";

#[derive(Serialize, Deserialize)]
struct Header {
    config: Config,
    vocab: Vocab,
    parameters: usize,
}

impl Autoencoder {
    /// The stored form: header and weights.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let weights = self.weights()?;
        let header = serde_json::to_vec(&Header {
            config: self.config,
            vocab: self.vocab.clone(),
            parameters: weights.len(),
        })
        .map_err(|e| Error::Stored(format!("cannot encode the header ({e})")))?;
        let len = u32::try_from(header.len())
            .map_err(|_| Error::Stored("header longer than 4 GiB".to_owned()))?;
        let mut out = Vec::with_capacity(12 + header.len() + 4 * weights.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&header);
        for w in weights {
            out.extend_from_slice(&w.to_le_bytes());
        }
        Ok(out)
    }

    /// Back from [`Autoencoder::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |why: &str| Error::Stored(why.to_owned());
        let word = |at: usize| -> Result<u32, Error> {
            bytes
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or_else(|| bad("truncated before its header"))
        };
        if bytes.get(..4) != Some(MAGIC.as_slice()) {
            return Err(bad("not autoencoder weights (no NGAE mark)"));
        }
        let format = word(4)?;
        if format != FORMAT {
            return Err(Error::Format {
                found: format,
                expected: FORMAT,
            });
        }
        let len = usize::try_from(word(8)?).map_err(|_| bad("header length"))?;
        let body = 12usize
            .checked_add(len)
            .and_then(|end| bytes.get(12..end).map(|h| (h, &bytes[end..])));
        let (header, rest) = body.ok_or_else(|| bad("truncated inside its header"))?;
        let header: Header = serde_json::from_slice(header)
            .map_err(|e| Error::Stored(format!("unreadable header ({e})")))?;
        if rest.len() != header.parameters.saturating_mul(4) {
            return Err(Error::Stored(format!(
                "{} bytes of weights, the header says {} weights",
                rest.len(),
                header.parameters
            )));
        }
        let weights: Vec<f32> = rest
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Self::with_weights(header.config, header.vocab, &weights)
    }
}

#[cfg(test)]
mod tests {
    use ngram_profiler::syscalls::Arch;
    use ngram_profiler::trace::{Event, Trace};

    use super::*;

    fn trained() -> Autoencoder {
        let calls: Vec<u16> = (0..30).flat_map(|_| [3u16, 4, 5, 6, 4]).collect();
        let t = Trace {
            source: "t".into(),
            arch: Arch::I386,
            events: calls
                .iter()
                .map(|&nr| Event {
                    tid: 0,
                    nr,
                    ts_ns: None,
                })
                .collect(),
        };
        let cfg = Config {
            window: 3,
            embed: 2,
            hidden: 8,
            bottleneck: 2,
            epochs: 2,
            batch: 8,
            ..Config::default()
        };
        Autoencoder::train(&[t], cfg).expect("trains").0
    }

    #[test]
    fn stored_weights_come_back_the_same_and_score_the_same() {
        let a = trained();
        let bytes = a.to_bytes().expect("encodes");
        let b = Autoencoder::from_bytes(&bytes).expect("decodes");
        assert_eq!(a.config, b.config);
        assert_eq!(a.vocab, b.vocab);
        assert_eq!(a.weights().expect("a"), b.weights().expect("b"));
        let ids = [2, 3, 4, 4, 5, 1];
        assert_eq!(
            a.window_errors(&ids).expect("a"),
            b.window_errors(&ids).expect("b")
        );
    }

    #[test]
    fn another_version_or_damage_is_refused_by_name() {
        let bytes = trained().to_bytes().expect("encodes");
        let mut v2 = bytes.clone();
        v2[4..8].copy_from_slice(&2u32.to_le_bytes());
        let e = Autoencoder::from_bytes(&v2).expect_err("format 2");
        assert!(
            matches!(
                e,
                Error::Format {
                    found: 2,
                    expected: 1
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("format 2"), "{e}");
        for bad in [
            &bytes[..3],
            &bytes[..10],
            &bytes[..40],
            &bytes[..bytes.len() - 1],
            b"JUNKJUNKJUNKJUNK".as_slice(),
        ] {
            assert!(
                matches!(Autoencoder::from_bytes(bad), Err(Error::Stored(_))),
                "{} bytes",
                bad.len()
            );
        }
    }
}
