//! Keeps the rejection tables of docs/engine.md and docs/protocol.md true:
//! every rejection code appears in each with its number and name, and
//! neither lists a code the engine lacks.

use engine::Rejection;

/// The rows of the table under the "Rejection codes" heading of `file`.
fn rejection_rows(file: &str) -> Vec<(u16, String)> {
    let doc = std::fs::read_to_string(format!("{}/../docs/{file}", env!("CARGO_MANIFEST_DIR"))).expect("the doc exists");
    let lines: Vec<&str> = doc.lines().collect();
    let start = lines
        .iter()
        .position(|line| line.starts_with('#') && line.trim_start_matches('#').trim() == "Rejection codes")
        .unwrap_or_else(|| panic!("docs/{file} has a Rejection codes heading"));
    lines[start + 1..]
        .iter()
        .take_while(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let code = cells.get(1)?.parse::<u16>().ok()?;
            Some((code, cells.get(2)?.to_string()))
        })
        .collect()
}

#[test]
fn the_rejection_tables_in_the_docs_match_the_engine() {
    for file in ["engine.md", "protocol.md"] {
        let rows = rejection_rows(file);
        for rejection in Rejection::ALL {
            let name = format!("{rejection:?}");
            assert!(rows.contains(&(rejection.code(), name.clone())), "docs/{file} lacks the row | {} | {name} |", rejection.code());
        }
        for (code, name) in &rows {
            let known = Rejection::from_code(*code).map(|r| format!("{r:?}"));
            assert_eq!(known.as_ref(), Some(name), "docs/{file} lists code {code} ({name}) which the engine does not have");
        }
    }
}
