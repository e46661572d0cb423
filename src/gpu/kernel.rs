//! How a kernel is described: its WGSL file, entry point and bindings.

/// How a kernel uses a buffer binding; must match the WGSL declaration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    ReadWrite,
    /// `var<uniform>` (at most the adapter's uniform binding size): on
    /// lavapipe a load from a uniform buffer is a plain gather, while a
    /// storage-buffer load loops over the lanes one by one.
    Uniform,
}

/// A WGSL entry point. Binding 0 is always `var<uniform>` parameters;
/// bindings 1.. are buffers with the accesses listed here.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    /// Path under `shaders/`, e.g. `gemm/xnor_gemm.wgsl`.
    pub file: &'static str,
    pub source: &'static str,
    pub entry: &'static str,
    pub bindings: &'static [Access],
}

/// Declares a `Kernel` for an entry point of a file under `shaders/`.
#[macro_export]
macro_rules! kernel {
    ($file:literal, $entry:expr, [$($access:ident),* $(,)?]) => {
        $crate::gpu::Kernel {
            file: $file,
            source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $file)),
            entry: $entry,
            bindings: &[$($crate::gpu::Access::$access),*],
        }
    };
    // A module made of several files, named by the last: `[a.wgsl, b.wgsl]`.
    ([$($part:literal),+ $(,)?], $entry:expr, [$($access:ident),* $(,)?]) => {
        $crate::gpu::Kernel {
            file: $crate::kernel!(@last $($part),+),
            source: concat!($(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $part))),+),
            entry: $entry,
            bindings: &[$($crate::gpu::Access::$access),*],
        }
    };
    (@last $last:literal) => { $last };
    (@last $first:literal, $($rest:literal),+) => { $crate::kernel!(@last $($rest),+) };
}
