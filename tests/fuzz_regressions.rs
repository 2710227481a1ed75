//! Replays the fuzzers' corpus (seeds and every input that ever crashed, in
//! `fuzz/regressions/`) through the same entry points the fuzz targets use.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for dir in [root.join("corpus").join(target), root.join("regressions").join(target)] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{} panicked", path.display());
            count += 1;
        }
    }
    count
}

#[test]
fn review_corpus_replays_without_panics() {
    assert!(replay("review", portcullis::fuzzing::review) >= 50);
}

#[test]
fn policy_corpus_replays_without_panics() {
    assert!(replay("policy", portcullis::fuzzing::policy) >= 14);
}

#[test]
fn cel_corpus_replays_without_panics() {
    assert!(replay("cel", portcullis::fuzzing::cel) >= 12);
}

#[test]
fn every_cel_seed_compiles_so_the_fuzzer_starts_past_the_parser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/cel");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expression = text.lines().next().unwrap();
        let compiled = portcullis::engine::cel::Expression::compile(expression);
        assert!(compiled.is_ok(), "{}: {compiled:?}", path.display());
    }
}
