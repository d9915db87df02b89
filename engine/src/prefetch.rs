//! The one place the workspace allows `unsafe`: a cache prefetch hint.
//!
//! `_mm_prefetch` is an `unsafe fn` only because it is a target-feature
//! intrinsic; it never dereferences its pointer, cannot fault, and has no
//! effect a program can observe except speed. Stable Rust has no safe
//! prefetch yet (`std::hint::prefetch_read` is unstable), and a crate for
//! these four lines would be a dependency for nothing.

/// Asks the CPU to bring the cache line holding `pointer` into L1. A hint
/// only; `pointer` may be dangling. A no-op on other architectures.
#[inline(always)]
#[allow(unsafe_code)]
pub fn prefetch<T>(pointer: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86_64's baseline, and a prefetch neither
    // reads nor writes memory as far as the program can tell: any address,
    // valid or not, is allowed.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(pointer.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = pointer;
}
