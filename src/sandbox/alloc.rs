//! Heap accounting for sandbox workers.
//!
//! The `ecology` binary installs [`WorkerAllocator`] as its global allocator. It
//! counts nothing until [`enable`] is called, which only a sandbox worker does, so the
//! world process pays one relaxed atomic load per allocation. In a worker it tracks
//! live and peak heap bytes (the peak memory of a call) and refuses allocations past
//! the worker's heap limit: the allocation fails, the worker aborts, and the host
//! reports the call as failed — a process boundary doing what boa cannot do
//! in-process.

use std::{
    alloc::{GlobalAlloc, Layout},
    sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed},
};

static ENABLED: AtomicBool = AtomicBool::new(false);
// Signed: frees of memory allocated before counting began take LIVE below zero.
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static LIMIT: AtomicIsize = AtomicIsize::new(isize::MAX);

/// The allocator underneath: mimalloc. Artifact code allocates at a furious rate (a
/// step of a trivial agent is dozens of small objects), and glibc's free path was
/// the largest single cost of running it.
static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The process allocator, counting when enabled.
pub struct WorkerAllocator;

impl WorkerAllocator {
    /// Accounts `grow` more bytes; false when that would pass the limit.
    // Plain loads and stores, not read-modify-writes: in a worker one thread (the one
    // running JS) does all the allocating, and a locked instruction per allocation
    // was a tenth of a step's cost.
    fn grow(grow: usize) -> bool {
        if !ENABLED.load(Relaxed) {
            return true;
        }
        let live = LIVE.load(Relaxed) + grow as isize;
        if live > LIMIT.load(Relaxed) {
            return false;
        }
        LIVE.store(live, Relaxed);
        if live > PEAK.load(Relaxed) {
            PEAK.store(live, Relaxed);
        }
        true
    }

    fn shrink(by: usize) {
        if ENABLED.load(Relaxed) {
            LIVE.store(LIVE.load(Relaxed) - by as isize, Relaxed);
        }
    }
}

// SAFETY: every method forwards to `INNER` with the caller's layout; the counters
// only decide whether to forward.
unsafe impl GlobalAlloc for WorkerAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as ours.
        unsafe { INNER.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as ours.
        unsafe { INNER.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::shrink(layout.size());
        // SAFETY: same contract as ours.
        unsafe { INNER.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            if !Self::grow(new_size - layout.size()) {
                return std::ptr::null_mut();
            }
        } else {
            Self::shrink(layout.size() - new_size);
        }
        // SAFETY: same contract as ours.
        let moved = unsafe { INNER.realloc(ptr, layout, new_size) };
        if moved.is_null() && new_size > layout.size() {
            Self::shrink(new_size - layout.size());
        }
        moved
    }
}

/// Starts counting, with a heap limit in bytes. Allocations made before are not
/// counted (their frees are, so live bytes are relative and may dip).
pub fn enable(limit_bytes: usize) {
    LIMIT.store(isize::try_from(limit_bytes).unwrap_or(isize::MAX), Relaxed);
    ENABLED.store(true, Relaxed);
}

/// Moves the heap limit, in bytes relative to when counting began.
pub fn set_limit(limit_bytes: isize) {
    LIMIT.store(limit_bytes, Relaxed);
}

/// Live heap bytes relative to when counting began.
pub fn live() -> isize {
    LIVE.load(Relaxed)
}

/// Starts a new peak measurement at the current live bytes; returns the previous
/// peak so an enclosing measurement can be resumed with [`resume_peak`].
pub fn start_peak() -> isize {
    PEAK.swap(LIVE.load(Relaxed), Relaxed)
}

/// The peak since [`start_peak`].
pub fn peak() -> isize {
    PEAK.load(Relaxed)
}

/// Resumes an enclosing measurement whose peak was `outer`.
pub fn resume_peak(outer: isize) {
    if outer > PEAK.load(Relaxed) {
        PEAK.store(outer, Relaxed);
    }
}

/// Turns transparent huge pages off for this process. mimalloc asks the kernel for
/// them, and a process that frees and reuses memory step after step (the world
/// building views, a worker running calls) then spends a tenth of its time faulting
/// in and zeroing fresh 2 MiB pages, and holds more memory than it uses.
pub fn no_huge_pages() {
    // SAFETY: prctl with these arguments only sets a flag on this process. Failure
    // (an old kernel) leaves huge pages on, which is only slower.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// Whether the running binary counts (it installed [`WorkerAllocator`]).
pub fn counting() -> bool {
    ENABLED.load(Relaxed)
}
