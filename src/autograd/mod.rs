//! The autodiff tape: a layer over the forward ops. Forward functions in
//! [`ops`] run a kernel and record a closure that knows how to turn the
//! output's gradient into its inputs' gradients; [`Tape::backward`] replays
//! those closures in reverse on the device, accumulating gradients in device
//! buffers. The kernels themselves know nothing about gradients.

pub mod ops;
pub mod recu;

use std::sync::Arc;

use crate::gpu::{Gpu, GpuError};
use crate::tensor::Tensor;

/// A value recorded on the tape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var(pub(crate) usize);

type Backward = Box<dyn FnOnce(&Gpu, &Tensor) -> Result<Vec<(Var, Tensor)>, GpuError>>;

struct Node {
    output: Var,
    backward: Backward,
}

/// Multiply-adds of the GEMM-like ops a forward pass recorded, split by
/// what kind of arithmetic they run on (used for the f32-vs-binary bound).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct MacCount {
    /// Forward multiply-adds done with XNOR-popcount.
    pub forward_binary: u64,
    /// Forward multiply-adds done in f32.
    pub forward_float: u64,
    /// Forward multiply-adds of f32 values by packed signs (a binary layer
    /// on a real input, such as bmlp's fc1): additions, not float products.
    pub forward_signs: u64,
    /// Backward multiply-adds in f32 GEMMs: weight gradients, and input
    /// gradients where the input needs one.
    pub backward_float: u64,
    /// Backward multiply-adds of f32 values by packed signs (a binary
    /// layer's input gradient, and its weight gradient where its input
    /// holds signs): additions, not float products.
    pub backward_signs: u64,
}

/// Records a forward pass and replays it backwards.
pub struct Tape {
    /// Multiply-adds of the recorded GEMMs and convolutions.
    pub macs: MacCount,
    gpu: Arc<Gpu>,
    values: Vec<Tensor>,
    needs_grad: Vec<bool>,
    /// Whether the value is known to hold only -1 and +1 (a sign's output),
    /// so the next binary layer can pack it and use XNOR-popcount.
    signs: Vec<bool>,
    /// Whether the value is known to hold only 0 and 1 (a {0, 1} step's
    /// output), so the next binary layer can use AND-popcount.
    zero_one: Vec<bool>,
    nodes: Vec<Node>,
}

impl Tape {
    pub fn new(gpu: Arc<Gpu>) -> Tape {
        Tape {
            gpu,
            values: Vec::new(),
            needs_grad: Vec::new(),
            signs: Vec::new(),
            zero_one: Vec::new(),
            nodes: Vec::new(),
            macs: MacCount::default(),
        }
    }

    /// Counts a GEMM-like op of `macs` multiply-adds.
    pub(crate) fn count_macs(
        &mut self,
        macs: u64,
        binary_forward: bool,
        input_grad: bool,
        weight_grad: bool,
    ) {
        if binary_forward {
            self.macs.forward_binary += macs;
        } else {
            self.macs.forward_float += macs;
        }
        self.macs.backward_float += macs * (input_grad as u64 + weight_grad as u64);
    }

    /// Counts backward multiply-adds that run on packed signs.
    pub(crate) fn count_sign_macs(&mut self, macs: u64) {
        self.macs.backward_signs += macs;
    }

    /// Counts backward multiply-adds of f32 GEMMs.
    pub(crate) fn count_float_backward_macs(&mut self, macs: u64) {
        self.macs.backward_float += macs;
    }

    /// Counts forward multiply-adds that run on packed signs.
    pub(crate) fn count_forward_sign_macs(&mut self, macs: u64) {
        self.macs.forward_signs += macs;
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// A leaf: an input (no gradient) or a parameter (gradient wanted).
    pub fn leaf(&mut self, value: Tensor, needs_grad: bool) -> Var {
        self.push(value, needs_grad, false)
    }

    pub(crate) fn push(&mut self, value: Tensor, needs_grad: bool, signs: bool) -> Var {
        self.values.push(value);
        self.needs_grad.push(needs_grad);
        self.signs.push(signs);
        self.zero_one.push(false);
        Var(self.values.len() - 1)
    }

    pub fn value(&self, v: Var) -> &Tensor {
        &self.values[v.0]
    }

    pub fn needs_grad(&self, v: Var) -> bool {
        self.needs_grad[v.0]
    }

    /// Whether `v` holds only -1 and +1.
    pub fn is_signs(&self, v: Var) -> bool {
        self.signs[v.0]
    }

    /// Whether `v` holds only 0 and 1.
    pub fn is_zero_one(&self, v: Var) -> bool {
        self.zero_one[v.0]
    }

    /// Marks `v` as holding only 0 and 1.
    pub(crate) fn set_zero_one(&mut self, v: Var) {
        self.zero_one[v.0] = true;
    }

    /// Records an op's output. `backward` is kept only if some input needs a gradient.
    pub(crate) fn record(
        &mut self,
        output: Tensor,
        inputs: &[Var],
        signs: bool,
        backward: impl FnOnce(&Gpu, &Tensor) -> Result<Vec<(Var, Tensor)>, GpuError> + 'static,
    ) -> Var {
        let needs = inputs.iter().any(|v| self.needs_grad[v.0]);
        let out = self.push(output, needs, signs);
        if needs {
            self.nodes.push(Node {
                output: out,
                backward: Box::new(backward),
            });
        }
        out
    }

    /// Replays the tape from `loss` (whose gradient is `seed`, usually 1 for
    /// a scalar loss whose op already folded the 1 into its backward) and
    /// returns the gradient of every value that needed one.
    pub fn backward(self, loss: Var, seed: Tensor) -> Result<Gradients, GpuError> {
        let Tape {
            gpu,
            values,
            needs_grad,
            nodes,
            ..
        } = self;
        let mut grads: Vec<Option<Tensor>> = vec![None; values.len()];
        grads[loss.0] = Some(seed);
        for node in nodes.into_iter().rev() {
            let Some(g) = grads[node.output.0].take() else {
                continue;
            };
            for (input, gi) in (node.backward)(&gpu, &g)? {
                if !needs_grad[input.0] {
                    continue;
                }
                assert_eq!(
                    gi.numel(),
                    values[input.0].numel(),
                    "gradient of {:?} has shape {:?}",
                    values[input.0].shape(),
                    gi.shape()
                );
                grads[input.0] = Some(match grads[input.0].take() {
                    None => gi.reshape(values[input.0].shape()),
                    Some(prev) => crate::ops::act::add(&gpu, &prev, &gi)?,
                });
            }
        }
        Ok(Gradients { grads })
    }
}

/// Gradients by tape value, after [`Tape::backward`].
pub struct Gradients {
    grads: Vec<Option<Tensor>>,
}

impl Gradients {
    pub fn get(&self, v: Var) -> Option<&Tensor> {
        self.grads.get(v.0).and_then(|g| g.as_ref())
    }

    pub fn take(&mut self, v: Var) -> Option<Tensor> {
        self.grads.get_mut(v.0).and_then(|g| g.take())
    }
}
