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
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed},
};

static ENABLED: AtomicBool = AtomicBool::new(false);
// Signed: frees of memory allocated before counting began take LIVE below zero.
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static LIMIT: AtomicIsize = AtomicIsize::new(isize::MAX);

/// The system allocator, counting when enabled.
pub struct WorkerAllocator;

impl WorkerAllocator {
    /// Accounts `grow` more bytes; false when that would pass the limit.
    fn grow(grow: usize) -> bool {
        if !ENABLED.load(Relaxed) {
            return true;
        }
        let grow = grow as isize;
        let live = LIVE.fetch_add(grow, Relaxed) + grow;
        if live > LIMIT.load(Relaxed) {
            LIVE.fetch_sub(grow, Relaxed);
            return false;
        }
        PEAK.fetch_max(live, Relaxed);
        true
    }

    fn shrink(by: usize) {
        if ENABLED.load(Relaxed) {
            LIVE.fetch_sub(by as isize, Relaxed);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's layout; the counters
// only decide whether to forward.
unsafe impl GlobalAlloc for WorkerAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::shrink(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
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
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
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
    PEAK.fetch_max(outer, Relaxed);
}

/// Whether the running binary counts (it installed [`WorkerAllocator`]).
pub fn counting() -> bool {
    ENABLED.load(Relaxed)
}
