//! How a kernel is described: its WGSL file, entry point and bindings.

/// How a kernel uses a storage binding; must match the WGSL declaration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

/// A WGSL entry point. Binding 0 is always `var<uniform>` parameters;
/// bindings 1.. are storage buffers with the accesses listed here.
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
    ($file:literal, $entry:literal, [$($access:ident),* $(,)?]) => {
        $crate::gpu::Kernel {
            file: $file,
            source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $file)),
            entry: $entry,
            bindings: &[$($crate::gpu::Access::$access),*],
        }
    };
}
