//! Mini-batches of scaled images and labels, in a seeded, resumable order.

use super::rng::shuffled_order;
use super::{DataError, Dataset};

/// Pixel scaling `x = p / 127.5 - 1`, tabulated for all 256 byte values, so
/// 0 maps to -1 and 255 to +1 exactly.
fn scale_table() -> [f32; 256] {
    let mut t = [0f32; 256];
    for (p, v) in t.iter_mut().enumerate() {
        *v = p as f32 / 127.5 - 1.0;
    }
    t
}

/// Scales one pixel byte: `x = p / 127.5 - 1`, in `[-1, 1]`.
pub fn scale_pixel(p: u8) -> f32 {
    p as f32 / 127.5 - 1.0
}

/// One mini-batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// `[size, rows*cols]` row-major, `x = p / 127.5 - 1`.
    pub images_f32: Vec<f32>,
    /// `[size]` class indices.
    pub labels: Vec<u32>,
    /// Number of samples in this batch (the last one may be short).
    pub size: usize,
    /// Dataset indices of the samples, in batch order.
    pub indices: Vec<u32>,
}

/// Iterator over the mini-batches of one epoch.
///
/// The visiting order is `0..n` without a seed, or
/// [`shuffled_order`]`(n, seed, epoch)` with one, so it depends on
/// (seed, epoch) only: a resumed run rebuilds the same order from the stored
/// seed and epoch and [`seek`](Batches::seek)s to the stored batch index.
#[derive(Debug)]
pub struct Batches<'a> {
    dataset: &'a Dataset,
    batch_size: usize,
    order: Vec<u32>,
    next_batch: usize,
    drop_last: bool,
    table: [f32; 256],
}

impl<'a> Batches<'a> {
    /// Batches of `batch_size` over `dataset` for epoch `epoch`, shuffled when
    /// `shuffle_seed` is `Some`. The last, partial batch is included unless
    /// [`drop_last`](Batches::drop_last) is set.
    pub fn new(
        dataset: &'a Dataset,
        batch_size: usize,
        shuffle_seed: Option<u64>,
        epoch: u64,
    ) -> Result<Self, DataError> {
        if batch_size == 0 {
            return Err(DataError::ZeroBatchSize);
        }
        if u32::try_from(dataset.n).is_err() {
            return Err(DataError::TooManySamples { n: dataset.n });
        }
        dataset.check_consistent()?;
        let order = match shuffle_seed {
            Some(seed) => shuffled_order(dataset.n, seed, epoch),
            None => (0..dataset.n as u32).collect(),
        };
        Ok(Self {
            dataset,
            batch_size,
            order,
            next_batch: 0,
            drop_last: false,
            table: scale_table(),
        })
    }

    /// Whether to skip the final batch when it has fewer than `batch_size` samples.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Number of batches in the epoch: `ceil(n / b)`, or `floor(n / b)` with `drop_last`.
    pub fn num_batches(&self) -> usize {
        let n = self.order.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// Index of the next batch to be produced.
    pub fn position(&self) -> usize {
        self.next_batch
    }

    /// Makes batch `batch_index` the next one (clamped to the end), without
    /// producing the ones before it; used to resume mid-epoch.
    pub fn seek(&mut self, batch_index: usize) {
        self.next_batch = batch_index.min(self.num_batches());
    }

    /// The sample order of this epoch.
    pub fn order(&self) -> &[u32] {
        &self.order
    }

    /// Fills `batch` with the next batch, reusing its buffers (no per-sample
    /// allocation; the buffers only grow to the largest batch). Returns false,
    /// leaving `batch` unchanged, at the end of the epoch.
    pub fn next_into(&mut self, batch: &mut Batch) -> bool {
        let start = self
            .next_batch
            .saturating_mul(self.batch_size)
            .min(self.order.len());
        let size = (self.order.len() - start).min(self.batch_size);
        if size == 0 || (self.drop_last && size < self.batch_size) {
            return false;
        }
        let pixels = self.dataset.pixels();
        let indices = &self.order[start..start + size];
        batch.images_f32.clear();
        batch.images_f32.reserve(size * pixels);
        batch.labels.clear();
        batch.indices.clear();
        for &i in indices {
            let i = i as usize;
            let src = &self.dataset.images[i * pixels..(i + 1) * pixels];
            batch
                .images_f32
                .extend(src.iter().map(|&p| self.table[p as usize]));
            batch.labels.push(self.dataset.labels[i] as u32);
        }
        batch.indices.extend_from_slice(indices);
        batch.size = size;
        self.next_batch += 1;
        true
    }
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let mut batch = Batch::default();
        self.next_into(&mut batch).then_some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.num_batches().saturating_sub(self.position());
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_formula_and_endpoints() {
        let t = scale_table();
        assert_eq!(t[0], -1.0);
        assert_eq!(t[255], 1.0);
        for p in 0..=255u8 {
            assert_eq!(t[p as usize], scale_pixel(p));
        }
    }
}
