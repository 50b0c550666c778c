//! Records the git commit for `build_info{git_sha}`: `GIT_SHA` from the build
//! environment (CI, Docker build arg) or else `git rev-parse`, else "unknown".
//!
//! Bundles GraphiQL when its pinned npm release files are present: after
//! `npm ci --prefix assets/graphiql`, `assets/graphiql/node_modules` holds
//! them; this script checks their versions against the pins in
//! `assets/graphiql/package.json`, hands their paths to the crate
//! (`include_bytes!(env!("GRAPHIQL_..."))`) and sets `cfg(graphiql_bundled)`.
//! Without them the build still succeeds and serves the simple offline
//! playground; `GATEWAY_REQUIRE_GRAPHIQL=1` (CI, the Docker image) turns that
//! into a build error instead.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (env var for the path, npm package, file inside the package).
const FILES: &[(&str, &str, &str)] = &[
    ("GRAPHIQL_JS", "graphiql", "graphiql.min.js"),
    ("GRAPHIQL_CSS", "graphiql", "graphiql.min.css"),
    ("GRAPHIQL_LICENSE", "graphiql", "LICENSE"),
    ("REACT_JS", "react", "umd/react.production.min.js"),
    ("REACT_LICENSE", "react", "LICENSE"),
    (
        "REACT_DOM_JS",
        "react-dom",
        "umd/react-dom.production.min.js",
    ),
];

/// (env var for the version, npm package): each must equal its pin.
const PACKAGES: &[(&str, &str)] = &[
    ("GRAPHIQL_VERSION", "graphiql"),
    ("REACT_VERSION", "react"),
    ("REACT_DOM_VERSION", "react-dom"),
];

fn main() {
    git_sha();
    println!("cargo::rustc-check-cfg=cfg(graphiql_bundled)");
    println!("cargo:rerun-if-env-changed=GATEWAY_REQUIRE_GRAPHIQL");
    let required = std::env::var("GATEWAY_REQUIRE_GRAPHIQL").is_ok_and(|v| v == "1");
    match graphiql() {
        Ok(()) => println!("cargo:rustc-cfg=graphiql_bundled"),
        Err(why) if required => panic!(
            "GATEWAY_REQUIRE_GRAPHIQL=1 but GraphiQL cannot be bundled: {why}; \
             run `npm ci --prefix assets/graphiql` first"
        ),
        Err(why) => println!(
            "cargo:warning=GraphiQL not bundled ({why}); GET /graphql serves the simple \
             playground. `npm ci --prefix assets/graphiql` then rebuild to bundle it"
        ),
    }
}

fn git_sha() {
    println!("cargo:rerun-if-env-changed=GIT_SHA");
    // Only when it exists (in a git worktree .git is a file): a missing path
    // would make cargo rerun this script, and rebuild the crate, every time.
    if std::path::Path::new(".git/HEAD").is_file() {
        println!("cargo:rerun-if-changed=.git/HEAD");
    }
    let sha = std::env::var("GIT_SHA")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_owned())
        });
    println!(
        "cargo:rustc-env=GIT_SHA={}",
        sha.unwrap_or_else(|| "unknown".to_owned())
    );
}

/// The string value of the first `"key": "value"` after `from` in a JSON text:
/// enough for npm's package.json files, and needs no build dependency.
fn json_string(text: &str, from: usize, key: &str) -> Option<String> {
    let needle = format!("\"{key}\"");
    let at = text.get(from..)?.find(&needle)? + from + needle.len();
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

fn graphiql() -> Result<(), String> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let dir = root.join("assets/graphiql");
    let modules = dir.join("node_modules");
    // The folder: node_modules appearing or going changes it (cargo scans it
    // whole). Never a path that may be missing: cargo would rerun this every build.
    println!("cargo:rerun-if-changed={}", dir.display());
    let pins = std::fs::read_to_string(dir.join("package.json"))
        .map_err(|e| format!("assets/graphiql/package.json: {e}"))?;
    let deps = pins
        .find("\"dependencies\"")
        .ok_or("no dependencies in assets/graphiql/package.json")?;
    if !modules.join(".package-lock.json").is_file() {
        return Err("assets/graphiql/node_modules is missing".into());
    }
    for (var, package) in PACKAGES {
        let manifest = modules.join(package).join("package.json");
        let text = std::fs::read_to_string(&manifest)
            .map_err(|e| format!("{}: {e}", manifest.display()))?;
        let found = json_string(&text, 0, "version").ok_or("no version")?;
        let pinned = json_string(&pins, deps, package)
            .ok_or_else(|| format!("{package} is not pinned in package.json"))?;
        if found != pinned {
            return Err(format!(
                "node_modules holds {package} {found}, package.json pins {pinned}"
            ));
        }
        println!("cargo:rustc-env={var}={found}");
    }
    for (var, package, file) in FILES {
        let path = modules.join(package).join(file);
        if !path.is_file() {
            return Err(format!("{} is missing", path.display()));
        }
        println!("cargo:rerun-if-changed={}", path.display());
        println!("cargo:rustc-env={var}={}", path.display());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let notices = out.join("graphiql-third-party-licenses.txt");
    std::fs::write(&notices, third_party_notices(&modules)?).map_err(|e| e.to_string())?;
    println!("cargo:rustc-env=GRAPHIQL_NOTICES={}", notices.display());
    Ok(())
}

/// Every package npm ci installed, with its version, licence and licence text:
/// graphiql.min.js bundles many of them, so their notices ship beside it.
fn third_party_notices(modules: &Path) -> Result<String, String> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(modules).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('@') {
            for scoped in std::fs::read_dir(&path).map_err(|e| e.to_string())? {
                dirs.push(scoped.map_err(|e| e.to_string())?.path());
            }
        } else if !name.starts_with('.') {
            dirs.push(path);
        }
    }
    dirs.sort();
    let mut text = String::from(
        "Third-party packages installed by `npm ci --prefix assets/graphiql` and bundled\n\
         into the gateway's GraphiQL page (graphiql.min.js includes most of them).\n",
    );
    for dir in dirs {
        let Ok(manifest) = std::fs::read_to_string(dir.join("package.json")) else {
            continue;
        };
        let name = json_string(&manifest, 0, "name").unwrap_or_default();
        let version = json_string(&manifest, 0, "version").unwrap_or_default();
        let license = json_string(&manifest, 0, "license").unwrap_or_default();
        text.push_str(&format!(
            "\n{}\n{name} {version} ({license})\n{}\n",
            "=".repeat(72),
            "=".repeat(72)
        ));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.to_ascii_uppercase().starts_with("LICEN"))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            text.push_str("(the package ships no licence file; see its licence field above)\n");
        }
        for file in files {
            text.push_str(&std::fs::read_to_string(&file).map_err(|e| e.to_string())?);
            text.push('\n');
        }
    }
    Ok(text)
}
