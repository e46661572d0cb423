//! The per-layer summary of a model: parameters split into 1-bit and
//! 32-bit, memory as stored in f32 and as deployed in a `.bpm` file, and
//! multiply-adds split into binary (XNOR-popcount) and float.

use serde::Serialize;

use super::format::{HEADER_BYTES, TRAILER_BYTES};
use super::plan::Description;

/// One row of the summary table.
#[derive(Clone, Debug, Serialize)]
pub struct SummaryRow {
    pub layer: String,
    pub op: String,
    pub output_shape: Vec<usize>,
    pub params_1bit: u64,
    pub params_32bit: u64,
    /// `4 * (params_1bit + params_32bit)`: the tensors as a checkpoint stores them.
    pub bytes_f32: u64,
    /// Bytes of this layer's `.bpm` records (None when the model does not export).
    pub bytes_deployed: Option<u64>,
    pub binary_macs: u64,
    pub float_macs: u64,
}

/// The whole summary.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub model: String,
    pub layers: Vec<SummaryRow>,
    pub params_1bit: u64,
    pub params_32bit: u64,
    pub bytes_f32: u64,
    /// The `.bpm` header and CRC32 trailer.
    pub bytes_header: Option<u64>,
    /// Exact size of the `.bpm` file `export` writes.
    pub bytes_deployed: Option<u64>,
    pub binary_macs: u64,
    pub float_macs: u64,
    /// `bytes_f32 / bytes_deployed`.
    pub compression_ratio: Option<f64>,
    /// Size of the checkpoint file, when summarising one.
    pub checkpoint_bytes: Option<u64>,
    /// `checkpoint_bytes / bytes_deployed`.
    pub checkpoint_ratio: Option<f64>,
    /// Why the model has no deployed size.
    pub not_exportable: Option<String>,
}

/// Summarises a model's description (and its checkpoint's size, if any).
pub fn summarize(desc: &Description, checkpoint_bytes: Option<u64>) -> Summary {
    let exportable = desc.not_exportable.is_none();
    let layers: Vec<SummaryRow> = desc
        .rows
        .iter()
        .map(|r| SummaryRow {
            layer: r.name.clone(),
            op: r.op.clone(),
            output_shape: r.output.clone(),
            params_1bit: r.params_1bit(),
            params_32bit: r.params_32bit(),
            bytes_f32: 4 * (r.params_1bit() + r.params_32bit()),
            bytes_deployed: exportable.then(|| r.deployed_bytes()),
            binary_macs: if r.binary_macs { r.macs } else { 0 },
            float_macs: if r.binary_macs { 0 } else { r.macs },
        })
        .collect();
    let sum = |f: fn(&SummaryRow) -> u64| layers.iter().map(f).sum::<u64>();
    let bytes_f32 = sum(|r| r.bytes_f32);
    let bytes_deployed = desc.file_bytes();
    Summary {
        model: desc.model.clone(),
        params_1bit: sum(|r| r.params_1bit),
        params_32bit: sum(|r| r.params_32bit),
        bytes_f32,
        bytes_header: exportable.then_some((HEADER_BYTES + TRAILER_BYTES) as u64),
        bytes_deployed,
        binary_macs: sum(|r| r.binary_macs),
        float_macs: sum(|r| r.float_macs),
        compression_ratio: bytes_deployed.map(|d| bytes_f32 as f64 / d as f64),
        checkpoint_bytes,
        checkpoint_ratio: checkpoint_bytes
            .zip(bytes_deployed)
            .map(|(c, d)| c as f64 / d as f64),
        not_exportable: desc.not_exportable.clone(),
        layers,
    }
}

fn bytes(b: u64) -> String {
    if b >= 10 * 1024 * 1024 {
        format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
    } else if b >= 10 * 1024 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{b} B")
    }
}

fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl Summary {
    /// The table as text.
    pub fn table(&self) -> String {
        let mut rows: Vec<[String; 8]> = vec![[
            "layer".into(),
            "output".into(),
            "1-bit params".into(),
            "32-bit params".into(),
            "f32 memory".into(),
            "deployed".into(),
            "binary MACs".into(),
            "float MACs".into(),
        ]];
        let dep = |d: Option<u64>| d.map_or("-".to_string(), bytes);
        for r in &self.layers {
            rows.push([
                format!("{} ({})", r.layer, r.op),
                format!("{:?}", r.output_shape),
                count(r.params_1bit),
                count(r.params_32bit),
                bytes(r.bytes_f32),
                dep(r.bytes_deployed),
                count(r.binary_macs),
                count(r.float_macs),
            ]);
        }
        if let Some(h) = self.bytes_header {
            rows.push([
                "(.bpm header + CRC32)".into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                bytes(h),
                String::new(),
                String::new(),
            ]);
        }
        rows.push([
            "total".into(),
            String::new(),
            count(self.params_1bit),
            count(self.params_32bit),
            bytes(self.bytes_f32),
            dep(self.bytes_deployed),
            count(self.binary_macs),
            count(self.float_macs),
        ]);
        let widths: Vec<usize> = (0..8)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for (k, r) in rows.iter().enumerate() {
            let line: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    if i == 0 {
                        format!("{cell:<w$}", w = widths[i])
                    } else {
                        format!("{cell:>w$}", w = widths[i])
                    }
                })
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
            if k == 0 || k == rows.len() - 2 {
                out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * 7));
                out.push('\n');
            }
        }
        out.push_str(&format!("f32 tensors: {} bytes; ", self.bytes_f32));
        match (self.bytes_deployed, self.compression_ratio) {
            (Some(d), Some(r)) => out.push_str(&format!(
                "deployed .bpm file: {d} bytes; compression {r:.2}x"
            )),
            _ => out.push_str(&format!(
                "not exportable: {}",
                self.not_exportable.as_deref().unwrap_or("")
            )),
        }
        if let (Some(c), Some(r)) = (self.checkpoint_bytes, self.checkpoint_ratio) {
            out.push_str(&format!("; checkpoint file {c} bytes ({r:.2}x the .bpm)"));
        }
        out.push('\n');
        out
    }
}
