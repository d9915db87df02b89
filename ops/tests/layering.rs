//! Dependencies point inward (ARCHITECTURE.md): `engine` and
//! `persistence` depend on no crate of ours, `cluster` on those two,
//! `gateway` on `cluster` and `engine`; `sim`, `benches` and `ops` on
//! anything; nothing depends on those three, except that `ops`, the
//! `casino` binary, serves `casino sim` from `sim`.

use std::collections::BTreeMap;

const OURS: [&str; 7] = ["engine", "persistence", "cluster", "gateway", "sim", "benches", "ops"];

/// Our crates a member's `[dependencies]` and `[build-dependencies]` name.
fn our_dependencies(manifest: &str) -> Vec<String> {
    let mut in_dependencies = false;
    let mut found = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = matches!(line, "[dependencies]" | "[build-dependencies]");
            continue;
        }
        if !in_dependencies {
            continue;
        }
        let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
        if OURS.contains(&name) {
            found.push(name.to_string());
        }
    }
    found
}

#[test]
fn dependencies_point_inward() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("engine", &[][..]),
        ("persistence", &[][..]),
        ("cluster", &["engine", "persistence"][..]),
        ("gateway", &["engine", "cluster"][..]),
    ]);
    let mut checked = 0;
    for member in OURS {
        let Ok(manifest) = std::fs::read_to_string(format!("{root}/{member}/Cargo.toml")) else { continue };
        let dependencies = our_dependencies(&manifest);
        for dependency in &dependencies {
            let binary_runs_the_simulator = member == "ops" && dependency == "sim";
            assert!(
                binary_runs_the_simulator || !["sim", "benches", "ops"].contains(&dependency.as_str()),
                "{member} depends on {dependency}, which nothing may depend on"
            );
            if let Some(allowed) = allowed.get(member) {
                assert!(allowed.contains(&dependency.as_str()), "{member} may not depend on {dependency}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 5, "found only {checked} member manifests");
}
