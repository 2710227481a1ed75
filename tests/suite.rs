//! The declarative policy test suite in `policies/tests/`: every case passes
//! against the bundled policies, every policy is covered both ways, and a wrong
//! case fails with a precise message.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{bundled, repo};
use portcullis::engine::{Action, Stage};
use portcullis::suite::{self, Case};

fn cases() -> Vec<Case> {
    suite::load_cases(&repo("policies/tests")).expect("the bundled test cases load")
}

#[test]
fn every_bundled_case_passes() {
    let results = suite::run(&cases(), &bundled());
    let report = suite::render(&results);
    assert!(results.iter().all(|result| result.passed()), "{report}");
    assert!(report.ends_with(&format!("\n{} passed, 0 failed\n", results.len())), "{report}");
}

/// What a case shows about its policy: that it stays quiet, or that it acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Shows {
    /// Allowed (Deny), no warning at all (Warn), an empty patch (mutating).
    Quiet,
    /// Denied with its message (Deny), its warning (Warn), a patch (mutating).
    Acts,
}

fn shows(case: &Case, stage: Stage, action: Action) -> Option<Shows> {
    let expect = &case.spec.expect;
    let own = |lines: &Option<Vec<String>>| {
        lines.iter().flatten().any(|line| line.starts_with(&format!("[{}] ", case.policy)))
    };
    match (stage, action) {
        (Stage::Mutate, _) => match expect.patch.as_ref()?.as_array()?.is_empty() {
            true => Some(Shows::Quiet),
            false => Some(Shows::Acts),
        },
        (Stage::Validate, Action::Deny) => match expect.allowed? {
            true => Some(Shows::Quiet),
            false if own(&expect.messages) => Some(Shows::Acts),
            false => None,
        },
        (Stage::Validate, Action::Warn) => {
            if expect.allowed == Some(true) && own(&expect.warnings) {
                Some(Shows::Acts)
            } else if expect.warnings.as_deref() == Some(&[]) {
                Some(Shows::Quiet)
            } else {
                None
            }
        }
        // A case cannot observe audit lines.
        (Stage::Validate, Action::Audit) => None,
    }
}

#[test]
fn every_bundled_policy_has_a_quiet_and_an_acting_case() {
    let set = bundled();
    let cases = cases();
    let mut missing = Vec::new();
    for policy in set.policies() {
        let mine: Vec<&Case> = cases.iter().filter(|case| case.policy == policy.name()).collect();
        let mut seen: BTreeMap<Shows, usize> = BTreeMap::new();
        for case in &mine {
            if let Some(shows) = shows(case, policy.rule().stage(), policy.action()) {
                *seen.entry(shows).or_default() += 1;
            }
        }
        for wanted in [Shows::Quiet, Shows::Acts] {
            if !seen.contains_key(&wanted) {
                missing.push(format!("{}: no {wanted:?} case (of {})", policy.name(), mine.len()));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn case_directories_are_not_read_as_policies() {
    let files = portcullis::policy::policy_files(&repo("policies")).unwrap();
    assert!(files.iter().all(|file| file.parent() == Some(repo("policies").as_path())), "{files:?}");
    let set = bundled();
    for case in cases() {
        assert!(set.policies().iter().any(|policy| policy.name() == case.policy), "{}", case.id());
    }
}

const WRONG: &str = r#"
apiVersion: portcullis.dev/v1alpha1
kind: PolicyTest
metadata:
  name: allows-nodeport-in-production
spec:
  namespace: production
  object:
    apiVersion: v1
    kind: Service
    metadata: {name: web}
    spec:
      type: NodePort
      ports: [{port: 80}]
  expect:
    allowed: true
    warnings: ["type NodePort"]
---
apiVersion: portcullis.dev/v1alpha1
kind: PolicyTest
metadata:
  name: denies-clusterip-in-production
spec:
  namespace: production
  object:
    apiVersion: v1
    kind: Service
    metadata: {name: web}
    spec:
      ports: [{port: 80}]
  expect:
    allowed: false
    messages: ["type ClusterIP"]
"#;

#[test]
fn a_wrong_case_fails_with_a_precise_message() {
    let cases = suite::parse_cases(Path::new("policies/tests/no-nodeport-in-production/wrong.yaml"), WRONG).unwrap();
    let results = suite::run(&cases, &bundled());
    assert!(results.iter().all(|result| !result.passed()));
    assert_eq!(
        suite::render(&results),
        "FAIL no-nodeport-in-production/allows-nodeport-in-production: expected allowed=true, got allowed=false; \
         no warning line contains \"type NodePort\"; \
         messages: [\"[no-nodeport-in-production] Service production/web: type NodePort opens a port on every node; \
         set spec.type: ClusterIP and expose it through an Ingress with TLS\"]; warnings: []\n\
         FAIL no-nodeport-in-production/denies-clusterip-in-production: expected allowed=false, got allowed=true; \
         no denial line contains \"type ClusterIP\"; messages: []; warnings: []\n\
         0 passed, 2 failed\n"
    );
}

#[test]
fn a_wrong_patch_fails_with_both_patches() {
    let text = r#"
apiVersion: portcullis.dev/v1alpha1
kind: PolicyTest
metadata:
  name: forgets-the-redirect
spec:
  namespace: dev
  object:
    apiVersion: networking.k8s.io/v1
    kind: Ingress
    metadata: {name: shop}
    spec:
      ingressClassName: nginx
      tls: [{hosts: [shop.example.com], secretName: shop-tls}]
      rules: [{host: shop.example.com}]
  expect:
    patch: []
"#;
    let cases = suite::parse_cases(Path::new("policies/tests/https-redirect/wrong.yaml"), text).unwrap();
    assert_eq!(
        suite::render(&suite::run(&cases, &bundled())),
        "FAIL https-redirect/forgets-the-redirect: expected patch [], got patch \
         [{\"op\":\"add\",\"path\":\"/metadata/annotations\",\"value\":{}},\
         {\"op\":\"add\",\"path\":\"/metadata/annotations/nginx.ingress.kubernetes.io~1force-ssl-redirect\",\"value\":\"true\"}]\n\
         0 passed, 1 failed\n"
    );
}
