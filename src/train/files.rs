//! What a run writes: atomic files, checkpoints, curves, progress bars.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::gpu::Gpu;
use crate::nn::{Model, ParamStore};
use crate::train::{EpochMetrics, TrainConfig};

/// Writes `path` atomically: a temporary file in the same directory,
/// fsync, rename over `path`, fsync the directory. A crash leaves either
/// the old file or the new one, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("cannot write {}: {e}", path.display())
    })
}

/// A progress bar on stderr, hidden when `show` is false.
pub fn progress_bar(show: bool, len: u64, prefix: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    bar
}

/// The metadata stored in a model checkpoint: the model name, its
/// binarization rules (when not the plain ones) and the run's configuration.
pub fn checkpoint_metadata(cfg: &TrainConfig, model: &dyn Model) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("model".into(), model.name().to_string());
    model.binarization().write_metadata(&mut m);
    if model.width() != 1.0 {
        m.insert(
            crate::nn::models::WIDTH_METADATA_KEY.into(),
            model.width().to_string(),
        );
    }
    m.insert("config".into(), cfg.to_toml());
    m.insert("format".into(), "bitprop-model-1".into());
    m
}

/// Saves every tensor of a model (parameters and running statistics) as f32
/// safetensors named as PyTorch would name them.
pub fn save_model(
    gpu: &Gpu,
    store: &ParamStore,
    path: &Path,
    metadata: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let mut tensors = Vec::new();
    for e in &store.entries {
        tensors.push((
            e.name.clone(),
            e.value.shape().to_vec(),
            e.value.to_f32(gpu)?,
        ));
    }
    crate::checkpoint::save(path, &tensors, metadata.clone())?;
    Ok(())
}

/// Loads a checkpoint into a model strictly: every tensor must be present
/// with its shape, and nothing else may be there.
pub fn load_model(
    gpu: &Gpu,
    store: &mut ParamStore,
    path: &Path,
) -> anyhow::Result<BTreeMap<String, String>> {
    let ck = crate::checkpoint::load(path)?;
    let expected: Vec<(String, Vec<usize>)> = store
        .entries
        .iter()
        .map(|e| (e.name.clone(), e.value.shape().to_vec()))
        .collect();
    let metadata = ck.metadata.clone();
    let mut ck = ck;
    let values = ck.take_strict(&expected)?;
    for (e, v) in store.entries.iter_mut().zip(values) {
        e.value = crate::tensor::Tensor::from_f32(gpu, e.value.shape(), &v)?;
    }
    Ok(metadata)
}

static FONT: &[u8] = include_bytes!("fonts/DejaVuSansMono.ttf");

pub fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ =
            plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT);
    });
}

/// `curves.png`: loss (left) and accuracy (right) per epoch.
pub fn plot_curves(path: &Path, history: &[EpochMetrics]) -> anyhow::Result<()> {
    use plotters::prelude::*;
    register_font();
    let tmp = path.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (1100, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(550);
        let epochs = history.len().max(2) as f64;
        let loss_max = history
            .iter()
            .flat_map(|m| [m.train_loss, m.test_loss])
            .filter(|v| v.is_finite())
            .fold(0.1f64, f64::max);
        let mut c = ChartBuilder::on(&left)
            .caption("loss", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(1f64..epochs, 0f64..loss_max * 1.05)?;
        c.configure_mesh().x_desc("epoch").draw()?;
        let series = |f: fn(&EpochMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
            history
                .iter()
                .filter_map(|m| f(m).map(|v| (m.epoch as f64, v)))
                .collect()
        };
        c.draw_series(LineSeries::new(series(|m| Some(m.train_loss)), &BLUE))?
            .label("train")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        c.draw_series(LineSeries::new(series(|m| Some(m.test_loss)), &RED))?
            .label("test")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        c.configure_series_labels()
            .background_style(WHITE)
            .border_style(BLACK)
            .draw()?;
        let acc_min = history
            .iter()
            .flat_map(|m| [Some(m.train_acc), Some(m.test_acc), m.val_acc])
            .flatten()
            .fold(1f64, f64::min);
        let mut c = ChartBuilder::on(&right)
            .caption("accuracy", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(1f64..epochs, (acc_min - 0.02).max(0.0)..1f64)?;
        c.configure_mesh().x_desc("epoch").draw()?;
        for (name, color, f) in [
            (
                "train",
                BLUE,
                (|m: &EpochMetrics| Some(m.train_acc)) as fn(&EpochMetrics) -> Option<f64>,
            ),
            ("val", GREEN, |m: &EpochMetrics| m.val_acc),
            ("test", RED, |m: &EpochMetrics| Some(m.test_acc)),
        ] {
            let pts = series(f);
            if pts.is_empty() {
                continue;
            }
            c.draw_series(LineSeries::new(pts, &color))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        c.configure_series_labels()
            .background_style(WHITE)
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    std::fs::rename(&tmp, path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(())
}
