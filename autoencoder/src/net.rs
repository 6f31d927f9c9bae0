//! The network ([`Autoencoder`]): its parameters, seeded initialisation, training on the windows
//! of normal traces, and the reconstruction error of windows.

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use ngram_profiler::trace::Trace;
use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use crate::vocab::{Vocab, Windows};
use crate::{Config, Error, Input};

/// Windows per forward pass when scoring.
const SCORE_BATCH: usize = 2048;

/// A trained autoencoder: configuration, vocabulary and weights.
#[derive(Debug)]
pub struct Autoencoder {
    pub config: Config,
    pub vocab: Vocab,
    params: Params,
    device: Device,
}

/// How the training went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainStats {
    /// Training windows (one per call kept).
    pub windows: usize,
    /// Optimiser steps taken.
    pub steps: usize,
    /// Mean training loss (nats per call) over each epoch.
    pub epoch_loss: Vec<f64>,
    /// Number of weights.
    pub parameters: usize,
}

#[derive(Debug)]
struct Params {
    emb: Var,
    layers: Vec<(Var, Var)>,
}

impl Params {
    fn vars(&self) -> Vec<Var> {
        let mut v = vec![self.emb.clone()];
        for (w, b) in &self.layers {
            v.push(w.clone());
            v.push(b.clone());
        }
        v
    }
}

fn uniform(rng: &mut Rng, shape: (usize, usize), dev: &Device) -> Result<Var, Error> {
    // Glorot/Xavier uniform.
    #[allow(clippy::cast_precision_loss)]
    let a = (6.0 / (shape.0 + shape.1) as f64).sqrt();
    let data: Vec<f32> = (0..shape.0 * shape.1).map(|_| rng.symmetric(a)).collect();
    Ok(Var::from_tensor(&Tensor::from_vec(data, shape, dev)?)?)
}

fn zeros(n: usize, dev: &Device) -> Result<Var, Error> {
    Ok(Var::from_tensor(&Tensor::zeros(n, DType::F32, dev)?)?)
}

impl Autoencoder {
    /// A fresh network for `vocab`, weights drawn from `cfg.seed`.
    fn init(cfg: Config, vocab: Vocab) -> Result<Self, Error> {
        cfg.check()?;
        let dev = Device::Cpu;
        let mut rng = Rng::new(cfg.seed);
        let v = vocab.len();
        let input = match cfg.input {
            Input::Sequence => cfg.window * cfg.embed,
            Input::Counts => cfg.embed,
            Input::Masked => (cfg.window - 1) * cfg.embed,
        };
        let output = match cfg.input {
            Input::Sequence => cfg.window * v,
            Input::Counts | Input::Masked => v,
        };
        let emb = uniform(&mut rng, (v, cfg.embed), &dev)?;
        let dims = [input, cfg.hidden, cfg.bottleneck, cfg.hidden, output];
        let mut layers = Vec::new();
        for pair in dims.windows(2) {
            layers.push((
                uniform(&mut rng, (pair[0], pair[1]), &dev)?,
                zeros(pair[1], &dev)?,
            ));
        }
        Ok(Self {
            config: cfg,
            vocab,
            params: Params { emb, layers },
            device: dev,
        })
    }

    /// A network for `vocab` with the weights `weights` (in [`Autoencoder::weights`]' order),
    /// as stored.
    pub(crate) fn with_weights(cfg: Config, vocab: Vocab, weights: &[f32]) -> Result<Self, Error> {
        let model = Self::init(cfg, vocab)?;
        if weights.len() != model.parameters() {
            return Err(Error::Stored(format!(
                "{} weights for a network of {}",
                weights.len(),
                model.parameters()
            )));
        }
        let mut at = 0;
        for v in model.params.vars() {
            let n = v.elem_count();
            let t = Tensor::from_slice(&weights[at..at + n], v.shape(), &model.device)?;
            v.set(&t)?;
            at += n;
        }
        Ok(model)
    }

    /// Number of weights.
    pub fn parameters(&self) -> usize {
        self.params.vars().iter().map(|v| v.elem_count()).sum()
    }

    /// Train on the windows of `traces` (normal only).
    pub fn train(traces: &[Trace], cfg: Config) -> Result<(Self, TrainStats), Error> {
        let first = traces.first().ok_or(Error::NoTrainingData)?;
        let vocab = Vocab::learn(first.arch, traces);
        let model = Self::init(cfg, vocab)?;
        let mut ids = Vec::new();
        for t in traces {
            model.check_arch(t)?;
            ids.extend(Windows::of(&model.vocab, t, cfg.window, cfg.collapse).ids);
        }
        let windows = ids.len() / cfg.window;
        if windows == 0 {
            return Err(Error::NoTrainingData);
        }
        let mut rng = Rng::new(cfg.seed ^ 0x5EED_F0DE);
        let mut opt = AdamW::new(
            model.params.vars(),
            ParamsAdamW {
                lr: cfg.lr,
                weight_decay: 0.0,
                ..ParamsAdamW::default()
            },
        )?;
        let mut order: Vec<usize> = (0..windows).collect();
        let per_epoch = if cfg.max_windows == 0 {
            windows
        } else {
            cfg.max_windows.min(windows)
        };
        let mut steps = 0;
        let mut epoch_loss = Vec::with_capacity(cfg.epochs);
        let mut batch_ids = Vec::with_capacity(cfg.batch * cfg.window);
        for _ in 0..cfg.epochs {
            rng.shuffle(&mut order);
            let (mut sum, mut n) = (0.0, 0usize);
            for chunk in order[..per_epoch].chunks(cfg.batch) {
                batch_ids.clear();
                for &k in chunk {
                    batch_ids.extend_from_slice(&ids[k * cfg.window..(k + 1) * cfg.window]);
                }
                let errs = model.errors_tensor(&batch_ids, chunk.len())?;
                let loss = errs.mean_all()?;
                opt.backward_step(&loss)?;
                #[allow(clippy::cast_precision_loss)]
                {
                    sum += f64::from(loss.to_scalar::<f32>()?) * chunk.len() as f64;
                }
                n += chunk.len();
                steps += 1;
            }
            #[allow(clippy::cast_precision_loss)]
            epoch_loss.push(sum / n.max(1) as f64);
        }
        let stats = TrainStats {
            windows,
            steps,
            epoch_loss,
            parameters: model.parameters(),
        };
        Ok((model, stats))
    }

    pub(crate) fn check_arch(&self, t: &Trace) -> Result<(), Error> {
        if t.arch == self.vocab.arch {
            Ok(())
        } else {
            Err(Error::ArchMismatch {
                source_name: t.source.clone(),
                trace: t.arch,
                model: self.vocab.arch,
            })
        }
    }

    /// Reconstruction error (mean -ln q over the window's positions) of `b` windows of
    /// `ids` (`b * window` ids), as a `[b]` tensor.
    fn errors_tensor(&self, ids: &[u32], b: usize) -> Result<Tensor, Error> {
        let cfg = &self.config;
        let (w, v) = (cfg.window, self.vocab.len());
        let idx = Tensor::from_slice(ids, (b * w,), &self.device)?;
        let emb = self.params.emb.as_tensor().index_select(&idx, 0)?; // [b*w, e]
        let mut x = match cfg.input {
            Input::Sequence => emb.reshape((b, w * cfg.embed))?,
            Input::Counts => emb.reshape((b, w, cfg.embed))?.mean(1)?,
            Input::Masked => emb
                .reshape((b, w, cfg.embed))?
                .narrow(1, 0, w - 1)?
                .contiguous()?
                .reshape((b, (w - 1) * cfg.embed))?,
        };
        let last = self.params.layers.len() - 1;
        for (i, (wt, bias)) in self.params.layers.iter().enumerate() {
            x = x.matmul(wt.as_tensor())?.broadcast_add(bias.as_tensor())?;
            if i != last {
                x = x.relu()?;
            }
        }
        if cfg.input == Input::Masked {
            let logp = candle_nn::ops::log_softmax(&x, D::Minus1)?; // [b, v]
            let target = idx.reshape((b, w))?.narrow(1, w - 1, 1)?.contiguous()?; // [b, 1]
            return Ok(logp.gather(&target, D::Minus1)?.squeeze(D::Minus1)?.neg()?);
        }
        let logits = match cfg.input {
            Input::Sequence => x.reshape((b, w, v))?,
            Input::Counts | Input::Masked => x
                .reshape((b, 1, v))?
                .broadcast_as((b, w, v))?
                .contiguous()?,
        };
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let target = idx.reshape((b, w, 1))?;
        let nll = logp.gather(&target, D::Minus1)?.squeeze(D::Minus1)?.neg()?; // [b, w]
        Ok(nll.mean(1)?)
    }

    /// Reconstruction errors of the windows `ids` (`window` ids each), in order.
    pub fn window_errors(&self, ids: &[u32]) -> Result<Vec<f32>, Error> {
        let w = self.config.window;
        let mut out = Vec::with_capacity(ids.len() / w);
        for chunk in ids.chunks(SCORE_BATCH * w) {
            let b = chunk.len() / w;
            out.extend(self.errors_tensor(chunk, b)?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// All weights, flattened in a fixed order (for tests of determinism, and storage).
    pub fn weights(&self) -> Result<Vec<f32>, Error> {
        let mut out = Vec::with_capacity(self.parameters());
        for v in self.params.vars() {
            out.extend(v.as_tensor().flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::Aggregate;

    /// A normal thread: the cycle 1 2 3 4 5 6 7 8, `reps` times.
    fn cyclic(reps: usize) -> Trace {
        let calls: Vec<u16> = (0..reps).flat_map(|_| 1..=8u16).collect();
        trace("normal", &calls)
    }

    fn trace(source: &str, calls: &[u16]) -> Trace {
        let calls: Vec<(u32, u16)> = calls.iter().map(|&nr| (0, nr)).collect();
        crate::test_trace(source, &calls)
    }

    fn small() -> Config {
        Config {
            window: 4,
            embed: 4,
            hidden: 16,
            bottleneck: 4,
            epochs: 30,
            batch: 16,
            lr: 1e-2,
            aggregate: Aggregate::Mean,
            ..Config::default()
        }
    }

    #[test]
    fn same_data_same_model() {
        let train = [cyclic(20)];
        let (a, sa) = Autoencoder::train(&train, small()).expect("trains");
        let (b, sb) = Autoencoder::train(&train, small()).expect("trains");
        assert_eq!(sa, sb);
        assert_eq!(a.weights().expect("a"), b.weights().expect("b"));
        let other = Config {
            seed: 12,
            ..small()
        };
        let (c, _) = Autoencoder::train(&train, other).expect("trains");
        assert_ne!(a.weights().expect("a"), c.weights().expect("c"));
    }

    #[test]
    fn a_normal_window_reconstructs_better_than_a_shuffled_one() {
        for input in [Input::Sequence, Input::Counts, Input::Masked] {
            let cfg = Config { input, ..small() };
            let (ae, stats) = Autoencoder::train(&[cyclic(20)], cfg).expect("trains");
            assert!(
                stats.epoch_loss.last() < stats.epoch_loss.first(),
                "{input:?}: loss falls: {:?}",
                stats.epoch_loss
            );
            let normal = ae.vocab_ids(&[3, 4, 5, 6]);
            let shuffled = ae.vocab_ids(&[6, 3, 5, 4]);
            let unseen = ae.vocab_ids(&[3, 4, 5, 99]);
            let e = ae
                .window_errors(&[normal, shuffled.clone(), unseen].concat())
                .expect("scores");
            if input != Input::Counts {
                assert!(
                    e[0] < e[1],
                    "{input:?}: normal {} < shuffled {}",
                    e[0],
                    e[1]
                );
            }
            assert!(
                e[0] < e[2],
                "{input:?}: normal {} < unseen call {}",
                e[0],
                e[2]
            );
        }
    }

    impl Autoencoder {
        fn vocab_ids(&self, nrs: &[u16]) -> Vec<u32> {
            nrs.iter().map(|&nr| self.vocab.id(nr)).collect()
        }
    }
}
