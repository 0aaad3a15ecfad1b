//! Compiles everything under `assets/` into the binary, so the embedded default scene
//! (and any scene naming `assets/...` files) works without the source tree, and notes
//! the git commit it was built from.

use std::{env, fmt::Write as _, fs, path::Path};

fn collect(dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            collect(&path, out);
        } else if fs::read_to_string(&path).is_ok() {
            out.push(path.to_string_lossy().replace('\\', "/"));
        }
    }
}

fn main() {
    println!("cargo::rerun-if-changed=assets");
    let root = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let mut files = Vec::new();
    env::set_current_dir(&root).expect("the manifest directory exists");
    collect(Path::new("assets"), &mut files);
    let mut code =
        String::from("/// Files under `assets/`, by path, as text.\npub static ASSETS: &[(&str, &str)] = &[\n");
    for file in &files {
        let _ = writeln!(code, "    ({file:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/\", {file:?}))),");
        println!("cargo::rerun-if-changed={file}");
    }
    code.push_str("];\n");
    let out = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("assets.rs");
    fs::write(out, code).expect("OUT_DIR is writable");
    git_commit();
}

/// The commit the build comes from, for the manifests of batch runs; nothing when
/// this is not a git checkout (a crate from a registry, a tarball).
fn git_commit() {
    let Ok(output) = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output() else { return };
    let commit = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() && commit.len() == 40 {
        println!("cargo::rustc-env=ECOLOGY_GIT_COMMIT={commit}");
        if let Ok(head) = fs::read_to_string(".git/HEAD")
            && let Some(reference) = head.trim().strip_prefix("ref: ")
        {
            println!("cargo::rerun-if-changed=.git/{reference}");
        }
        println!("cargo::rerun-if-changed=.git/HEAD");
    }
}
