//! `resume.safetensors`: what a killed run needs to continue exactly where
//! it stopped: model tensors, optimizer moments, counters and sums, written
//! atomically beside the model checkpoints.

use std::collections::BTreeMap;

use crate::gpu::Gpu;
use crate::methods::{Method, MethodState};
use crate::nn::Model;
use crate::nn::saturation::ActSaturation;
use crate::optim::Optimizer;
use crate::tensor::Tensor;

use super::weight_metrics::WeightMetrics;
use super::{EpochMetrics, EpochSums, RunState, TrainConfig};

const INTS: [&str; 9] = [
    "epoch",
    "batch",
    "step",
    "opt_step",
    "correct",
    "seen",
    "skipped",
    "best_epoch",
    "has_best",
];

fn f64_meta(
    m: &BTreeMap<String, String>,
    key: &str,
    path: &std::path::Path,
) -> anyhow::Result<f64> {
    let v = m
        .get(key)
        .ok_or_else(|| anyhow::anyhow!("{}: metadata has no '{key}'", path.display()))?;
    let bits = u64::from_str_radix(v, 16).map_err(|_| {
        anyhow::anyhow!(
            "{}: metadata '{key}' is not a hex f64 ({v})",
            path.display()
        )
    })?;
    Ok(f64::from_bits(bits))
}

/// Name prefixes of the training method's tensors and integers.
const METHOD_TENSORS: &str = "method/";
const METHOD_INTS: &str = "method_int/";

/// Writes the resume state of a run at a step boundary (pending steps settled).
#[allow(clippy::too_many_arguments)]
pub(super) fn save(
    gpu: &Gpu,
    cfg: &TrainConfig,
    model: &dyn Model,
    opt: &Optimizer,
    weights: &WeightMetrics,
    saturation: &ActSaturation,
    method: &dyn Method,
    state: &RunState,
    epoch_elapsed: f64,
    run_elapsed: f64,
) -> anyhow::Result<()> {
    let store = model.store();
    let mut floats = Vec::new();
    for e in &store.entries {
        floats.push((
            format!("model/{}", e.name),
            e.value.shape().to_vec(),
            e.value.to_f32(gpu)?,
        ));
    }
    let mut ids: Vec<_> = opt.state.keys().copied().collect();
    ids.sort_by_key(|p| p.0);
    for id in ids {
        for (i, t) in opt.state[&id].iter().enumerate() {
            floats.push((
                format!("opt/{}/{i}", store.entry(id).name),
                t.shape().to_vec(),
                t.to_f32(gpu)?,
            ));
        }
    }
    let (best_score, best_test, best_epoch) = state.best.unwrap_or((0.0, 0.0, 0));
    let values = [
        state.epoch as i64,
        state.batch as i64,
        state.step as i64,
        opt.step as i64,
        state.sums.correct as i64,
        state.sums.seen as i64,
        state.sums.skipped as i64,
        best_epoch as i64,
        state.best.is_some() as i64,
    ];
    let mut ints: Vec<(String, Vec<usize>, Vec<i64>)> = INTS
        .iter()
        .zip(values)
        .map(|(n, v)| (n.to_string(), vec![1], vec![v]))
        .collect();
    // Weight metrics: signs at initialisation and this epoch's flip counts.
    ints.push(("wm_steps".into(), vec![1], vec![weights.steps as i64]));
    let flips = weights.flip_counts(gpu)?;
    ints.push((
        "wm_flips".into(),
        vec![flips.len()],
        flips.iter().map(|v| *v as i64).collect(),
    ));
    for (i, t) in weights.init.iter().enumerate() {
        let words = t.to_u32(gpu)?;
        ints.push((
            format!("wm_init/{i}"),
            vec![words.len()],
            words.iter().map(|v| *v as i64).collect(),
        ));
    }
    // This epoch's act_saturation counters: (saturated, seen) per site.
    let sat = saturation.counts(gpu)?;
    // (None at an epoch's end: the counters were just reset.)
    if !sat.is_empty() {
        ints.push((
            "sat_counts".into(),
            vec![sat.len(), 2],
            sat.iter()
                .flat_map(|(_, a, b)| [*a as i64, *b as i64])
                .collect(),
        ));
    }
    // The training method's own state (e.g. periodic sampling's sums).
    let ms = method.save_state(gpu)?;
    for (name, shape, values) in ms.tensors {
        floats.push((format!("{METHOD_TENSORS}{name}"), shape, values));
    }
    for (name, v) in ms.ints {
        ints.push((format!("{METHOD_INTS}{name}"), vec![1], vec![v]));
    }
    let mut meta = BTreeMap::new();
    meta.insert(
        "sat_sites".into(),
        serde_json::to_string(&sat.iter().map(|s| &s.0).collect::<Vec<_>>())?,
    );
    meta.insert("config".into(), cfg.to_toml());
    meta.insert("format".into(), "bitprop-resume-1".into());
    // f64 sums as exact bit patterns, so a resumed epoch's metrics match.
    for (k, v) in [
        ("loss_sum", state.sums.loss_sum),
        ("epoch_seconds", epoch_elapsed),
        ("run_seconds", run_elapsed),
        ("best_score", best_score),
        ("best_test", best_test),
    ] {
        meta.insert(k.into(), format!("{:016x}", v.to_bits()));
    }
    meta.insert("history".into(), serde_json::to_string(&state.history)?);
    crate::checkpoint::save_with_ints(&cfg.out.join("resume.safetensors"), &floats, &ints, meta)?;
    Ok(())
}

/// Restores model, optimizer and counters from `cfg.out/resume.safetensors`.
pub(super) fn load(
    gpu: &Gpu,
    cfg: &TrainConfig,
    model: &mut dyn Model,
    opt: &mut Optimizer,
    weights: &mut WeightMetrics,
    saturation: &ActSaturation,
    method: &mut dyn Method,
) -> anyhow::Result<RunState> {
    let path = cfg.out.join("resume.safetensors");
    let mut ck = crate::checkpoint::load(&path)?;
    let mut ms = MethodState::default();
    let names: Vec<(String, Vec<usize>)> = ck
        .tensors
        .iter()
        .map(|(n, (s, _))| (n.clone(), s.clone()))
        .collect();
    for (name, shape) in names {
        if let Some(k) = name.strip_prefix(METHOD_TENSORS) {
            let v = ck.take_f32(&name, &shape)?;
            ms.tensors.push((k.to_string(), shape, v));
        } else if let Some(k) = name.strip_prefix(METHOD_INTS) {
            ms.ints.push((k.to_string(), ck.take_i64(&name, &[1])?[0]));
        }
    }
    method
        .restore_state(gpu, model, ms)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // Files written before act_saturation existed have no counters: start at 0.
    if let Some(names) = ck.metadata.get("sat_sites").cloned() {
        let names: Vec<String> = serde_json::from_str(&names).map_err(|e| {
            anyhow::anyhow!("{}: metadata 'sat_sites' is not valid: {e}", path.display())
        })?;
        let v = if names.is_empty() {
            Vec::new()
        } else {
            ck.take_i64("sat_counts", &[names.len(), 2])?
        };
        let counts: Vec<(String, u64, u64)> = names
            .into_iter()
            .zip(v.chunks(2))
            .map(|(n, c)| (n, c[0] as u64, c[1] as u64))
            .collect();
        saturation.restore(gpu, &counts)?;
    }
    let mut ints = BTreeMap::new();
    for n in INTS {
        ints.insert(n, ck.take_i64(n, &[1])?[0]);
    }
    let wm_steps = ck.take_i64("wm_steps", &[1])?[0] as u64;
    let n_flips = ck
        .tensors
        .get("wm_flips")
        .map_or(0, |t| t.0.iter().product());
    let flips: Vec<u32> = ck
        .take_i64("wm_flips", &[n_flips])?
        .iter()
        .map(|v| *v as u32)
        .collect();
    let mut init = Vec::new();
    for (i, t) in weights.init.iter().enumerate() {
        let words = ck.take_i64(&format!("wm_init/{i}"), &[t.numel()])?;
        let words: Vec<u32> = words.iter().map(|v| *v as u32).collect();
        init.push(Tensor::from_u32(gpu, t.shape(), &words)?);
    }
    let store = model.store_mut();
    let mut expected: Vec<(String, Vec<usize>)> = store
        .entries
        .iter()
        .map(|e| (format!("model/{}", e.name), e.value.shape().to_vec()))
        .collect();
    // Optimizer moments: opt/<param>/<i>, for the parameters the file has.
    let mut moments = Vec::new();
    for name in ck.tensors.keys().filter(|n| n.starts_with("opt/")) {
        let rest = &name["opt/".len()..];
        let (param, index) = rest.rsplit_once('/').ok_or_else(|| {
            anyhow::anyhow!("{}: bad optimizer tensor name {name}", path.display())
        })?;
        let id = store.find(param).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: optimizer state for unknown tensor {param}",
                path.display()
            )
        })?;
        let index: usize = index
            .parse()
            .map_err(|_| anyhow::anyhow!("{}: bad optimizer tensor name {name}", path.display()))?;
        moments.push((id, index, name.clone()));
        expected.push((name.clone(), store.get(id).shape().to_vec()));
    }
    let values = ck.take_strict(&expected)?;
    let n_model = store.entries.len();
    for (e, v) in store.entries.iter_mut().zip(&values[..n_model]) {
        e.value = Tensor::from_f32(gpu, e.value.shape(), v)?;
    }
    opt.state.clear();
    for ((id, index, _), v) in moments.iter().zip(&values[n_model..]) {
        let t = Tensor::from_f32(gpu, store.get(*id).shape(), v)?;
        let slot = opt.state.entry(*id).or_default();
        if slot.len() <= *index {
            slot.resize(*index + 1, t.clone());
        }
        slot[*index] = t;
    }
    opt.step = ints["opt_step"] as u64;
    weights.restore(gpu, model, init, &flips, wm_steps)?;
    let m = &ck.metadata;
    let history: Vec<EpochMetrics> = serde_json::from_str(
        m.get("history")
            .ok_or_else(|| anyhow::anyhow!("{}: metadata has no 'history'", path.display()))?,
    )?;
    let best = (ints["has_best"] != 0).then(|| -> anyhow::Result<_> {
        Ok((
            f64_meta(m, "best_score", &path)?,
            f64_meta(m, "best_test", &path)?,
            ints["best_epoch"] as usize,
        ))
    });
    Ok(RunState {
        epoch: ints["epoch"] as usize,
        batch: ints["batch"] as usize,
        step: ints["step"] as usize,
        sums: EpochSums {
            loss_sum: f64_meta(m, "loss_sum", &path)?,
            correct: ints["correct"] as u64,
            seen: ints["seen"] as usize,
            skipped: ints["skipped"] as u64,
        },
        epoch_seconds_before: f64_meta(m, "epoch_seconds", &path)?,
        best: best.transpose()?,
        history,
        seconds_before: f64_meta(m, "run_seconds", &path)?,
    })
}
