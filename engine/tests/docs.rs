//! Keeps docs/engine.md true: every rejection code appears in its table with
//! its number and name, and the table lists no code the engine lacks.

use engine::Rejection;

#[test]
fn the_rejection_table_in_the_docs_matches_the_engine() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/engine.md")).expect("docs/engine.md exists");
    let rows: Vec<(u16, String)> = doc
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let code = cells.get(1)?.parse::<u16>().ok()?;
            Some((code, cells.get(2)?.to_string()))
        })
        .collect();
    for rejection in Rejection::ALL {
        let name = format!("{rejection:?}");
        assert!(rows.contains(&(rejection.code(), name.clone())), "docs/engine.md lacks the row | {} | {name} |", rejection.code());
    }
    for (code, name) in &rows {
        let known = Rejection::from_code(*code).map(|r| format!("{r:?}"));
        assert_eq!(known.as_ref(), Some(name), "docs/engine.md lists code {code} ({name}) which the engine does not have");
    }
}
