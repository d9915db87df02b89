//! Dependencies point inward (ARCHITECTURE.md): `engine`, `persistence`
//! and `casino-client` (the protocol's client, which must not pull in the
//! server's crates) depend on no crate of ours, `cluster` on `engine` and
//! `persistence`, `gateway` on `cluster`, `engine` and `casino-client`;
//! `sim`, `benches` and `ops` on anything; nothing depends on those three,
//! except that `ops`, the `casino` binary, serves `casino sim` from `sim`.

use std::collections::BTreeMap;

/// Our crates, with the folder of each.
const OURS: [(&str, &str); 8] = [
    ("engine", "engine"),
    ("persistence", "persistence"),
    ("cluster", "cluster"),
    ("gateway", "gateway"),
    ("casino-client", "gateway/client"),
    ("sim", "sim"),
    ("benches", "benches"),
    ("ops", "ops"),
];

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
        if OURS.iter().any(|(crate_name, _)| *crate_name == name) {
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
        ("casino-client", &[][..]),
        ("gateway", &["engine", "cluster", "casino-client"][..]),
    ]);
    let mut checked = 0;
    for (member, folder) in OURS {
        let Ok(manifest) = std::fs::read_to_string(format!("{root}/{folder}/Cargo.toml")) else { continue };
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
    assert_eq!(checked, OURS.len(), "a member manifest is missing");
}
