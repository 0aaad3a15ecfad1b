// Walks everything a call can reach and reports what is shared between calls yet
// still writable. An object is shared when two independent makings of a value (two
// arrays, two generators, two results of the same built-in call) lead to the very
// same object along the same path: a prototype, a built-in function, an object the
// engine keeps. Every shared object must be frozen, or one call could leave
// something behind for the next. Values are found three ways: from the global
// object, from a list of every kind of value the language can make, and by calling
// every shared function found so far, with every kind of receiver and argument,
// until nothing new turns up — so an intrinsic that only a built-in hands out is
// found too.
function run() {
  const HOST = ["invoke", "transfer", "write", "read", "llm", "kernel", "__ecology_import__"];
  const isObject = (v) => v !== null && (typeof v === "object" || typeof v === "function");
  const shared = new Map(); // object -> path
  const writable = [];
  const functions = []; // [function, holder, path]

  // `o` is shared: so is everything it reaches.
  const share = (o, path) => {
    const stack = [[o, path, undefined]];
    while (stack.length > 0) {
      const [v, p, holder] = stack.pop();
      if (!isObject(v) || shared.has(v)) continue;
      shared.set(v, p);
      if (!Object.isFrozen(v)) writable.push(p);
      if (typeof v === "function") functions.push([v, holder, p]);
      for (const key of Reflect.ownKeys(v)) {
        const d = Reflect.getOwnPropertyDescriptor(v, key);
        if (d === undefined) continue;
        const kp = p + "." + String(key);
        if ("value" in d) stack.push([d.value, kp, v]);
        if (d.get) stack.push([d.get, kp + "<get>", v]);
        if (d.set) stack.push([d.set, kp + "<set>", v]);
      }
      stack.push([Reflect.getPrototypeOf(v), p + ".__proto__", v]);
    }
  };

  // `a` and `b` were made independently: what they have in common is shared.
  const compare = (a, b, path, depth) => {
    if (!isObject(a) || !isObject(b)) return;
    if (a === b) return share(a, path);
    if (depth > 3) return;
    compare(Reflect.getPrototypeOf(a), Reflect.getPrototypeOf(b), path + ".__proto__", depth + 1);
    const keys = Reflect.ownKeys(a);
    for (let i = 0; i < keys.length && i < 64; i++) {
      const key = keys[i];
      const da = Reflect.getOwnPropertyDescriptor(a, key);
      const db = Reflect.getOwnPropertyDescriptor(b, key);
      if (da === undefined || db === undefined) continue;
      const kp = path + "." + String(key);
      compare(da.value, db.value, kp, depth + 1);
      compare(da.get, db.get, kp + "<get>", depth + 1);
      compare(da.set, db.set, kp + "<set>", depth + 1);
    }
  };

  const attempt = (thunk) => {
    try {
      return thunk();
    } catch (e) {
      return e;
    }
  };

  // Every kind of value: each maker makes a fresh one per call.
  const makers = {
    object: () => ({ a: 1 }),
    array: () => [1, 2],
    function: () => function () {},
    arrow: () => () => {},
    class: () => class {},
    derived: () => class extends Array {},
    generatorFunction: () => function* () {},
    generator: () => (function* () { yield 1; })(),
    asyncFunction: () => async function () {},
    asyncArrow: () => async () => {},
    asyncGeneratorFunction: () => async function* () {},
    asyncGenerator: () => (async function* () { yield 1; })(),
    promise: () => (async function () {})(),
    arguments: function () { return arguments; },
    arrayIterator: () => [1][Symbol.iterator](),
    mapIterator: () => new Map([[1, 2]]).entries(),
    setIterator: () => new Set([1]).values(),
    stringIterator: () => "ab"[Symbol.iterator](),
    regexpStringIterator: () => /a/g[Symbol.matchAll]("aa"),
    typedArrayIterator: () => new Uint8Array(2).values(),
    iteratorHelper: () => [1].values().map((x) => x),
    wrappedIterator: () => Iterator.from({ next() { return { done: true }; } }),
    regexp: () => /a(b)?/gu,
    regexpResult: () => /a(?<n>b)?/.exec("ab"),
    date: () => new Date(0),
    error: () => new Error("e"),
    thrown: () => attempt(() => null.x),
    aggregate: () => new AggregateError([new Error("e")]),
    map: () => new Map([[1, 2]]),
    set: () => new Set([1]),
    weakMap: () => new WeakMap(),
    weakSet: () => new WeakSet(),
    arrayBuffer: () => new ArrayBuffer(8),
    sharedArrayBuffer: () => new SharedArrayBuffer(8),
    dataView: () => new DataView(new ArrayBuffer(8)),
    symbol: () => Object(Symbol("s")),
    bigint: () => Object(1n),
    string: () => new String("ab"),
    number: () => new Number(1),
    boolean: () => new Boolean(true),
    bound: () => function () {}.bind(null),
    proxy: () => new Proxy({}, {}),
    revocable: () => Proxy.revocable({}, {}),
    template: () => ((s) => s)`a${1}b`,
    nullPrototype: () => Object.create(null),
    json: () => JSON.parse('{"a": [1, {"b": 2}]}'),
    kernelError: () => attempt(() => transfer("nobody", 1)),
  };
  for (const name of Reflect.ownKeys(globalThis)) {
    const ctor = globalThis[name];
    if (typeof ctor === "function" && typeof name === "string" && name.endsWith("Array") && ctor.BYTES_PER_ELEMENT) {
      makers[name] = () => new ctor(2);
    }
  }
  const primitives = { undefined: () => undefined, null: () => null, string: () => "ab", number: () => 2, boolean: () => true, bigint: () => 2n, symbol: () => Symbol("p") };

  share(globalThis, "globalThis");
  const kinds = Object.entries(makers).concat(Object.entries(primitives));
  // An async generator's `next` answers with promises, never `done`: a built-in that
  // drains an iterator would drain it forever.
  const receivers = kinds.filter(([name]) => name !== "asyncGenerator");
  // As arguments, one of each shape a built-in tells apart is enough.
  const shapes = ["undefined", "number", "string", "object", "array", "arrow", "generator", "regexp", "wrappedIterator", "map"];
  const args = kinds.filter(([name]) => shapes.includes(name));
  for (const [name, make] of kinds) {
    compare(attempt(make), attempt(make), name, 0);
  }

  // Every shared function, called with every kind of receiver, as a method of what
  // holds it with every kind of argument, and as a constructor.
  let called = 0;
  for (let round = 0; round < 3 && called < functions.length; round++) {
    const known = functions.length;
    for (; called < known; called++) {
      const [f, holder, path] = functions[called];
      if (HOST.some((name) => path === "globalThis." + name || path.startsWith("globalThis." + name + "."))) continue;
      for (const [name, make] of receivers) {
        compare(attempt(() => Reflect.apply(f, make(), [])), attempt(() => Reflect.apply(f, make(), [])), path + "@" + name, 0);
      }
      for (const [name, make] of args) {
        compare(attempt(() => Reflect.apply(f, holder, [make()])), attempt(() => Reflect.apply(f, holder, [make()])), path + "(" + name + ")", 0);
        compare(attempt(() => Reflect.construct(f, [make()])), attempt(() => Reflect.construct(f, [make()])), "new " + path + "(" + name + ")", 0);
      }
    }
  }
  return { shared: shared.size, functions: functions.length, writable: writable.length, first: writable.slice(0, 40) };
}
