//! `act_saturation`: the share of pre-sign inputs with abs > 1 (AdamBNN's
//! measure of how many activations the clipped STE zeroes), counted on the
//! device during training forwards.
//!
//! A site is named after the layer its activation feeds (`fc2`,
//! `block0.conv`), the same key `flip_ratio` uses for that layer's weights.
//! For RSign the pre-sign input is `x - a_c`. Real-valued activations
//! (HardTanh in the `-f32` twins and AdamBNN's weights-first step) are
//! counted too: abs > 1 is where HardTanh clips.

use std::cell::RefCell;

use serde_json::{Map, Value};

use crate::gpu::{Gpu, GpuError};
use crate::ops::metrics::{SignInput, saturation_accumulate};
use crate::tensor::{DType, Tensor};

/// Sites one recorder can count (every model has far fewer).
pub const MAX_SITES: usize = 64;

/// Per-site saturation counts over an epoch's training steps.
pub struct ActSaturation {
    /// Site names in the order first seen, with the inputs counted at each.
    sites: RefCell<Vec<(String, u64)>>,
    /// u32 [2 * MAX_SITES]: 64-bit saturated counts, low word first.
    acc: RefCell<Tensor>,
}

impl ActSaturation {
    pub fn new(gpu: &Gpu) -> Result<ActSaturation, GpuError> {
        Ok(ActSaturation {
            sites: RefCell::new(Vec::new()),
            acc: RefCell::new(Tensor::zeros(gpu, &[2 * MAX_SITES], DType::U32)?),
        })
    }

    /// Counts the inputs of one sign: those `input` makes of `x`.
    pub fn record(
        &self,
        gpu: &Gpu,
        site: &str,
        x: &Tensor,
        input: SignInput,
    ) -> Result<(), GpuError> {
        let mut sites = self.sites.borrow_mut();
        let slot = match sites.iter().position(|(n, _)| n == site) {
            Some(i) => i,
            None => {
                if sites.len() == MAX_SITES {
                    return Err(GpuError::Unsupported(format!(
                        "act_saturation: more than {MAX_SITES} activation sites (at {site})"
                    )));
                }
                sites.push((site.to_string(), 0));
                sites.len() - 1
            }
        };
        sites[slot].1 += x.numel() as u64;
        saturation_accumulate(gpu, x, input, &self.acc.borrow(), slot);
        Ok(())
    }

    /// Counters so far (for resume state): per site its name, saturated
    /// count and inputs counted.
    pub fn counts(&self, gpu: &Gpu) -> Result<Vec<(String, u64, u64)>, GpuError> {
        let words = self.acc.borrow().to_u32(gpu)?;
        Ok(self
            .sites
            .borrow()
            .iter()
            .enumerate()
            .map(|(i, (n, seen))| {
                let sat = words[2 * i] as u64 | (words[2 * i + 1] as u64) << 32;
                (n.clone(), sat, *seen)
            })
            .collect())
    }

    /// Restores counters saved by [`counts`](Self::counts).
    pub fn restore(&self, gpu: &Gpu, counts: &[(String, u64, u64)]) -> Result<(), GpuError> {
        if counts.len() > MAX_SITES {
            return Err(GpuError::Unsupported(format!(
                "act_saturation: {} sites saved, at most {MAX_SITES}",
                counts.len()
            )));
        }
        let mut words = vec![0u32; 2 * MAX_SITES];
        for (i, (_, sat, _)) in counts.iter().enumerate() {
            words[2 * i] = *sat as u32;
            words[2 * i + 1] = (*sat >> 32) as u32;
        }
        *self.acc.borrow_mut() = Tensor::from_u32(gpu, &[2 * MAX_SITES], &words)?;
        *self.sites.borrow_mut() = counts.iter().map(|(n, _, s)| (n.clone(), *s)).collect();
        Ok(())
    }

    /// The epoch's shares keyed by site (saturated inputs over all inputs
    /// counted, i.e. the mean over steps weighted by batch size); resets.
    pub fn end_of_epoch(&self, gpu: &Gpu) -> Result<Map<String, Value>, GpuError> {
        let mut out = Map::new();
        for (name, sat, seen) in self.counts(gpu)? {
            out.insert(name, (sat as f64 / seen.max(1) as f64).into());
        }
        self.restore(gpu, &[])?;
        Ok(out)
    }
}
