//! The report of a run: one line per case and a summary.

use std::fmt::Write as _;

use super::judge::CaseResult;

/// One line per case (`PASS <policy>/<case>` or `FAIL <policy>/<case>: <what
/// differed>`), then `<N> passed, <N> failed`.
pub fn render(results: &[CaseResult]) -> String {
    let mut out = String::new();
    for result in results {
        let _ = match &result.failure {
            None => writeln!(out, "PASS {}", result.id()),
            Some(failure) => writeln!(out, "FAIL {}: {failure}", result.id()),
        };
    }
    let passed = results.iter().filter(|r| r.passed()).count();
    let _ = writeln!(out, "{passed} passed, {} failed", results.len() - passed);
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn renders_one_line_per_case_and_a_summary() {
        let result = |name: &str, failure: Option<&str>| CaseResult {
            policy: "no-nodeport".into(),
            name: name.into(),
            file: PathBuf::from("x.yaml"),
            document: 1,
            failure: failure.map(str::to_owned),
        };
        assert_eq!(
            render(&[result("denies", None), result("allows", Some("expected allowed=true, got allowed=false"))]),
            "PASS no-nodeport/denies\nFAIL no-nodeport/allows: expected allowed=true, got allowed=false\n\
             1 passed, 1 failed\n"
        );
        assert_eq!(render(&[]), "0 passed, 0 failed\n");
    }
}
