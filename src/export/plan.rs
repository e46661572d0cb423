//! What each model is, layer by layer, without building it: the checkpoint
//! tensors each layer owns, its output shape, its multiply-adds, and the
//! `.bpm` records it becomes. `summary` prints this; `export` fills the same
//! records with data, so the size `summary` predicts is the size `export`
//! writes.

use super::format::{ConvShape, LayerSpec, file_bytes};

/// One layer of the float model as the summary shows it.
#[derive(Clone, Debug)]
pub struct Row {
    /// Layer name (the tensor prefix), `+ sign` when a sign follows it.
    pub name: String,
    /// What it computes.
    pub op: String,
    /// Output shape per image.
    pub output: Vec<usize>,
    /// The checkpoint tensors it owns, `(name, shape)`, in checkpoint order.
    pub tensors: Vec<(String, Vec<usize>)>,
    /// Whether the first tensor is a weight used as `alpha * sign(W)` (1 bit per element).
    pub binary_weights: bool,
    /// Multiply-adds per image.
    pub macs: u64,
    /// Whether those run as XNOR-popcount (both operands binary).
    pub binary_macs: bool,
    /// The `.bpm` records it becomes (empty when it has no record, or the
    /// model is not exportable).
    pub deployed: Vec<LayerSpec>,
}

impl Row {
    /// Parameters stored with 1 bit when deployed.
    pub fn params_1bit(&self) -> u64 {
        if self.binary_weights {
            self.tensors[0].1.iter().product::<usize>() as u64
        } else {
            0
        }
    }

    /// Real-valued scalars (including batch-norm running statistics).
    pub fn params_32bit(&self) -> u64 {
        let all: u64 = self
            .tensors
            .iter()
            .map(|(_, s)| s.iter().product::<usize>() as u64)
            .sum();
        all - self.params_1bit()
    }

    /// Bytes of the deployed records.
    pub fn deployed_bytes(&self) -> u64 {
        self.deployed.iter().map(|s| s.record_bytes()).sum()
    }
}

/// A model's layers and whether it exports.
#[derive(Clone, Debug)]
pub struct Description {
    pub model: String,
    /// Input image `[C, H, W]`.
    pub input: [usize; 3],
    pub classes: usize,
    pub rows: Vec<Row>,
    /// Why `export` cannot pack this model, when it cannot.
    pub not_exportable: Option<String>,
}

impl Description {
    /// Every checkpoint tensor `(name, shape)` in checkpoint order.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        self.rows.iter().flat_map(|r| r.tensors.clone()).collect()
    }

    /// The `.bpm` records, in file order.
    pub fn specs(&self) -> Vec<LayerSpec> {
        self.rows.iter().flat_map(|r| r.deployed.clone()).collect()
    }

    /// The exact `.bpm` file size, when exportable.
    pub fn file_bytes(&self) -> Option<u64> {
        self.not_exportable
            .is_none()
            .then(|| file_bytes(&self.specs()))
    }
}

fn bn_tensors(name: &str, c: usize) -> Vec<(String, Vec<usize>)> {
    ["weight", "bias", "running_mean", "running_var"]
        .iter()
        .map(|t| (format!("{name}.{t}"), vec![c]))
        .collect()
}

struct Builder {
    rows: Vec<Row>,
    binary: bool,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        name: &str,
        op: &str,
        output: Vec<usize>,
        tensors: Vec<(String, Vec<usize>)>,
        binary_weights: bool,
        macs: u64,
        binary_macs: bool,
        deployed: Vec<LayerSpec>,
    ) {
        self.rows.push(Row {
            name: name.to_string(),
            op: op.to_string(),
            output,
            tensors,
            binary_weights: binary_weights && self.binary,
            macs,
            binary_macs: binary_macs && self.binary,
            deployed: if self.binary { deployed } else { vec![] },
        });
    }

    fn dense(
        &mut self,
        name: &str,
        inputs: usize,
        out: usize,
        binary_input: bool,
        deployed: LayerSpec,
    ) {
        let op = if self.binary {
            "dense, 1-bit weights"
        } else {
            "dense"
        };
        self.push(
            name,
            op,
            vec![out],
            vec![(format!("{name}.weight"), vec![out, inputs])],
            true,
            (inputs * out) as u64,
            binary_input,
            vec![deployed],
        );
    }

    fn bn(&mut self, name: &str, output: Vec<usize>, sign: bool, deployed: Vec<LayerSpec>) {
        let c = output[0];
        let (label, op) = match (sign, self.binary) {
            (true, true) => (format!("{name} + sign"), "batch norm + sign"),
            (true, false) => (format!("{name} + hardtanh"), "batch norm + hardtanh"),
            (false, _) => (name.to_string(), "batch norm"),
        };
        self.rows.push(Row {
            name: label,
            op: op.to_string(),
            output,
            tensors: bn_tensors(name, c),
            binary_weights: false,
            macs: 0,
            binary_macs: false,
            deployed: if self.binary { deployed } else { vec![] },
        });
    }
}

/// Every model name `--model` accepts, described.
pub fn describe(model: &str) -> Result<Description, String> {
    let (base, binary) = match model.strip_suffix("-f32") {
        Some(b) => (b, false),
        None => (model, true),
    };
    let mut b = Builder {
        rows: Vec::new(),
        binary,
    };
    let (input, not_exportable) = match base {
        "bmlp" => {
            b.dense(
                "fc1",
                784,
                1024,
                false,
                LayerSpec::PixelDense {
                    out: 1024,
                    inputs: 784,
                },
            );
            b.bn(
                "bn1",
                vec![1024],
                true,
                vec![LayerSpec::Threshold {
                    channels: 1024,
                    wide: false,
                }],
            );
            b.dense(
                "fc2",
                1024,
                1024,
                true,
                LayerSpec::BinaryDense {
                    out: 1024,
                    inputs: 1024,
                },
            );
            b.bn(
                "bn2",
                vec![1024],
                true,
                vec![LayerSpec::Threshold {
                    channels: 1024,
                    wide: false,
                }],
            );
            b.dense(
                "fc3",
                1024,
                10,
                true,
                LayerSpec::BinaryDense {
                    out: 10,
                    inputs: 1024,
                },
            );
            b.bn(
                "bn3",
                vec![10],
                false,
                vec![LayerSpec::Logits { classes: 10 }],
            );
            ([1, 28, 28], None)
        }
        "bcnn" => {
            let conv =
                |b: &mut Builder, name: &str, cin: usize, cout: usize, hw: usize, binw: bool| {
                    let shape = ConvShape {
                        out: cout,
                        in_c: cin,
                        kh: 3,
                        kw: 3,
                        stride: 1,
                        pad: 1,
                    };
                    let spec = if binw {
                        LayerSpec::BinaryConv(shape)
                    } else {
                        LayerSpec::PixelConv(shape)
                    };
                    let op = if binw && b.binary {
                        "conv 3x3, 1-bit weights"
                    } else {
                        "conv 3x3"
                    };
                    b.push(
                        name,
                        op,
                        vec![cout, hw, hw],
                        vec![(format!("{name}.weight"), vec![cout, cin, 3, 3])],
                        binw,
                        (hw * hw * cout * cin * 9) as u64,
                        binw,
                        vec![spec],
                    );
                };
            let pool = |b: &mut Builder, after: &str, c: usize, hw: usize| {
                b.push(
                    &format!("{after}.pool"),
                    "max pool 2x2",
                    vec![c, hw, hw],
                    vec![],
                    false,
                    0,
                    false,
                    vec![LayerSpec::MaxPool2],
                );
            };
            conv(&mut b, "conv1", 1, 64, 28, false);
            b.bn(
                "bn1",
                vec![64, 28, 28],
                true,
                vec![LayerSpec::Threshold {
                    channels: 64,
                    wide: true,
                }],
            );
            conv(&mut b, "conv2", 64, 128, 28, true);
            pool(&mut b, "conv2", 128, 14);
            b.bn(
                "bn2",
                vec![128, 14, 14],
                true,
                vec![LayerSpec::Threshold {
                    channels: 128,
                    wide: false,
                }],
            );
            conv(&mut b, "conv3", 128, 128, 14, true);
            pool(&mut b, "conv3", 128, 7);
            b.bn(
                "bn3",
                vec![128, 7, 7],
                true,
                vec![LayerSpec::Threshold {
                    channels: 128,
                    wide: false,
                }],
            );
            b.push(
                "flatten",
                "flatten",
                vec![6272],
                vec![],
                false,
                0,
                false,
                vec![LayerSpec::Flatten],
            );
            b.dense(
                "fc",
                6272,
                10,
                true,
                LayerSpec::BinaryDense {
                    out: 10,
                    inputs: 6272,
                },
            );
            b.bn(
                "bn4",
                vec![10],
                false,
                vec![LayerSpec::Logits { classes: 10 }],
            );
            ([1, 28, 28], None)
        }
        "reactnet-s" => {
            react_rows(&mut b);
            (
                [1, 28, 28],
                Some(
                    "reactnet-s keeps real-valued residual shortcuts, RPReLU and average pooling \
                     between its binary convolutions, which do not fold into sign thresholds; \
                     .bpm version 1 packs bmlp and bcnn"
                        .to_string(),
                ),
            )
        }
        _ => {
            return Err(format!(
                "unknown model '{model}': expected one of {}",
                crate::nn::MODEL_NAMES.join(", ")
            ));
        }
    };
    let not_exportable = if binary {
        not_exportable
    } else {
        Some(format!(
            "{model} is the real-valued twin (f32 weights, HardTanh): there are no 1-bit weights \
             or signs to pack; export the binary model"
        ))
    };
    Ok(Description {
        model: model.to_string(),
        input,
        classes: 10,
        rows: b.rows,
        not_exportable,
    })
}

/// The rows of `reactnet-s` (see `nn::models::ReactNetS`).
fn react_rows(b: &mut Builder) {
    let c = 32;
    let mut hw = 28;
    b.push(
        "stem.conv",
        "conv 3x3",
        vec![c, hw, hw],
        vec![("stem.conv.weight".into(), vec![c, 1, 3, 3])],
        false,
        (hw * hw * c * 9) as u64,
        false,
        vec![],
    );
    b.bn("stem.bn", vec![c, hw, hw], false, vec![]);
    let layout = [(3, 1), (1, 1), (3, 2), (1, 1), (3, 2), (1, 1)];
    for (i, (k, stride)) in layout.into_iter().enumerate() {
        let name = format!("block{i}");
        if b.binary {
            b.push(
                &format!("{name}.rsign"),
                "rsign",
                vec![c, hw, hw],
                vec![(format!("{name}.rsign.bias"), vec![c])],
                false,
                0,
                false,
                vec![],
            );
        } else {
            b.push(
                &format!("{name}.hardtanh"),
                "hardtanh",
                vec![c, hw, hw],
                vec![],
                false,
                0,
                false,
                vec![],
            );
        }
        let out_hw = (hw + 2 * (k / 2) - k) / stride + 1;
        let op = if b.binary {
            format!("conv {k}x{k}/{stride}, 1-bit weights")
        } else {
            format!("conv {k}x{k}/{stride}")
        };
        b.push(
            &format!("{name}.conv"),
            &op,
            vec![c, out_hw, out_hw],
            vec![(format!("{name}.conv.weight"), vec![c, c, k, k])],
            true,
            (out_hw * out_hw * c * c * k * k) as u64,
            true,
            vec![],
        );
        b.bn(
            &format!("{name}.bn"),
            vec![c, out_hw, out_hw],
            false,
            vec![],
        );
        let shortcut = if stride == 2 {
            "+ avg-pool shortcut"
        } else {
            "+ shortcut"
        };
        b.push(
            &format!("{name}.rprelu"),
            &format!("{shortcut}, rprelu"),
            vec![c, out_hw, out_hw],
            ["slope", "shift_in", "shift_out"]
                .iter()
                .map(|t| (format!("{name}.rprelu.{t}"), vec![c]))
                .collect(),
            false,
            0,
            false,
            vec![],
        );
        hw = out_hw;
    }
    b.push(
        "pool",
        "global average pool",
        vec![c],
        vec![],
        false,
        0,
        false,
        vec![],
    );
    b.push(
        "fc",
        "dense + bias",
        vec![10],
        vec![
            ("fc.weight".into(), vec![10, c]),
            ("fc.bias".into(), vec![10]),
        ],
        false,
        (c * 10) as u64,
        false,
        vec![],
    );
}
