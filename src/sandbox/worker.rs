//! The sandbox worker: the `ecology` binary started as `ecology sandbox-worker`.
//!
//! It runs artifact code with `boa_engine` and nothing else: no files, no network, no
//! clock but the simulated one, no randomness but the seed it is given. The process
//! is the safety boundary — its heap is capped by the counting allocator, its address
//! space and CPU by rlimits, and the host kills it when a call outlives its deadline —
//! because boa cannot be stopped in-process by everything hostile code can do.
//!
//! One boa `Context` serves every call. Before the first call everything a call can
//! reach is frozen ("lockdown": the global object, and the prototypes only values
//! lead to, of iterators, generators and async functions), `eval`/`Function` are
//! refused, the symbol registry and weak references are removed and promise jobs are
//! dropped unrun, so no call can leave state behind in shared objects. What a call
//! leaves in the heap is garbage; each top-level call gets the whole heap limit from
//! where the last one ended, and a worker holding too much after collecting asks the
//! host to replace it ([`Leftovers`]).
//!
//! Each artifact's code is compiled once, as a strict-mode function around the source
//! that returns the requested entry function; calling it per invocation gives fresh
//! top-level bindings every time. Artifact code therefore keeps no hidden state
//! between calls: everything it remembers is in the world, where checkpoints can see
//! it.
//!
//! Code that imports other artifacts' code ([`super::modules`]) is compiled the same
//! way, its imports bound from `__ecology_import__`; the same compiled function,
//! asked for entry `-1`, runs a library's top level and returns its namespace. The
//! host sends, with each call, every module the call may import; a call evaluates
//! each module at most once, the first time something imports it, and forgets the
//! instances when it ends, so a library keeps no state between calls either.
//!
//! CPU is accounted in VM instructions (boa's instruction counter): deterministic,
//! unlike time. Loops are stopped deterministically by the per-loop iteration limit;
//! what no limit can stop (a catastrophic regex, exponential recursion) the host's
//! watchdog stops by killing the process.

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    io,
    rc::Rc,
    time::Duration,
};

use boa_engine::{
    Context, JsError, JsNativeError, JsObject, JsResult, JsString, JsValue, NativeFunction, Source,
    context::{Clock, HostHooks, time::JsInstant},
    error::EngineError,
    job::IdleJobExecutor,
    js_string,
    object::{ObjectInitializer, builtins::JsArray},
    property::Attribute,
    realm::Realm,
};

use super::{
    alloc, js_json, modules,
    process::WORKER_SHM_FD,
    protocol::{
        CallMode, CallRequest, CallResult, Entry, Failure, FailureKind, FromWorker, HostCall, MAX_FRAME_BYTES,
        ToWorker, decode,
    },
    shm::{Direction, Region, Wait},
};
use crate::kernel::error::bound_text;

/// How long a worker spins waiting for the host before parking: the host answers
/// host calls and sends the next call of a busy chain within microseconds.
const WORKER_SPIN: Duration = Duration::from_micros(60);

/// Limits a worker applies to itself at start-up.
#[derive(Debug, Clone, Copy)]
pub struct WorkerLimits {
    /// Heap the worker may grow by, in bytes.
    pub heap_bytes: usize,
    /// Nested JS calls allowed (boa's recursion limit).
    pub recursion: usize,
    /// Stack of the thread that runs JS, in bytes.
    pub stack_bytes: usize,
    /// CPU seconds the process may use in its lifetime (a backstop).
    pub cpu_secs: u64,
}

impl Default for WorkerLimits {
    fn default() -> Self {
        Self { heap_bytes: 512 << 20, recursion: 1024, stack_bytes: 256 << 20, cpu_secs: 24 * 3600 }
    }
}

/// Runs a worker until its host goes away. Returns the process exit code.
pub fn main(limits: WorkerLimits) -> i32 {
    // Die with the host: nobody else will ever talk to us.
    // SAFETY: prctl and getppid have no memory-safety preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() == 1 {
            return 6;
        }
    }
    apply_rlimits(&limits);
    let js = std::thread::Builder::new().name("js".into()).stack_size(limits.stack_bytes).spawn(move || serve(limits));
    match js.map(|handle| handle.join()) {
        Ok(Ok(Ok(()))) => 0,
        Ok(Ok(Err(_))) => 3,
        _ => 4,
    }
}

fn apply_rlimits(limits: &WorkerLimits) {
    // Address space: the heap limit, the JS thread's stack, the shared region, and
    // room for the binary, the allocator's arenas and the compiled code. The counting
    // allocator is the precise limit; this one catches whatever escapes it.
    // The room is reserved address space rather than memory (the allocator maps large
    // regions up front), so a small heap limit does not make it any smaller.
    let room = limits.heap_bytes.max(512 << 20) + (1 << 30);
    let address_space = (room + limits.stack_bytes + 2 * super::shm::RING_BYTES) as u64;
    set_rlimit(libc::RLIMIT_AS, address_space, address_space);
    set_rlimit(libc::RLIMIT_CPU, limits.cpu_secs, limits.cpu_secs + 10);
    // A worker that aborts must not leave a core file behind.
    set_rlimit(libc::RLIMIT_CORE, 0, 0);
}

fn set_rlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) {
    let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: setrlimit reads the struct we pass; failure leaves the limit as it was.
    unsafe { libc::setrlimit(resource, &limit) };
}

struct Io {
    region: Region,
    out: Vec<u8>,
    buf: Vec<u8>,
}

fn host_alive() -> bool {
    // SAFETY: getppid has no preconditions. Orphans are adopted by init (pid 1).
    unsafe { libc::getppid() != 1 }
}

/// What a call in progress needs to know about itself.
struct Frame {
    mode: CallMode,
    /// Instructions executed by calls nested in this one.
    nested_instructions: u64,
    rng: u64,
    /// The compiled code of every module this call may import, by artifact id.
    modules: HashMap<String, JsObject>,
    /// Namespaces of the modules this call has imported (`None` while one is being
    /// evaluated): each module is evaluated once per call, however often imported.
    instances: HashMap<String, Option<JsObject>>,
}

thread_local! {
    static IO: RefCell<Option<Io>> = const { RefCell::new(None) };
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    /// Compiled code by hash; code that does not compile keeps its failure, so that
    /// every call of it fails alike whatever the worker ran before.
    static CODE: RefCell<HashMap<u64, Result<JsObject, Failure>>> = RefCell::new(HashMap::new());
    static NOW_MS: Cell<i64> = const { Cell::new(0) };
}

fn send(message: &FromWorker) -> io::Result<()> {
    send_waking(message, true)
}

/// Sends, waking the host only if `wake`: results in the middle of a batch let it
/// sleep until the batch is done.
fn send_waking(message: &FromWorker, wake: bool) -> io::Result<()> {
    IO.with_borrow_mut(|io| {
        let Some(io) = io else { return Err(io::Error::other("no channel to the host")) };
        io.out.clear();
        io.out.extend_from_slice(&[0; 4]);
        postcard::to_io(message, &mut io.out).map_err(io::Error::other)?;
        let len = (io.out.len() - 4) as u32;
        io.out[..4].copy_from_slice(&len.to_le_bytes());
        let mut alive = host_alive;
        let mut wait = Wait { spin: WORKER_SPIN, deadline: None, alive: &mut alive };
        let written = if wake {
            io.region.write_all(Direction::ToHost, &io.out, &mut wait)
        } else {
            io.region.write_all_quietly(Direction::ToHost, &io.out, &mut wait)
        };
        written.map_err(|e| io::Error::other(format!("{e:?}")))
    })
}

fn receive() -> io::Result<ToWorker> {
    IO.with_borrow_mut(|io| {
        let Some(io) = io else { return Err(io::Error::other("no channel to the host")) };
        let mut alive = host_alive;
        let mut wait = Wait { spin: WORKER_SPIN, deadline: None, alive: &mut alive };
        let mut len = [0u8; 4];
        let gone = |e| io::Error::new(io::ErrorKind::UnexpectedEof, format!("{e:?}"));
        io.region.read_exact(Direction::ToWorker, &mut len, &mut wait).map_err(gone)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a frame of {len} bytes")));
        }
        io.buf.resize(len, 0);
        io.region.read_exact(Direction::ToWorker, &mut io.buf, &mut wait).map_err(gone)?;
        decode(&io.buf)
    })
}

fn serve(limits: WorkerLimits) -> io::Result<()> {
    IO.set(Some(Io { region: Region::open(WORKER_SHM_FD)?, out: Vec::with_capacity(1 << 12), buf: Vec::new() }));
    let mut context = new_context(&limits).map_err(|e| io::Error::other(e.to_string()))?;
    // Count from here: what the engine needs to exist is not any call's usage.
    alloc::enable(limits.heap_bytes);
    let mut leftovers = Leftovers::new(&limits);
    send(&FromWorker::Ready)?;
    loop {
        let message = match receive() {
            Ok(message) => message,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        match message {
            ToWorker::Call(request) => {
                let result = leftovers.run(&mut context, request);
                send(&FromWorker::Done(result))?;
            }
            ToWorker::Batch(requests) => {
                let last = requests.len().saturating_sub(1);
                for (i, request) in requests.into_iter().enumerate() {
                    let result = leftovers.run(&mut context, request);
                    send_waking(&FromWorker::Done(result), i == last)?;
                }
            }
            ToWorker::Reply(_) => return Err(io::Error::other("a reply with no host call pending")),
        }
    }
}

/// What top-level calls leave in the worker's heap, kept from mattering to the next.
///
/// Nothing a call makes is reachable once it ends (the intrinsics are frozen, promise
/// jobs are dropped unrun, there is no symbol registry and no weak reference), so
/// what stays is garbage, the compiled code the host asked the worker to keep, and
/// whatever the engine caches. Each top-level call may grow the heap by the worker's
/// whole heap limit, counted from where the last call left it, so what earlier calls
/// left does not shrink it. Garbage is collected once it passes a step; a worker
/// that still holds more than a quarter of its heap limit afterwards asks to be
/// replaced.
struct Leftovers {
    heap_bytes: isize,
    collect_at: isize,
}

/// Heap growth between collections of what top-level calls left.
const COLLECT_STEP: isize = 16 << 20;

impl Leftovers {
    fn new(limits: &WorkerLimits) -> Self {
        let heap_bytes = isize::try_from(limits.heap_bytes).unwrap_or(isize::MAX);
        Self { heap_bytes, collect_at: alloc::live().saturating_add(COLLECT_STEP) }
    }

    /// Runs a top-level call, with a heap limit of its own, and looks at what it left.
    fn run(&mut self, context: &mut Context, request: CallRequest) -> CallResult {
        alloc::set_limit(alloc::live().max(0).saturating_add(self.heap_bytes));
        let mut result = run_call(context, request);
        if alloc::live() > self.collect_at {
            boa_gc::force_collect();
            let live = alloc::live();
            self.collect_at = live.saturating_add(COLLECT_STEP);
            result.retire = live > self.heap_bytes / 4;
        }
        result
    }
}

/// Host hooks: no `eval`, no `new Function`.
struct Hooks;

impl HostHooks for Hooks {
    fn ensure_can_compile_strings(
        &self,
        _realm: Realm,
        _parameters: &[JsString],
        _body: &JsString,
        _direct: bool,
        _context: &mut Context,
    ) -> JsResult<()> {
        Err(JsNativeError::eval().with_message("eval and new Function are not available to artifact code").into())
    }
}

/// `Date` reads the simulated clock.
struct SimulatedClock;

impl Clock for SimulatedClock {
    fn now(&self) -> JsInstant {
        let ms = NOW_MS.get().max(0) as u64;
        JsInstant::new(ms / 1000, ((ms % 1000) * 1_000_000) as u32)
    }

    fn system_time_millis(&self) -> i64 {
        NOW_MS.get()
    }
}

/// Freezes everything a call can reach, so that no call can change what the next one
/// sees: what is reachable from the global object, from every kind of value the
/// language makes (the prototypes of iterators, generators and async functions are
/// reachable only through such values), and from the intrinsics the host passes in
/// (those the engine keeps and no value hands out). Removes what would outlive a
/// call out of sight of the freeze — the symbol registry is one table for the whole
/// process — and what would make results depend on the garbage collector.
/// `tests/it/reachable.js` checks the result by calling every built-in.
const LOCKDOWN: &str = r#"
(function (intrinsics) {
  delete globalThis.WeakRef;
  delete globalThis.FinalizationRegistry;
  delete Symbol.for;
  delete Symbol.keyFor;
  const seen = new Set();
  const freeze = (value) => {
    if (value === null || (typeof value !== "object" && typeof value !== "function") || seen.has(value)) return;
    seen.add(value);
    Object.freeze(value);
    for (const key of Reflect.ownKeys(value)) {
      const d = Object.getOwnPropertyDescriptor(value, key);
      if (d === undefined) continue;
      if ("value" in d) freeze(d.value); else { freeze(d.get); freeze(d.set); }
    }
    freeze(Object.getPrototypeOf(value));
  };
  const values = [
    () => (function () { "use strict"; return arguments; })(),
    () => function* () {},
    () => (function* () {})(),
    () => async function () {},
    () => async function* () {},
    () => (async function* () {})(),
    () => [][Symbol.iterator](),
    () => new Map()[Symbol.iterator](),
    () => new Set()[Symbol.iterator](),
    () => ""[Symbol.iterator](),
    () => /a/g[Symbol.matchAll](""),
    () => [].values().map((x) => x),
    () => Iterator.from({ next() { return { done: true }; } }),
  ];
  freeze(globalThis);
  for (const make of values) {
    try { freeze(make()); } catch (e) { /* a kind this engine does not have */ }
  }
  freeze(intrinsics);
})
"#;

/// A context as workers run code in: host functions installed, intrinsics frozen.
/// (Public for benchmarks of its cost.)
pub fn new_context(limits: &WorkerLimits) -> JsResult<Context> {
    let mut context = Context::builder()
        .host_hooks(Rc::new(Hooks))
        // Promise jobs are dropped as they are queued: nothing runs after a call has
        // returned, and nothing a call queued is kept for the next.
        .job_executor(Rc::new(IdleJobExecutor))
        .clock(Rc::new(SimulatedClock))
        // One long budget for the life of the worker; calls are charged the
        // difference, and never come near the end of it.
        .instructions_remaining(usize::MAX / 2)
        .build()?;
    context.runtime_limits_mut().set_recursion_limit(limits.recursion);
    install_host_functions(&mut context)?;
    let lockdown = context.eval(Source::from_bytes(LOCKDOWN))?;
    let objects = context.intrinsics().objects();
    let iterators = objects.iterator_prototypes();
    let intrinsics = [
        iterators.async_iterator(),
        iterators.async_from_sync_iterator(),
        iterators.array(),
        iterators.set(),
        iterators.string(),
        iterators.regexp_string(),
        iterators.map(),
        iterators.iterator_helper(),
        iterators.wrap_for_valid_iterator(),
        objects.generator(),
        objects.async_generator(),
        objects.throw_type_error().into(),
    ];
    let intrinsics = JsArray::from_iter(intrinsics.into_iter().map(JsValue::from), &mut context);
    let lockdown = lockdown.as_callable().ok_or_else(|| JsNativeError::typ().with_message("lockdown"))?;
    lockdown.call(&JsValue::undefined(), &[intrinsics.into()], &mut context)?;
    Ok(context)
}

fn install_host_functions(context: &mut Context) -> JsResult<()> {
    macro_rules! host_fn {
        ($call:expr) => {
            NativeFunction::from_fn_ptr(|_this, args, context| host_call($call, args, context))
        };
    }
    context.register_global_callable(js_string!("invoke"), 3, host_fn!(HostCall::Invoke))?;
    context.register_global_callable(js_string!("transfer"), 3, host_fn!(HostCall::Transfer))?;
    context.register_global_callable(js_string!("write"), 3, host_fn!(HostCall::Write))?;
    context.register_global_callable(js_string!("read"), 1, host_fn!(HostCall::Read))?;
    context.register_global_callable(js_string!("llm"), 1, host_fn!(HostCall::Llm))?;
    let loader = NativeFunction::from_fn_ptr(|_this, args, context| import_module(args, context));
    context.register_global_callable(JsString::from(modules::LOADER), 2, loader)?;
    let kernel = ObjectInitializer::new(context)
        .function(host_fn!(HostCall::Balance), js_string!("balance"), 1)
        .function(host_fn!(HostCall::Resource), js_string!("resource"), 2)
        .function(host_fn!(HostCall::Artifact), js_string!("artifact"), 1)
        .function(host_fn!(HostCall::Query), js_string!("query"), 1)
        .function(host_fn!(HostCall::Events), js_string!("events"), 1)
        .function(host_fn!(HostCall::Invocations), js_string!("invocations"), 1)
        .function(host_fn!(HostCall::Quota), js_string!("quota"), 2)
        .build();
    context.register_global_property(js_string!("kernel"), kernel, Attribute::READONLY | Attribute::NON_ENUMERABLE)?;
    // Math.random draws from the call's seeded stream.
    let math = context.intrinsics().objects().math();
    let random = NativeFunction::from_fn_ptr(|_, _, _| Ok(JsValue::from(next_random())));
    let random = random.to_js_function(context.realm());
    math.set(js_string!("random"), random, true, context)?;
    Ok(())
}

/// SplitMix64 over the current frame's state, as a double in [0, 1).
fn next_random() -> f64 {
    FRAMES.with_borrow_mut(|frames| {
        let Some(frame) = frames.last_mut() else { return 0.0 };
        frame.rng = frame.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = frame.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// A JS error carrying the kernel's error code, for `catch (e) { e.code }`.
fn kernel_error(error_json: &str, context: &mut Context) -> JsError {
    let parsed: serde_json::Value = serde_json::from_str(error_json).unwrap_or_default();
    let message = parsed.get("message").and_then(|m| m.as_str()).unwrap_or("host call failed").to_owned();
    let error = JsNativeError::error().with_message(message).into_opaque(context);
    for key in ["code", "retriable", "retry_after", "details"] {
        if let Some(value) = parsed.get(key)
            && let Ok(value) = JsValue::from_json(value, context)
        {
            let _ = error.set(JsString::from(key), value, false, context);
        }
    }
    JsError::from_opaque(error.into())
}

/// A host function: send the call to the host and wait for its answer, running
/// any nested call the host sends meanwhile.
fn host_call(call: HostCall, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let mode = FRAMES.with_borrow(|frames| frames.last().map_or(CallMode::Look, |f| f.mode));
    if !call.allowed_in(mode) {
        let why = match mode {
            CallMode::Check => "a contract may look and invoke, but not transfer, write or read",
            CallMode::Look => "an agent's step may only look; it acts by returning intents",
            CallMode::Act => "",
        };
        let message = format!("{} is not available here: {why}", call.name());
        return Err(JsNativeError::error().with_message(message).into());
    }
    let mut json_args = Vec::with_capacity(args.len());
    for arg in args {
        let mut json = arg.to_json(context)?.unwrap_or(serde_json::Value::Null);
        whole_numbers(&mut json);
        json_args.push(json);
    }
    let args = serde_json::to_string(&json_args).map_err(|e| JsNativeError::typ().with_message(e.to_string()))?;
    send(&FromWorker::Rpc { call, args }).map_err(lost_host)?;
    loop {
        match receive().map_err(lost_host)? {
            ToWorker::Reply(Ok(value)) => {
                return js_json::parse(&value, context)
                    .map_err(|e| JsNativeError::typ().with_message(e.to_string()).into());
            }
            ToWorker::Reply(Err(error)) => return Err(kernel_error(&error, context)),
            ToWorker::Call(request) => {
                let result = run_call(context, request);
                send(&FromWorker::Done(result)).map_err(lost_host)?;
            }
            ToWorker::Batch(_) => {
                return Err(JsNativeError::error().with_message("protocol error: a batch inside a call").into());
            }
        }
    }
}

fn lost_host(error: io::Error) -> JsError {
    // Without the host there is nothing left to do.
    eprintln!("sandbox worker: lost the host: {error}");
    std::process::exit(5)
}

/// A failure of the call; its message is cut to the bound of all text from code
/// (`kernel::error::MAX_TEXT_BYTES`) before it crosses to the host.
fn failure(kind: FailureKind, message: impl Into<String>) -> Failure {
    let mut message = message.into();
    bound_text(&mut message);
    Failure { kind, message }
}

/// Runs one call, nested or not, and accounts for it.
fn run_call(context: &mut Context, request: CallRequest) -> CallResult {
    let failed = |failure: Failure| CallResult {
        id: request.id,
        outcome: Err(failure),
        instructions: 0,
        peak_bytes: 0,
        retire: false,
    };
    // What this call needs is found before anything is forgotten: the host may have
    // evicted from its list a module this very call sends no code for.
    let loaded = load_call(context, &request);
    CODE.with_borrow_mut(|code| {
        for hash in &request.forget {
            code.remove(hash);
        }
    });
    let (wrapper, modules) = match loaded {
        Ok(loaded) => loaded,
        Err(failure) => return failed(failure),
    };

    FRAMES.with_borrow_mut(|frames| {
        frames.push(Frame {
            mode: request.mode,
            nested_instructions: 0,
            rng: request.seed,
            modules,
            instances: HashMap::new(),
        })
    });
    let outer_now = NOW_MS.replace(request.now_ms as i64);
    let outer_loop_limit = context.runtime_limits().loop_iteration_limit();
    context.runtime_limits_mut().set_loop_iteration_limit(request.loop_limit);
    let outer_peak = alloc::start_peak();
    let start_live = alloc::live();
    let start_instructions = context.instructions_remaining();

    let outcome = run_entry(context, &wrapper, &request);

    let total = start_instructions.saturating_sub(context.instructions_remaining()) as u64;
    let peak_bytes = (alloc::peak() - start_live).max(0) as u64;
    alloc::resume_peak(outer_peak);
    context.runtime_limits_mut().set_loop_iteration_limit(outer_loop_limit);
    NOW_MS.set(outer_now);
    let nested = FRAMES.with_borrow_mut(|frames| {
        let frame = frames.pop();
        if let Some(parent) = frames.last_mut() {
            parent.nested_instructions += total;
        }
        frame.map_or(0, |f| f.nested_instructions)
    });
    CallResult { id: request.id, outcome, instructions: total.saturating_sub(nested), peak_bytes, retire: false }
}

/// The compiled code of a call and of every module it may import, by artifact id.
fn load_call(context: &mut Context, request: &CallRequest) -> Result<(JsObject, HashMap<String, JsObject>), Failure> {
    let wrapper = load(context, request.code_hash, request.code.as_deref())?;
    let mut modules = HashMap::with_capacity(request.modules.len());
    for module in &request.modules {
        let compiled = load(context, module.code_hash, module.code.as_deref()).map_err(|compiled| {
            failure(
                FailureKind::Compile,
                format!("imported artifact:{} does not compile: {}", module.id, compiled.message),
            )
        })?;
        modules.insert(module.id.clone(), compiled);
    }
    Ok((wrapper, modules))
}

/// The compiled form of the code of `hash`: cached, or compiled from `code`.
fn load(context: &mut Context, hash: u64, code: Option<&str>) -> Result<JsObject, Failure> {
    if let Some(compiled) = CODE.with_borrow(|cache| cache.get(&hash).cloned()) {
        return compiled;
    }
    let Some(code) = code else {
        return Err(failure(FailureKind::Compile, "the host sent no code for an unknown hash"));
    };
    let compiled = compile(context, code);
    CODE.with_borrow_mut(|cache| cache.insert(hash, compiled.clone()));
    compiled
}

/// Compiles an artifact's code into a function that, given an entry number, runs
/// the code's top level and returns that entry function, or (given `-1`) the
/// namespace of what it exports.
fn compile(context: &mut Context, code: &str) -> Result<JsObject, Failure> {
    let module = modules::parse(code).map_err(|e| failure(FailureKind::Compile, e.to_string()))?;
    if !module.is_plain() {
        check_module(code, &module)?;
    }
    // The prelude shares the line of "use strict", so the code's lines keep their
    // numbers in error messages.
    let source = format!(
        "(function (__ecology_entry__) {{\n\"use strict\"; {prelude}\n{body}\n;\nswitch (__ecology_entry__) {{\n\
         case -1: return {namespace};\n\
         case 0: return typeof run === \"function\" ? run : undefined;\n\
         case 1: return typeof check_permission === \"function\" ? check_permission : undefined;\n\
         case 2: return typeof step === \"function\" ? step : undefined;\n}}\n}})",
        prelude = module.prelude(),
        body = module.body(code),
        namespace = module.namespace(),
    );
    let compiled = context.eval(Source::from_bytes(source.as_bytes()));
    let wrapper = match compiled {
        Ok(value) => value.as_object().filter(|o| o.is_callable()),
        Err(error) => return Err(failure(FailureKind::Compile, describe(error, context))),
    };
    wrapper.ok_or_else(|| failure(FailureKind::Compile, "the code did not compile to a function"))
}

/// Checks what the scanner read of a module against boa's parse of it as a module:
/// the same imports, bound the same way, and the same exports. The scanner does not
/// parse JavaScript, so this is what turns any misreading into a compile error.
fn check_module(code: &str, module: &modules::Module) -> Result<(), Failure> {
    use boa_engine::{
        ast::{declaration::ImportName, scope::Scope},
        interner::Interner,
        parser::Parser,
    };
    let mut interner = Interner::default();
    let parsed = Parser::new(Source::from_bytes(code))
        .parse_module(&Scope::new_global(), &mut interner)
        .map_err(|e| failure(FailureKind::Compile, e.to_string()))?;
    let items = parsed.items();
    let text = |sym| interner.resolve_expect(sym).to_string();
    let mut theirs: Vec<(String, Option<String>, String)> = items
        .import_entries()
        .iter()
        .map(|entry| {
            let name = match entry.import_name() {
                ImportName::Namespace => None,
                ImportName::Name(sym) => Some(text(sym)),
            };
            (text(entry.module_request()), name, text(entry.local_name().sym()))
        })
        .collect();
    let mut ours: Vec<(String, Option<String>, String)> = Vec::new();
    for import in &module.imports {
        let specifier = format!("{}{}", modules::SCHEME, import.id);
        for (name, local) in &import.names {
            ours.push((specifier.clone(), Some(name.clone()), local.clone()));
        }
        if let Some(namespace) = &import.namespace {
            ours.push((specifier.clone(), None, namespace.clone()));
        }
    }
    theirs.sort();
    ours.sort();
    let mut their_requests: Vec<String> = items.requests().iter().map(|&sym| text(sym)).collect();
    let mut our_requests: Vec<String> =
        module.dependencies().iter().map(|id| format!("{}{}", modules::SCHEME, id)).collect();
    their_requests.sort();
    our_requests.sort();
    let mut their_exports: Vec<String> = items.exported_names().into_iter().map(text).collect();
    let mut our_exports: Vec<String> = module.exports.iter().map(|e| e.name.clone()).collect();
    their_exports.sort();
    our_exports.sort();
    if theirs != ours || their_requests != our_requests || their_exports != our_exports {
        return Err(failure(
            FailureKind::Compile,
            "the imports and exports of this code could not be read with certainty: write them as plain \
             `import … from \"artifact:id\"` and `export` statements at the top level",
        ));
    }
    Ok(())
}

/// `__ecology_import__(id, names)`: the namespace of module `id` in the current
/// call, evaluated the first time the call imports it; `names` must all be exported.
fn import_module(args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let id = args.first().cloned().unwrap_or_default().to_string(context)?.to_std_string_escaped();
    let (instance, compiled) = FRAMES.with_borrow(|frames| match frames.last() {
        Some(frame) => (frame.instances.get(&id).cloned(), frame.modules.get(&id).cloned()),
        None => (None, None),
    });
    let namespace = match instance {
        Some(Some(namespace)) => namespace,
        Some(None) => {
            let message = format!("artifact:{id} is imported while its own imports are evaluated (a cycle)");
            return Err(JsNativeError::syntax().with_message(message).into());
        }
        None => {
            let Some(compiled) = compiled else {
                let message = format!("artifact:{id} is not among the modules resolved for this call");
                return Err(JsNativeError::syntax().with_message(message).into());
            };
            set_instance(&id, None);
            let namespace = compiled.call(&JsValue::undefined(), &[JsValue::from(-1)], context)?;
            let Some(namespace) = namespace.as_object() else {
                return Err(JsNativeError::typ().with_message(format!("artifact:{id} gave no namespace")).into());
            };
            set_instance(&id, Some(namespace.clone()));
            namespace
        }
    };
    if let Some(names) = args.get(1).and_then(JsValue::as_object) {
        let names = boa_engine::object::builtins::JsArray::from_object(names)?;
        for i in 0..names.length(context)? {
            let name = names.get(i, context)?.to_string(context)?;
            if !namespace.has_own_property(name.clone(), context)? {
                let message = format!("artifact:{id} does not export {}", name.to_std_string_escaped());
                return Err(JsNativeError::syntax().with_message(message).into());
            }
        }
    }
    Ok(namespace.into())
}

fn set_instance(id: &str, namespace: Option<JsObject>) {
    FRAMES.with_borrow_mut(|frames| {
        if let Some(frame) = frames.last_mut() {
            frame.instances.insert(id.to_owned(), namespace);
        }
    });
}

fn entry_number(entry: Entry) -> i32 {
    match entry {
        Entry::Run => 0,
        Entry::CheckPermission => 1,
        Entry::Step => 2,
    }
}

fn run_entry(context: &mut Context, wrapper: &JsObject, request: &CallRequest) -> Result<String, Failure> {
    let name = request.entry.function_name();
    let thrown = |error: JsError, context: &mut Context| {
        let kind = match error.as_engine() {
            Some(EngineError::RuntimeLimit(_)) => FailureKind::Limit,
            _ => FailureKind::Thrown,
        };
        failure(kind, describe(error, context))
    };
    let entry = wrapper
        .call(&JsValue::undefined(), &[JsValue::from(entry_number(request.entry))], context)
        .map_err(|e| thrown(e, context))?;
    let Some(entry) = entry.as_object().filter(|o| o.is_callable()) else {
        return Err(failure(FailureKind::NoEntry, format!("the code defines no function {name}")));
    };
    let input = json_arg(&request.input, context)?;
    let ctx = json_arg(&request.ctx, context)?;
    let result = entry.call(&JsValue::undefined(), &[input, ctx], context).map_err(|e| thrown(e, context))?;
    // `undefined` means "nothing" (null); a function or a symbol is not a value at all.
    if result.is_symbol() || result.as_object().is_some_and(|o| o.is_callable()) {
        return Err(failure(FailureKind::NotJson, format!("{name} returned a {}, not JSON", result.type_of())));
    }
    let mut json = match result.to_json(context) {
        Ok(Some(json)) => json,
        Ok(None) => serde_json::Value::Null,
        Err(error) => {
            return Err(failure(
                FailureKind::NotJson,
                format!("{name} returned no JSON value: {}", describe(error, context)),
            ));
        }
    };
    whole_numbers(&mut json);
    let text = serde_json::to_string(&json).map_err(|e| failure(FailureKind::NotJson, e.to_string()))?;
    if text.len() as u64 > request.result_limit {
        return Err(failure(
            FailureKind::TooLarge,
            format!("{name} returned {} bytes of JSON; the limit is {}", text.len(), request.result_limit),
        ));
    }
    Ok(text)
}

fn json_arg(text: &str, context: &mut Context) -> Result<JsValue, Failure> {
    js_json::parse(text, context).map_err(|e| failure(FailureKind::Thrown, format!("bad input from the host: {e}")))
}

/// A readable message for a JS error.
fn describe(error: JsError, context: &mut Context) -> String {
    if let Some(engine) = error.as_engine() {
        return engine.to_string();
    }
    match error.try_native(context) {
        Ok(native) => native.to_string(),
        Err(_) => error
            .as_opaque()
            .map(|value| value.to_string(context).map(|s| s.to_std_string_escaped()).unwrap_or_default())
            .unwrap_or_else(|| error.to_string()),
    }
}

/// Writes whole numbers as integers, as `JSON.stringify` does: JavaScript has one
/// number type, and boa hands out the result of arithmetic (`20 * 1.5`) as a float,
/// which a kernel argument declared as a count would refuse as `30.0`.
fn whole_numbers(value: &mut serde_json::Value) {
    /// Integers a double holds exactly (`Number.MAX_SAFE_INTEGER`).
    const SAFE: f64 = 9_007_199_254_740_991.0;
    match value {
        serde_json::Value::Number(n) => {
            if let Some(x) = n.as_f64().filter(|x| n.is_f64() && x.fract() == 0.0 && x.abs() <= SAFE) {
                // In range and whole, so the casts are exact.
                *n = if x >= 0.0 { (x as u64).into() } else { (x as i64).into() };
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
}
