//! A byte stream in each direction over shared memory, between the world process
//! and one worker.
//!
//! Why not pipes: on a virtual machine a blocking round trip through the scheduler
//! costs tens of microseconds, and a call of artifact code is two of them (call and
//! result), plus two per host call. Here the waiting side spins for a moment — long
//! enough for a short call or a host call to come back — and only then parks on a
//! futex, so the common case never sleeps. Each side notes the core it waits on;
//! a waiter that finds the peer last waited on its own core yields between looks
//! instead of spinning, since then the peer is most likely queued for that very
//! core (the usual case when the cores are shared with another busy process).
//!
//! Each direction is a single-producer, single-consumer ring of bytes. The producer
//! advances `written`, the consumer advances `read`; each side bumps a sequence word
//! after moving its cursor and wakes the other through a futex on that word only if
//! the other said it is parked. The peer is not trusted: cursors that do not make
//! sense end the conversation rather than being followed.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    ptr,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// Bytes in each direction's ring.
pub const RING_BYTES: usize = 4 << 20;

/// Cursor and signalling words of one side of one ring, on a cache line of its own.
#[repr(C, align(64))]
struct Side {
    /// Bytes this side has moved past (written by the producer, read by the consumer).
    pos: AtomicU64,
    /// Bumped after every move of `pos`; the futex word the other side parks on.
    seq: AtomicU32,
    /// Set while the *other* side is parked on `seq`.
    parked: AtomicU32,
}

#[repr(C)]
struct Ring {
    written: Side,
    read: Side,
}

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ToWorker,
    ToHost,
}

/// Why a wait ended without data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// The deadline passed.
    Timeout,
    /// The peer is gone (or broke the protocol).
    PeerGone,
}

/// How to wait for the peer.
pub struct Wait<'a> {
    /// How long to spin before parking.
    pub spin: Duration,
    pub deadline: Option<Instant>,
    /// Asked while parked: is the peer still there?
    pub alive: &'a mut dyn FnMut() -> bool,
}

/// The shared region: two rings' control blocks, then their data.
pub struct Region {
    base: *mut u8,
    size: usize,
    /// Which side of the conversation this mapping is.
    host: bool,
}

/// Where each side last waited: the CPU number plus one (0: not yet known).
#[repr(C, align(64))]
struct Whereabouts {
    host: AtomicU32,
    worker: AtomicU32,
}

// SAFETY: the region is plain shared memory. Moving bytes takes `&mut self`, so one
// mapping has at most one writer and one reader at a time, each touching only the
// range the ring protocol hands it; through `&self` only atomics are read.
unsafe impl Send for Region {}
// SAFETY: see above: `&Region` allows nothing but atomic loads.
unsafe impl Sync for Region {}

const CONTROL_BYTES: usize = 4096;

impl Region {
    fn size() -> usize {
        CONTROL_BYTES + 2 * RING_BYTES
    }

    /// Creates a region for a new worker; the descriptor is what the worker maps.
    pub fn create() -> io::Result<(Region, OwnedFd)> {
        let name = c"ecology-sandbox";
        // SAFETY: memfd_create with a valid C string; the result is checked.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ftruncate on our own descriptor.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), Self::size() as libc::off_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let region = Self::map(fd.as_raw_fd(), true)?;
        Ok((region, fd))
    }

    /// Maps the region a worker inherited as descriptor `fd`.
    pub fn open(fd: RawFd) -> io::Result<Region> {
        Self::map(fd, false)
    }

    fn map(fd: RawFd, host: bool) -> io::Result<Region> {
        let size = Self::size();
        // SAFETY: a shared mapping of a descriptor of at least `size` bytes.
        let base =
            unsafe { libc::mmap(ptr::null_mut(), size, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0) };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Region { base: base.cast(), size, host })
    }

    /// This side's CPU word and the peer's.
    fn whereabouts(&self) -> (&AtomicU32, &AtomicU32) {
        // SAFETY: like `ring`: within the control block, 64-aligned, atomics only.
        let both = unsafe { &*self.base.add(2048).cast::<Whereabouts>() };
        if self.host { (&both.host, &both.worker) } else { (&both.worker, &both.host) }
    }

    fn ring(&self, direction: Direction) -> &Ring {
        let offset = match direction {
            Direction::ToWorker => 0,
            Direction::ToHost => 1024,
        };
        // SAFETY: the control block lies within the mapping, is suitably aligned
        // (page-aligned base plus a multiple of 64) and holds only atomics, which
        // are valid for any bit pattern (a fresh memfd is all zeros).
        unsafe { &*self.base.add(offset).cast::<Ring>() }
    }

    fn data(&self, direction: Direction) -> *mut u8 {
        let offset = match direction {
            Direction::ToWorker => CONTROL_BYTES,
            Direction::ToHost => CONTROL_BYTES + RING_BYTES,
        };
        // SAFETY: within the mapping.
        unsafe { self.base.add(offset) }
    }

    /// Writes all of `bytes` into the ring, waiting for room as needed, and wakes the
    /// reader if it is parked.
    pub fn write_all(&mut self, direction: Direction, bytes: &[u8], wait: &mut Wait) -> Result<(), WaitError> {
        self.write(direction, bytes, wait, true)
    }

    /// Like [`Region::write_all`], but leaves a parked reader asleep: for a message
    /// that will soon be followed by one worth waking for. (A parked reader still
    /// looks between naps, so nothing is lost.)
    pub fn write_all_quietly(&mut self, direction: Direction, bytes: &[u8], wait: &mut Wait) -> Result<(), WaitError> {
        self.write(direction, bytes, wait, false)
    }

    fn write(&mut self, direction: Direction, bytes: &[u8], wait: &mut Wait, wake: bool) -> Result<(), WaitError> {
        let ring = self.ring(direction);
        let data = self.data(direction);
        let mut done = 0;
        while done < bytes.len() {
            let seen = ring.read.seq.load(Ordering::SeqCst);
            let written = ring.written.pos.load(Ordering::Relaxed);
            let read = ring.read.pos.load(Ordering::Acquire);
            let used = written.checked_sub(read).filter(|u| *u <= RING_BYTES as u64).ok_or(WaitError::PeerGone)?;
            let free = RING_BYTES - used as usize;
            if free == 0 {
                wait_for_change(&ring.read.seq, seen, &ring.read.parked, self.whereabouts(), wait)?;
                continue;
            }
            let n = free.min(bytes.len() - done);
            copy_in(data, written, &bytes[done..done + n]);
            ring.written.pos.store(written + n as u64, Ordering::Release);
            done += n;
            // A partial write always wakes: the reader must drain before we can go on.
            if wake || done < bytes.len() {
                announce(&ring.written.seq, &ring.written.parked);
            } else {
                ring.written.seq.fetch_add(1, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    /// Fills all of `out` from the ring, waiting for bytes as needed.
    pub fn read_exact(&mut self, direction: Direction, out: &mut [u8], wait: &mut Wait) -> Result<(), WaitError> {
        let ring = self.ring(direction);
        let data = self.data(direction);
        let mut done = 0;
        while done < out.len() {
            let seen = ring.written.seq.load(Ordering::SeqCst);
            let read = ring.read.pos.load(Ordering::Relaxed);
            let written = ring.written.pos.load(Ordering::Acquire);
            let ready = written.checked_sub(read).filter(|r| *r <= RING_BYTES as u64).ok_or(WaitError::PeerGone)?;
            if ready == 0 {
                wait_for_change(&ring.written.seq, seen, &ring.written.parked, self.whereabouts(), wait)?;
                continue;
            }
            let n = (ready as usize).min(out.len() - done);
            copy_out(data, read, &mut out[done..done + n]);
            ring.read.pos.store(read + n as u64, Ordering::Release);
            announce(&ring.read.seq, &ring.read.parked);
            done += n;
        }
        Ok(())
    }

    /// Whether unread bytes are waiting in `direction` (without waiting).
    pub fn has_data(&self, direction: Direction) -> bool {
        let ring = self.ring(direction);
        ring.written.pos.load(Ordering::Acquire) != ring.read.pos.load(Ordering::Relaxed)
    }

    /// Notes the core this side waits on, as a wait does, for a side that waits by
    /// polling several regions instead: a peer on the same core then yields to it.
    pub fn note_waiting_here(&self) {
        self.whereabouts().0.store(this_cpu(), Ordering::Relaxed);
    }

    /// Whether the peer last waited on the core this side last noted: then it most
    /// likely runs there still, and spinning here keeps it from running.
    pub fn peer_shares_my_core(&self) -> bool {
        let (mine, theirs) = self.whereabouts();
        let cpu = mine.load(Ordering::Relaxed);
        cpu != 0 && theirs.load(Ordering::Relaxed) == cpu
    }

    /// Waits, as a read would, until bytes are waiting in `direction`, without
    /// reading them.
    pub fn wait_for_data(&self, direction: Direction, wait: &mut Wait) -> Result<(), WaitError> {
        let ring = self.ring(direction);
        let seen = ring.written.seq.load(Ordering::SeqCst);
        if self.has_data(direction) {
            return Ok(());
        }
        wait_for_change(&ring.written.seq, seen, &ring.written.parked, self.whereabouts(), wait)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe { libc::munmap(self.base.cast(), self.size) };
    }
}

/// Copies `bytes` into the ring's data at stream position `at`, wrapping around.
fn copy_in(data: *mut u8, at: u64, bytes: &[u8]) {
    let offset = (at % RING_BYTES as u64) as usize;
    let first = bytes.len().min(RING_BYTES - offset);
    // SAFETY: both ranges lie within the data area; the ring protocol gives this
    // range to the producer alone until it publishes it.
    unsafe {
        ptr::copy_nonoverlapping(bytes.as_ptr(), data.add(offset), first);
        ptr::copy_nonoverlapping(bytes.as_ptr().add(first), data, bytes.len() - first);
    }
}

/// Copies from the ring's data at stream position `at` into `out`, wrapping around.
fn copy_out(data: *const u8, at: u64, out: &mut [u8]) {
    let offset = (at % RING_BYTES as u64) as usize;
    let first = out.len().min(RING_BYTES - offset);
    // SAFETY: both ranges lie within the data area; the producer published them and
    // will not touch them until the consumer moves past them.
    unsafe {
        ptr::copy_nonoverlapping(data.add(offset), out.as_mut_ptr(), first);
        ptr::copy_nonoverlapping(data, out.as_mut_ptr().add(first), out.len() - first);
    }
}

/// Tells the other side a cursor moved, waking it if it is parked.
fn announce(seq: &AtomicU32, parked: &AtomicU32) {
    seq.fetch_add(1, Ordering::SeqCst);
    if parked.load(Ordering::SeqCst) != 0 {
        futex_wake(seq);
    }
}

/// How long a waiting side spins on the word alone before it starts yielding.
const HOT_SPIN: Duration = Duration::from_micros(2);

/// A gap between two looks of a spinning wait that means the waiter was preempted
/// (64 looks take well under a microsecond).
const PREEMPTED: Duration = Duration::from_micros(15);

/// The CPU this thread runs on, plus one (0 if unknown).
fn this_cpu() -> u32 {
    // SAFETY: sched_getcpu has no preconditions (glibc answers from the vDSO).
    let cpu = unsafe { libc::sched_getcpu() };
    if cpu < 0 { 0 } else { cpu as u32 + 1 }
}

/// Waits until `seq` is no longer `seen`: spinning first, then parked on the futex.
fn wait_for_change(
    seq: &AtomicU32,
    seen: u32,
    parked: &AtomicU32,
    (mine, theirs): (&AtomicU32, &AtomicU32),
    wait: &mut Wait,
) -> Result<(), WaitError> {
    let started = Instant::now();
    let mut last_look = started;
    let mut cpu = this_cpu();
    mine.store(cpu, Ordering::Relaxed);
    let mut spins = 0u32;
    while seq.load(Ordering::Acquire) == seen {
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(64) {
            let now = Instant::now();
            let waited = now.duration_since(started);
            // A gap between two looks means the core was taken from us while we
            // spun: it is shared with something busy. Parked, we are woken the
            // moment the peer moves (a woken task gets the core before one that
            // kept running); spinning on, we would wait out the other's turn.
            if waited >= wait.spin || now.duration_since(last_look) >= PREEMPTED {
                return park(seq, seen, parked, wait);
            }
            last_look = now;
            // When the peer last waited on this same core, it is most likely
            // queued behind us for it (the cores are shared with something else,
            // or the scheduler put both here): spinning would hold the core it
            // needs until we park, so give it away between looks. A peer on
            // another core is left to run and we spin, which costs no one.
            if waited >= HOT_SPIN && cpu != 0 && theirs.load(Ordering::Relaxed) == cpu {
                // SAFETY: sched_yield has no preconditions.
                unsafe {
                    libc::sched_yield();
                }
                cpu = this_cpu();
                mine.store(cpu, Ordering::Relaxed);
                continue;
            }
        }
        std::hint::spin_loop();
    }
    Ok(())
}

fn park(seq: &AtomicU32, seen: u32, parked: &AtomicU32, wait: &mut Wait) -> Result<(), WaitError> {
    loop {
        // Say we are parked, then look once more: a producer that moved after our
        // last look either sees the flag and wakes us, or we see its move here.
        parked.store(1, Ordering::SeqCst);
        if seq.load(Ordering::SeqCst) != seen {
            parked.store(0, Ordering::SeqCst);
            return Ok(());
        }
        let slice = match wait.deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    parked.store(0, Ordering::SeqCst);
                    return Err(WaitError::Timeout);
                }
                left.min(Duration::from_millis(10))
            }
            None => Duration::from_millis(100),
        };
        futex_wait(seq, seen, slice);
        parked.store(0, Ordering::SeqCst);
        if seq.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        if !(wait.alive)() {
            return Err(WaitError::PeerGone);
        }
    }
}

fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let timeout = libc::timespec { tv_sec: timeout.as_secs() as libc::time_t, tv_nsec: timeout.subsec_nanos() as _ };
    // SAFETY: FUTEX_WAIT on a valid, aligned u32 in shared memory (not PRIVATE:
    // the waker is another process); the kernel only reads it.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, &timeout as *const libc::timespec);
    }
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a valid, aligned u32 in shared memory.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_cross_and_wrap_around() {
        let (mut region, fd) = Region::create().unwrap();
        // A second mapping of the same memory, as the worker process has.
        let mut other = Region::open(fd.as_raw_fd()).unwrap();
        let mut alive = || true;
        let mut wait = Wait { spin: Duration::from_micros(10), deadline: None, alive: &mut alive };
        // Bigger than the ring: the writer must wait for the reader.
        let message: Vec<u8> = (0..RING_BYTES * 2 + 12345).map(|i| (i % 251) as u8).collect();
        let expected = message.clone();
        let writer = std::thread::spawn(move || {
            let mut alive = || true;
            let mut wait = Wait { spin: Duration::from_micros(10), deadline: None, alive: &mut alive };
            other.write_all(Direction::ToHost, &message, &mut wait).unwrap();
        });
        let mut out = vec![0; expected.len()];
        region.read_exact(Direction::ToHost, &mut out, &mut wait).unwrap();
        writer.join().unwrap();
        assert_eq!(out, expected);
        assert!(!region.has_data(Direction::ToHost));
    }

    #[test]
    fn waiting_without_data_times_out() {
        let (mut region, _fd) = Region::create().unwrap();
        let mut alive = || true;
        let deadline = Some(Instant::now() + Duration::from_millis(30));
        let mut wait = Wait { spin: Duration::from_micros(10), deadline, alive: &mut alive };
        let mut out = [0u8; 4];
        assert_eq!(region.read_exact(Direction::ToWorker, &mut out, &mut wait), Err(WaitError::Timeout));
        let mut dead = || false;
        let mut wait = Wait { spin: Duration::from_micros(10), deadline: None, alive: &mut dead };
        assert_eq!(region.read_exact(Direction::ToWorker, &mut out, &mut wait), Err(WaitError::PeerGone));
    }
}
