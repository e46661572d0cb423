//! The `.bpm` file (bitprop packed model), version 1: what is in it, how it
//! is written, and a reader that validates everything before it allocates.
//! `docs/bpm-format.md` is the specification a third party reads; this file
//! implements it.
//!
//! A file is a 52-byte header, a sequence of layer records, and a CRC32 of
//! everything before it. All integers and floats are little-endian.
//! A model is a chain of layers over one image; each layer turns one value
//! (pixels, integers, bits, logits) into the next:
//!
//! ```text
//! pixels --pixel_dense/pixel_conv--> int --threshold--> bits
//! bits --binary_dense/binary_conv--> int --max_pool2--> int
//! bits --flatten--> bits            int --logits--> logits
//! ```

/// The first 8 bytes of every `.bpm` file: `\x89 B P M \r \n \x1a \n`
/// (a non-ASCII byte, the name, and the line endings a text-mode copy breaks).
pub const MAGIC: [u8; 8] = *b"\x89BPM\r\n\x1a\n";
/// The format version this code writes and reads.
pub const VERSION: u32 = 1;
/// Bytes of the fixed header.
pub const HEADER_BYTES: usize = 52;
/// Bytes of the CRC32 trailer.
pub const TRAILER_BYTES: usize = 4;
/// Bytes of a record's kind and length.
pub const RECORD_HEADER_BYTES: usize = 8;
/// Bytes of the model-name field (zero-padded UTF-8).
pub const NAME_BYTES: usize = 16;
/// Largest integer a pixel convolution may produce: `255 * sum_i |q_oi|`
/// must stay within it, so that its sums fit in an i64 on the CPU and in a
/// pair of i32 words (`hi * 2^15 + lo`, `|hi| <= 2^30`) on the GPU.
pub const PIXEL_CONV_LIMIT: i64 = 1 << 45;
/// Largest |weight| of a pixel convolution.
pub const PIXEL_CONV_MAX_WEIGHT: i64 = 1 << 30;
/// Largest value (elements per image) the reader accepts anywhere in the chain.
pub const MAX_ELEMENTS: u64 = 1 << 26;
/// Largest dimension the reader accepts.
pub const MAX_DIM: u32 = 1 << 24;

/// Errors reading a `.bpm` file. Each names the problem; layer errors name
/// the layer (0-based record index) and its kind.
#[derive(Debug, thiserror::Error)]
pub enum BpmError {
    #[error("truncated .bpm file: {len} bytes, less than the {min} bytes of a header and checksum")]
    TooShort { len: usize, min: usize },
    #[error("bad magic: not a .bpm file (starts with {found:02x?}, expected {MAGIC:02x?})")]
    BadMagic { found: Vec<u8> },
    #[error("unsupported .bpm version {found} (this bitprop reads version {VERSION})")]
    Version { found: u32 },
    #[error("truncated .bpm file: the header says {expected} bytes, the file has {found}")]
    Truncated { expected: u64, found: u64 },
    #[error(
        "trailing data after the .bpm file: the header says {expected} bytes, the file has {found}"
    )]
    Trailing { expected: u64, found: u64 },
    #[error(
        "checksum mismatch: stored CRC32 {stored:08x}, computed {computed:08x} (the file is corrupt)"
    )]
    Checksum { stored: u32, computed: u32 },
    #[error("bad header: {0}")]
    Header(String),
    #[error("layer {index} ({kind}): {msg}")]
    Layer {
        index: usize,
        kind: String,
        msg: String,
    },
}

/// Geometry of a convolution record: `out` filters of `in_c x kh x kw`,
/// stride and zero padding on both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConvShape {
    pub out: usize,
    pub in_c: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvShape {
    /// Output size `(H + 2 pad - KH) / stride + 1` (floor), or None when the
    /// kernel does not fit the padded image.
    pub fn out_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        if self.kh > h + 2 * self.pad || self.kw > w + 2 * self.pad {
            return None;
        }
        Some((
            (h + 2 * self.pad - self.kh) / self.stride + 1,
            (w + 2 * self.pad - self.kw) / self.stride + 1,
        ))
    }

    /// Kernel taps `KH * KW`.
    pub fn taps(&self) -> usize {
        self.kh * self.kw
    }
}

/// The kind and dimensions of a record: everything its size depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerSpec {
    /// Pixels (as `2p - 255`) times sign weights, an integer per output.
    PixelDense { out: usize, inputs: usize },
    /// Pixels (as `2p - 255`) convolved with i32 weights.
    PixelConv(ConvShape),
    /// XNOR-popcount dot products of bits with sign weights.
    BinaryDense { out: usize, inputs: usize },
    /// XNOR-popcount convolution of bits with sign weights, zero padding.
    BinaryConv(ConvShape),
    /// 2x2 max pooling, stride 2, of integers.
    MaxPool2,
    /// Integers to bits by a per-channel threshold (folded BN + sign), the
    /// thresholds i64 when `wide`, else i32.
    Threshold { channels: usize, wide: bool },
    /// Bits `[C, H, W]` to bits `[C*H*W]`.
    Flatten,
    /// Integers to logits: alpha scale and batch norm in f32.
    Logits { classes: usize },
}

/// Words of 64 bits holding `bits` bits.
pub fn words64(bits: usize) -> usize {
    bits.div_ceil(64)
}

impl LayerSpec {
    /// The record kind number.
    pub fn kind(&self) -> u32 {
        match self {
            LayerSpec::PixelDense { .. } => 1,
            LayerSpec::PixelConv(_) => 2,
            LayerSpec::BinaryDense { .. } => 3,
            LayerSpec::BinaryConv(_) => 4,
            LayerSpec::MaxPool2 => 5,
            LayerSpec::Threshold { .. } => 6,
            LayerSpec::Flatten => 7,
            LayerSpec::Logits { .. } => 8,
        }
    }

    /// The record kind's name in messages and the docs.
    pub fn kind_name(&self) -> &'static str {
        kind_name(self.kind())
    }

    /// Bytes of the record's payload (after kind and length), from the
    /// dimensions alone (None on overflow).
    pub fn payload_bytes(&self) -> Option<u64> {
        let m = |a: usize, b: usize| (a as u64).checked_mul(b as u64);
        match *self {
            LayerSpec::PixelDense { out, inputs } | LayerSpec::BinaryDense { out, inputs } => {
                m(out, words64(inputs))?.checked_mul(8)?.checked_add(8)
            }
            LayerSpec::PixelConv(s) => {
                let weights = m(s.out, s.in_c)?.checked_mul(s.taps() as u64)?;
                24u64
                    .checked_add(m(s.out, 4)?)?
                    .checked_add(weights.checked_mul(4)?)
            }
            LayerSpec::BinaryConv(s) => {
                let words = m(s.out, s.taps())?.checked_mul(words64(s.in_c) as u64)?;
                24u64.checked_add(words.checked_mul(8)?)
            }
            LayerSpec::MaxPool2 | LayerSpec::Flatten => Some(0),
            LayerSpec::Threshold { channels, wide } => 8u64
                .checked_add(m(channels, if wide { 8 } else { 4 })?)?
                .checked_add((channels as u64).next_multiple_of(4)),
            LayerSpec::Logits { classes } => 8u64.checked_add(m(classes, 20)?),
        }
    }

    /// Bytes of the whole record (kind, length, payload).
    pub fn record_bytes(&self) -> u64 {
        RECORD_HEADER_BYTES as u64 + self.payload_bytes().expect("record size overflows u64")
    }

    /// What this layer makes of `input`, or why it cannot take it.
    pub fn output(&self, input: &Value) -> Result<Value, String> {
        let fits = |v: Value| -> Result<Value, String> {
            let n = v.elements();
            if n > MAX_ELEMENTS {
                return Err(format!(
                    "output {v} has {n} elements per image, more than the {MAX_ELEMENTS} allowed"
                ));
            }
            Ok(v)
        };
        match (*self, input) {
            (LayerSpec::PixelDense { out, inputs }, Value::Pixels(shape)) => {
                let n: usize = shape.iter().product();
                if n != inputs {
                    return Err(format!(
                        "takes {inputs} pixels, the input image has {n} ({shape:?})"
                    ));
                }
                fits(Value::Int {
                    shape: vec![out],
                    lo: -255 * inputs as i64,
                    hi: 255 * inputs as i64,
                })
            }
            (LayerSpec::BinaryDense { out, inputs }, Value::Bits(shape)) => {
                if shape.len() != 1 || shape[0] != inputs {
                    return Err(format!(
                        "takes {inputs} bits, its input is bits {shape:?} (flatten first?)"
                    ));
                }
                fits(Value::Int {
                    shape: vec![out],
                    lo: -(inputs as i64),
                    hi: inputs as i64,
                })
            }
            (LayerSpec::PixelConv(s), Value::Pixels(shape))
            | (LayerSpec::BinaryConv(s), Value::Bits(shape)) => {
                let &[c, h, w] = shape.as_slice() else {
                    return Err(format!("takes [C, H, W], its input is {input}"));
                };
                if c != s.in_c {
                    return Err(format!(
                        "takes {} input channels, its input is {input}",
                        s.in_c
                    ));
                }
                let (oh, ow) = s.out_hw(h, w).ok_or_else(|| {
                    format!(
                        "a {}x{} kernel with padding {} does not fit {input}",
                        s.kh, s.kw, s.pad
                    )
                })?;
                let (lo, hi) = match self {
                    LayerSpec::PixelConv(_) => (-PIXEL_CONV_LIMIT, PIXEL_CONV_LIMIT),
                    _ => {
                        let k = (s.in_c * s.taps()) as i64;
                        (-k, k)
                    }
                };
                fits(Value::Int {
                    shape: vec![s.out, oh, ow],
                    lo,
                    hi,
                })
            }
            (LayerSpec::MaxPool2, Value::Int { shape, lo, hi }) => {
                let &[c, h, w] = shape.as_slice() else {
                    return Err(format!("takes [C, H, W], its input is {input}"));
                };
                if h < 2 || w < 2 {
                    return Err(format!("a 2x2 window does not fit {input}"));
                }
                Ok(Value::Int {
                    shape: vec![c, h / 2, w / 2],
                    lo: *lo,
                    hi: *hi,
                })
            }
            (LayerSpec::Threshold { channels, .. }, Value::Int { shape, .. }) => {
                if shape[0] != channels {
                    return Err(format!("has {channels} channels, its input is {input}"));
                }
                Ok(Value::Bits(shape.clone()))
            }
            (LayerSpec::Flatten, Value::Bits(shape)) => {
                Ok(Value::Bits(vec![shape.iter().product()]))
            }
            (LayerSpec::Logits { classes }, Value::Int { shape, .. }) => {
                if shape.as_slice() != [classes] {
                    return Err(format!("has {classes} classes, its input is {input}"));
                }
                Ok(Value::Logits(classes))
            }
            _ => Err(format!("cannot take {input}")),
        }
    }
}

/// Name of a record kind number.
pub fn kind_name(kind: u32) -> &'static str {
    match kind {
        1 => "pixel_dense",
        2 => "pixel_conv",
        3 => "binary_dense",
        4 => "binary_conv",
        5 => "max_pool2",
        6 => "threshold",
        7 => "flatten",
        8 => "logits",
        _ => "unknown",
    }
}

/// What flows between layers, per image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Pixel bytes `[C, H, W]`, read as the integers `2p - 255`.
    Pixels(Vec<usize>),
    /// Integers of shape `[C, H, W]` or `[K]`, within `[lo, hi]`.
    Int { shape: Vec<usize>, lo: i64, hi: i64 },
    /// Signs (bit 1 = +1) of shape `[C, H, W]` or `[K]`.
    Bits(Vec<usize>),
    /// Class scores.
    Logits(usize),
}

impl Value {
    /// Elements per image.
    pub fn elements(&self) -> u64 {
        match self {
            Value::Pixels(s) | Value::Int { shape: s, .. } | Value::Bits(s) => {
                s.iter().map(|&d| d as u64).product()
            }
            Value::Logits(c) => *c as u64,
        }
    }

    /// The shape per image.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Value::Pixels(s) | Value::Int { shape: s, .. } | Value::Bits(s) => s.clone(),
            Value::Logits(c) => vec![*c],
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Pixels(s) => write!(f, "pixels {s:?}"),
            Value::Int { shape, .. } => write!(f, "integers {shape:?}"),
            Value::Bits(s) => write!(f, "bits {s:?}"),
            Value::Logits(c) => write!(f, "logits [{c}]"),
        }
    }
}

/// Real parameters of the last layer: `logit = gamma * (f32(s) * alpha - mean)
/// * (1 / sqrt(var + eps)) + beta`, per class, in f32.
#[derive(Clone, Debug, PartialEq)]
pub struct LogitParams {
    pub eps: f32,
    pub alpha: Vec<f32>,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

impl LogitParams {
    /// The logit of class `c` for the integer pre-activation `s`, evaluated
    /// exactly as the float model's eval-mode batch norm (`bn_apply.wgsl`):
    /// left to right in f32, with `invstd = 1 / sqrt(var + eps)`.
    pub fn logit(&self, c: usize, s: i64) -> f32 {
        let v = s as f32 * self.alpha[c];
        bn_eval_f32(
            v,
            self.gamma[c],
            self.beta[c],
            self.mean[c],
            self.var[c],
            self.eps,
        )
    }
}

/// Eval-mode batch norm of one value in f32, in the float model's order:
/// `gamma * (x - mean) * invstd + beta`, `invstd = 1 / sqrt(var + eps)`.
pub fn bn_eval_f32(x: f32, gamma: f32, beta: f32, mean: f32, var: f32, eps: f32) -> f32 {
    let invstd = 1.0f32 / (var + eps).sqrt();
    gamma * (x - mean) * invstd + beta
}

/// One layer record with its data.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// `s_o = sum_i (2 p_i - 255) * w_oi`, `w` packed: `out` rows of
    /// `words64(inputs)` words, element i at bit `i % 64` of word `i / 64`,
    /// bit 1 = +1.
    PixelDense {
        out: usize,
        inputs: usize,
        weights: Vec<u64>,
    },
    /// `s[o, y, x] = sum_{c, ky, kx inside the image} (2 p - 255) * q[o, c, ky, kx]`;
    /// the real pre-activation is `s / (255 * 2^shift[o])` (informative).
    PixelConv {
        shape: ConvShape,
        shift: Vec<u32>,
        weights: Vec<i32>,
    },
    /// `s_o = inputs - 2 * popcount(x xor w_o)`, `w` packed as in `PixelDense`.
    BinaryDense {
        out: usize,
        inputs: usize,
        weights: Vec<u64>,
    },
    /// `s[o, y, x] = sum_{taps t inside the image} (C - 2 * popcount(x_t xor w_ot))`,
    /// `w` as `[out, kh * kw, words64(in_c)]`, channel c at bit `c % 64` of word `c / 64`.
    BinaryConv {
        shape: ConvShape,
        weights: Vec<u64>,
    },
    MaxPool2,
    /// Bit = `s >= threshold[c]`, or `s <= threshold[c]` where `flip[c]`;
    /// stored as i64 when `wide`, else as i32 (the values must fit).
    Threshold {
        threshold: Vec<i64>,
        flip: Vec<bool>,
        wide: bool,
    },
    Flatten,
    Logits(LogitParams),
}

impl Layer {
    /// The record's kind and dimensions.
    pub fn spec(&self) -> LayerSpec {
        match self {
            Layer::PixelDense { out, inputs, .. } => LayerSpec::PixelDense {
                out: *out,
                inputs: *inputs,
            },
            Layer::PixelConv { shape, .. } => LayerSpec::PixelConv(*shape),
            Layer::BinaryDense { out, inputs, .. } => LayerSpec::BinaryDense {
                out: *out,
                inputs: *inputs,
            },
            Layer::BinaryConv { shape, .. } => LayerSpec::BinaryConv(*shape),
            Layer::MaxPool2 => LayerSpec::MaxPool2,
            Layer::Threshold {
                threshold, wide, ..
            } => LayerSpec::Threshold {
                channels: threshold.len(),
                wide: *wide,
            },
            Layer::Flatten => LayerSpec::Flatten,
            Layer::Logits(p) => LayerSpec::Logits {
                classes: p.alpha.len(),
            },
        }
    }
}

/// A packed model: the image it takes, the classes it scores, its layers.
#[derive(Clone, Debug, PartialEq)]
pub struct BpmModel {
    /// The bitprop model it was exported from (`bmlp`, `bcnn`), at most 16 bytes.
    pub name: String,
    /// Input image `[C, H, W]` of pixel bytes.
    pub input: [usize; 3],
    pub classes: usize,
    pub layers: Vec<Layer>,
}

/// Exact size in bytes of a `.bpm` file with these records.
pub fn file_bytes(specs: &[LayerSpec]) -> u64 {
    (HEADER_BYTES + TRAILER_BYTES) as u64 + specs.iter().map(|s| s.record_bytes()).sum::<u64>()
}

/// CRC32 (IEEE, as zlib and gzip) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(bytes);
    c.sum()
}

fn put_u32(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&u32::try_from(v).expect("dimension fits u32").to_le_bytes());
}

impl BpmModel {
    /// Record kinds and dimensions, in order.
    pub fn specs(&self) -> Vec<LayerSpec> {
        self.layers.iter().map(|l| l.spec()).collect()
    }

    /// The value after each layer, checking the chain (the reader's checks).
    pub fn values(&self) -> Result<Vec<Value>, BpmError> {
        let mut v = Value::Pixels(self.input.to_vec());
        let mut out = Vec::new();
        for (index, l) in self.layers.iter().enumerate() {
            let spec = l.spec();
            v = spec.output(&v).map_err(|msg| BpmError::Layer {
                index,
                kind: spec.kind_name().into(),
                msg,
            })?;
            out.push(v.clone());
        }
        Ok(out)
    }

    /// Checks what the reader checks, for a model built in memory: the
    /// header fields, the chain, every array's length, the pixel-conv weight
    /// limits, zero padding bits, and narrow thresholds that fit i32.
    /// Returns the value after each layer.
    pub fn validate(&self) -> Result<Vec<Value>, BpmError> {
        let header = |m: String| Err(BpmError::Header(m));
        if self.name.len() > NAME_BYTES {
            return header(format!(
                "model name {:?} is longer than {NAME_BYTES} bytes",
                self.name
            ));
        }
        let dims = [self.input[0], self.input[1], self.input[2], self.classes];
        if dims.iter().any(|&d| d == 0 || d > MAX_DIM as usize) {
            return header(format!(
                "input {:?} or classes {} out of range",
                self.input, self.classes
            ));
        }
        if self.input.iter().map(|&d| d as u64).product::<u64>() > MAX_ELEMENTS {
            return header(format!("input {:?} is too large", self.input));
        }
        let values = self.values()?;
        if values.last() != Some(&Value::Logits(self.classes)) {
            return header(format!(
                "the layers do not end in logits [{}]",
                self.classes
            ));
        }
        for (index, layer) in self.layers.iter().enumerate() {
            let spec = layer.spec();
            check_data(layer).map_err(|msg| BpmError::Layer {
                index,
                kind: spec.kind_name().into(),
                msg,
            })?;
        }
        Ok(values)
    }

    /// The file's bytes: header, records, CRC32 of everything before it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let specs = self.specs();
        let total = file_bytes(&specs);
        let mut out = Vec::with_capacity(total as usize);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&u32::try_from(total).expect("file fits u32").to_le_bytes());
        let name = self.name.as_bytes();
        assert!(
            name.len() <= NAME_BYTES,
            "model name {:?} too long",
            self.name
        );
        let mut field = [0u8; NAME_BYTES];
        field[..name.len()].copy_from_slice(name);
        out.extend_from_slice(&field);
        for d in self.input {
            put_u32(&mut out, d);
        }
        put_u32(&mut out, self.classes);
        put_u32(&mut out, self.layers.len());
        debug_assert_eq!(out.len(), HEADER_BYTES);
        for (layer, spec) in self.layers.iter().zip(&specs) {
            let start = out.len();
            out.extend_from_slice(&spec.kind().to_le_bytes());
            put_u32(&mut out, spec.payload_bytes().unwrap() as usize);
            write_payload(&mut out, layer);
            assert_eq!(
                (out.len() - start) as u64,
                spec.record_bytes(),
                "{} record size",
                spec.kind_name()
            );
        }
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(out.len() as u64, total);
        out
    }

    /// Parses and validates a `.bpm` file (see the module docs for the
    /// order of checks). Never panics; allocates only what the file's real
    /// length already holds.
    pub fn from_bytes(bytes: &[u8]) -> Result<BpmModel, BpmError> {
        let len = bytes.len();
        let min = HEADER_BYTES + TRAILER_BYTES;
        let head = &bytes[..len.min(8)];
        if head != &MAGIC[..head.len()] {
            return Err(BpmError::BadMagic {
                found: head.to_vec(),
            });
        }
        if len >= 12 {
            let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
            if version != VERSION {
                return Err(BpmError::Version { found: version });
            }
        }
        if len < min {
            return Err(BpmError::TooShort { len, min });
        }
        let declared = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as u64;
        if declared > len as u64 {
            return Err(BpmError::Truncated {
                expected: declared,
                found: len as u64,
            });
        }
        if declared < len as u64 {
            if declared < min as u64 {
                return Err(BpmError::Header(format!(
                    "declared file length {declared} is less than the {min}-byte minimum"
                )));
            }
            return Err(BpmError::Trailing {
                expected: declared,
                found: len as u64,
            });
        }
        let (content, trailer) = bytes.split_at(len - TRAILER_BYTES);
        let stored = u32::from_le_bytes(trailer.try_into().unwrap());
        let computed = crc32(content);
        if stored != computed {
            return Err(BpmError::Checksum { stored, computed });
        }
        parse_content(content)
    }
}

/// Padding bits past `bits` in rows of `words64(bits)` words must be zero:
/// the XNOR arithmetic relies on them matching the input's zero padding.
fn check_padding(weights: &[u64], bits: usize) -> Result<(), String> {
    let kw = words64(bits);
    if bits.is_multiple_of(64) {
        return Ok(());
    }
    let mask = !((1u64 << (bits % 64)) - 1);
    for (r, row) in weights.chunks(kw).enumerate() {
        if row[kw - 1] & mask != 0 {
            return Err(format!("row {r} has padding bits set past bit {bits}"));
        }
    }
    Ok(())
}

/// A pixel convolution's weights within [`PIXEL_CONV_MAX_WEIGHT`] and
/// [`PIXEL_CONV_LIMIT`].
fn check_pixel_weights(weights: &[i32], per: usize) -> Result<(), String> {
    for (o, row) in weights.chunks(per).enumerate() {
        if let Some(q) = row
            .iter()
            .find(|&&q| (q as i64).abs() > PIXEL_CONV_MAX_WEIGHT)
        {
            return Err(format!(
                "weight {q} of output channel {o} is beyond the limit {PIXEL_CONV_MAX_WEIGHT}"
            ));
        }
        let sum: i64 = row.iter().map(|&q| (q as i64).abs()).sum();
        if 255 * sum > PIXEL_CONV_LIMIT {
            return Err(format!(
                "weights of output channel {o} can reach 255 * {sum}, beyond the limit {PIXEL_CONV_LIMIT}"
            ));
        }
    }
    Ok(())
}

/// A layer's arrays against its dimensions, and their value limits.
fn check_data(layer: &Layer) -> Result<(), String> {
    let len = |what: &str, got: usize, want: usize| {
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "{what} has {got} elements, its dimensions need {want}"
            ))
        }
    };
    match layer {
        Layer::PixelDense {
            out,
            inputs,
            weights,
        }
        | Layer::BinaryDense {
            out,
            inputs,
            weights,
        } => {
            len("weights", weights.len(), out * words64(*inputs))?;
            check_padding(weights, *inputs)
        }
        Layer::PixelConv {
            shape,
            shift,
            weights,
        } => {
            len("shift", shift.len(), shape.out)?;
            let per = shape.in_c * shape.taps();
            len("weights", weights.len(), shape.out * per)?;
            check_pixel_weights(weights, per)
        }
        Layer::BinaryConv { shape, weights } => {
            len(
                "weights",
                weights.len(),
                shape.out * shape.taps() * words64(shape.in_c),
            )?;
            check_padding(weights, shape.in_c)
        }
        Layer::Threshold {
            threshold,
            flip,
            wide,
        } => {
            len("flip", flip.len(), threshold.len())?;
            match threshold
                .iter()
                .find(|&&t| !wide && i32::try_from(t).is_err())
            {
                Some(t) => Err(format!("threshold {t} does not fit a 4-byte record")),
                None => Ok(()),
            }
        }
        Layer::Logits(p) => {
            let c = p.alpha.len();
            for (what, v) in [
                ("gamma", &p.gamma),
                ("beta", &p.beta),
                ("mean", &p.mean),
                ("var", &p.var),
            ] {
                len(what, v.len(), c)?;
            }
            Ok(())
        }
        Layer::MaxPool2 | Layer::Flatten => Ok(()),
    }
}

fn write_payload(out: &mut Vec<u8>, layer: &Layer) {
    let words = |out: &mut Vec<u8>, w: &[u64]| {
        for x in w {
            out.extend_from_slice(&x.to_le_bytes());
        }
    };
    let conv = |out: &mut Vec<u8>, s: &ConvShape| {
        for d in [s.out, s.in_c, s.kh, s.kw, s.stride, s.pad] {
            put_u32(out, d);
        }
    };
    let floats = |out: &mut Vec<u8>, v: &[f32]| {
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    };
    match layer {
        Layer::PixelDense {
            out: o,
            inputs,
            weights,
        }
        | Layer::BinaryDense {
            out: o,
            inputs,
            weights,
        } => {
            assert_eq!(weights.len(), o * words64(*inputs));
            put_u32(out, *o);
            put_u32(out, *inputs);
            words(out, weights);
        }
        Layer::PixelConv {
            shape,
            shift,
            weights,
        } => {
            assert_eq!(shift.len(), shape.out);
            assert_eq!(weights.len(), shape.out * shape.in_c * shape.taps());
            conv(out, shape);
            for s in shift {
                out.extend_from_slice(&s.to_le_bytes());
            }
            for q in weights {
                out.extend_from_slice(&q.to_le_bytes());
            }
        }
        Layer::BinaryConv { shape, weights } => {
            assert_eq!(
                weights.len(),
                shape.out * shape.taps() * words64(shape.in_c)
            );
            conv(out, shape);
            words(out, weights);
        }
        Layer::MaxPool2 | Layer::Flatten => {}
        Layer::Threshold {
            threshold,
            flip,
            wide,
        } => {
            assert_eq!(threshold.len(), flip.len());
            put_u32(out, threshold.len());
            put_u32(out, if *wide { 8 } else { 4 });
            for &t in threshold {
                if *wide {
                    out.extend_from_slice(&t.to_le_bytes());
                } else {
                    let t = i32::try_from(t).expect("a narrow threshold fits i32");
                    out.extend_from_slice(&t.to_le_bytes());
                }
            }
            out.extend(flip.iter().map(|&f| f as u8));
            let pad = flip.len().next_multiple_of(4) - flip.len();
            out.extend(std::iter::repeat_n(0u8, pad));
        }
        Layer::Logits(p) => {
            let c = p.alpha.len();
            for v in [&p.gamma, &p.beta, &p.mean, &p.var] {
                assert_eq!(v.len(), c);
            }
            put_u32(out, c);
            floats(out, &[p.eps]);
            for v in [&p.alpha, &p.gamma, &p.beta, &p.mean, &p.var] {
                floats(out, v);
            }
        }
    }
}

/// A reader over a byte slice whose reads fail instead of panicking.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() - self.pos < n {
            return Err(format!(
                "needs {n} more bytes at offset {}, only {} left",
                self.pos,
                self.bytes.len() - self.pos
            ));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn dim(&mut self, what: &str) -> Result<usize, String> {
        let d = self.u32()?;
        if d == 0 || d > MAX_DIM {
            return Err(format!("{what} = {d} is out of range (1..={MAX_DIM})"));
        }
        Ok(d as usize)
    }
    fn words(&mut self, n: usize) -> Result<Vec<u64>, String> {
        Ok(self
            .take(n * 8)?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }
    fn u32s(&mut self, n: usize) -> Result<Vec<u32>, String> {
        Ok(self
            .take(n * 4)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }
    fn f32s(&mut self, n: usize) -> Result<Vec<f32>, String> {
        Ok(self.u32s(n)?.into_iter().map(f32::from_bits).collect())
    }
}

fn parse_content(content: &[u8]) -> Result<BpmModel, BpmError> {
    let header = |m: String| BpmError::Header(m);
    let mut cur = Cursor {
        bytes: content,
        pos: 16,
    };
    let name_field = cur.take(NAME_BYTES).map_err(header)?;
    let end = name_field
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(NAME_BYTES);
    let name = std::str::from_utf8(&name_field[..end])
        .map_err(|_| header("model name is not UTF-8".into()))?
        .to_string();
    let c = cur.dim("input channels").map_err(header)?;
    let h = cur.dim("input height").map_err(header)?;
    let w = cur.dim("input width").map_err(header)?;
    if (c as u64) * (h as u64) * (w as u64) > MAX_ELEMENTS {
        return Err(header(format!(
            "input [{c}, {h}, {w}] is larger than {MAX_ELEMENTS} pixels"
        )));
    }
    let classes = cur.dim("classes").map_err(header)?;
    let count = cur.u32().map_err(header)? as usize;
    let mut value = Value::Pixels(vec![c, h, w]);
    // Not `with_capacity(count)`: the count is only a claim until the records are read.
    let mut layers = Vec::new();
    for index in 0..count {
        let start = cur.pos;
        let lerr = |kind: &str, msg: String| BpmError::Layer {
            index,
            kind: kind.to_string(),
            msg,
        };
        let (kind, body_len) = match (cur.u32(), cur.u32()) {
            (Ok(k), Ok(b)) => (k, b as usize),
            _ => {
                return Err(lerr(
                    "record header",
                    format!(
                        "the header says {count} layers, the file ends after {index} at offset {start}"
                    ),
                ));
            }
        };
        let kname = kind_name(kind);
        if kname == "unknown" {
            return Err(lerr(kname, format!("unknown record kind {kind}")));
        }
        let body = cur.take(body_len).map_err(|m| {
            lerr(
                kname,
                format!("record says its payload is {body_len} bytes but it {m}"),
            )
        })?;
        let mut rec = Cursor {
            bytes: body,
            pos: 0,
        };
        let layer = parse_record(kind, &mut rec, &mut value).map_err(|m| lerr(kname, m))?;
        layers.push(layer);
    }
    if cur.pos != content.len() {
        return Err(BpmError::Header(format!(
            "{} bytes after the last of {count} layers",
            content.len() - cur.pos
        )));
    }
    if value != Value::Logits(classes) {
        return Err(BpmError::Header(format!(
            "the layers end in {value}, the header says logits [{classes}]"
        )));
    }
    let model = BpmModel {
        name,
        input: [c, h, w],
        classes,
        layers,
    };
    // The record-by-record checks above cover this; it keeps the reader and
    // `validate` (which the runtimes call) in step.
    model.validate()?;
    Ok(model)
}

/// Reads one record's payload: its dimensions first, then checks that the
/// payload length is exactly what they imply and that the layer takes the
/// current value, and only then reads (and allocates) its data.
fn parse_record(kind: u32, rec: &mut Cursor, value: &mut Value) -> Result<Layer, String> {
    let conv_shape = |rec: &mut Cursor| -> Result<ConvShape, String> {
        Ok(ConvShape {
            out: rec.dim("out channels")?,
            in_c: rec.dim("in channels")?,
            kh: rec.dim("kernel height")?,
            kw: rec.dim("kernel width")?,
            stride: rec.dim("stride")?,
            pad: rec.u32()? as usize,
        })
    };
    let spec = match kind {
        1 | 3 => {
            let out = rec.dim("outputs")?;
            let inputs = rec.dim("inputs")?;
            if kind == 1 {
                LayerSpec::PixelDense { out, inputs }
            } else {
                LayerSpec::BinaryDense { out, inputs }
            }
        }
        2 => {
            let s = conv_shape(rec)?;
            if s.pad as u32 > MAX_DIM {
                return Err(format!("padding {} is out of range", s.pad));
            }
            LayerSpec::PixelConv(s)
        }
        4 => {
            let s = conv_shape(rec)?;
            if s.pad as u32 > MAX_DIM {
                return Err(format!("padding {} is out of range", s.pad));
            }
            LayerSpec::BinaryConv(s)
        }
        5 => LayerSpec::MaxPool2,
        6 => {
            let channels = rec.dim("channels")?;
            let wide = match rec.u32()? {
                4 => false,
                8 => true,
                w => return Err(format!("threshold width {w} is not 4 or 8 bytes")),
            };
            LayerSpec::Threshold { channels, wide }
        }
        7 => LayerSpec::Flatten,
        8 => LayerSpec::Logits {
            classes: rec.dim("classes")?,
        },
        _ => return Err(format!("unknown record kind {kind}")),
    };
    let want = spec
        .payload_bytes()
        .ok_or_else(|| "dimensions overflow".to_string())?;
    if want != rec.bytes.len() as u64 {
        return Err(format!(
            "payload is {} bytes, its dimensions {spec:?} need {want}",
            rec.bytes.len()
        ));
    }
    let next = spec.output(value)?;
    let layer = match spec {
        LayerSpec::PixelDense { out, inputs } => Layer::PixelDense {
            out,
            inputs,
            weights: rec.words(out * words64(inputs))?,
        },
        LayerSpec::BinaryDense { out, inputs } => Layer::BinaryDense {
            out,
            inputs,
            weights: rec.words(out * words64(inputs))?,
        },
        LayerSpec::PixelConv(shape) => {
            let shift = rec.u32s(shape.out)?;
            let weights: Vec<i32> = rec
                .u32s(shape.out * shape.in_c * shape.taps())?
                .into_iter()
                .map(|v| v as i32)
                .collect();
            check_pixel_weights(&weights, shape.in_c * shape.taps())?;
            Layer::PixelConv {
                shape,
                shift,
                weights,
            }
        }
        LayerSpec::BinaryConv(shape) => Layer::BinaryConv {
            shape,
            weights: rec.words(shape.out * shape.taps() * words64(shape.in_c))?,
        },
        LayerSpec::MaxPool2 => Layer::MaxPool2,
        LayerSpec::Flatten => Layer::Flatten,
        LayerSpec::Threshold { channels, wide } => {
            let threshold: Vec<i64> = if wide {
                rec.words(channels)?.into_iter().map(|v| v as i64).collect()
            } else {
                rec.u32s(channels)?
                    .into_iter()
                    .map(|v| v as i32 as i64)
                    .collect()
            };
            let flags = rec.take(channels.next_multiple_of(4))?;
            let mut flip = Vec::with_capacity(channels);
            for (c, &f) in flags.iter().enumerate() {
                match (c < channels, f) {
                    (true, 0 | 1) => flip.push(f == 1),
                    (true, _) => {
                        return Err(format!("flip flag of channel {c} is {f}, not 0 or 1"));
                    }
                    (false, 0) => {}
                    (false, _) => return Err(format!("padding byte {c} is {f}, not 0")),
                }
            }
            Layer::Threshold {
                threshold,
                flip,
                wide,
            }
        }
        LayerSpec::Logits { classes } => {
            let eps = rec.f32s(1)?[0];
            let mut v: Vec<Vec<f32>> = (0..5)
                .map(|_| rec.f32s(classes))
                .collect::<Result<_, _>>()?;
            let var = v.pop().unwrap();
            let mean = v.pop().unwrap();
            let beta = v.pop().unwrap();
            let gamma = v.pop().unwrap();
            let alpha = v.pop().unwrap();
            Layer::Logits(LogitParams {
                eps,
                alpha,
                gamma,
                beta,
                mean,
                var,
            })
        }
    };
    match &layer {
        Layer::PixelDense {
            inputs, weights, ..
        }
        | Layer::BinaryDense {
            inputs, weights, ..
        } => check_padding(weights, *inputs)?,
        Layer::BinaryConv { shape, weights } => check_padding(weights, shape.in_c)?,
        _ => {}
    }
    *value = next;
    Ok(layer)
}
