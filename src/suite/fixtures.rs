//! What the suite's unit tests share: a policy set and case documents.

use std::path::{Path, PathBuf};

use super::{Case, parse_cases};
use crate::engine::PolicySet;

const POLICIES: &str = r#"
apiVersion: portcullis.dev/v1alpha1
kind: Environment
metadata: {name: production}
spec:
  namespaceSelector: {matchLabels: {environment: production}}
  namespaces: [production]
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: no-nodeport}
spec:
  action: Deny
  existingViolations: Warn
  match: {environments: [production]}
  exceptions: [{users: [break-glass]}]
  rule: {serviceType: {forbidden: [NodePort]}}
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: no-external-ips}
spec:
  rule: {externalIPs: {}}
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: warn-loadbalancer}
spec:
  action: Warn
  rule: {serviceType: {forbidden: [LoadBalancer]}}
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: redirect}
spec:
  rule:
    setAnnotations:
      - when: {controllers: [nginx], tls: true}
        add: {nginx.ingress.kubernetes.io/force-ssl-redirect: "true"}
"#;

pub(super) fn set() -> PolicySet {
    crate::policy::load_sources(&[(PathBuf::from("p.yaml"), POLICIES.to_owned())]).unwrap()
}

pub(super) fn parse(policy: &str, text: &str) -> Result<Vec<Case>, String> {
    parse_cases(&Path::new("tests").join(policy).join("cases.yaml"), text).map_err(|e| e.to_string())
}

/// One case document with the given spec (indented by two spaces).
pub(super) fn doc(name: &str, spec: &str) -> String {
    format!("apiVersion: portcullis.dev/v1alpha1\nkind: PolicyTest\nmetadata: {{name: {name}}}\nspec:\n{spec}")
}

pub(super) const NODEPORT_SVC: &str =
    "  object: {apiVersion: v1, kind: Service, metadata: {name: web}, spec: {type: NodePort, ports: [{port: 80}]}}\n";
