//! Software prefetch for the tick's walk over thousands of players.
//!
//! Each player's state (its output's cipher keys, its counters, its ring) is cold by
//! the time its turn comes: the kernel's send path between two players evicts it from
//! L1 and L2. A load of cold state stalls the thread for the whole miss; a prefetch
//! issued a few players ahead starts the same misses early and lets them overlap with
//! the current player's work. Measured effect: see `tuning.md`.

/// Bytes in a cache line on the CPUs Quaver targets.
pub const LINE: usize = 64;

/// Starts loading the `bytes` bytes from `ptr` into the cache (rounded out to whole
/// lines). Never reads the memory from the program's point of view, never faults, and
/// compiles to nothing on targets without a prefetch instruction.
#[inline(always)]
pub fn prefetch<T: ?Sized>(ptr: *const T, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let base = ptr.cast::<i8>();
        let mut offset = 0;
        while offset < bytes {
            // SAFETY: PREFETCHT0 is a hint: it performs no architectural memory access,
            // cannot fault on any address, and SSE is part of the x86_64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(offset)) };
            offset += LINE;
        }
        if bytes > 0 {
            // The last line, which a misaligned start leaves out of the steps above.
            // SAFETY: as above.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(bytes - 1)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ptr, bytes);
    }
}

/// Prefetches the value behind `r` (its first `bytes` bytes).
#[inline(always)]
pub fn prefetch_ref<T: ?Sized>(r: &T, bytes: usize) {
    prefetch(r as *const T, bytes);
}
