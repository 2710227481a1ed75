//! Loading policy files: every `*.yaml` / `*.yml` directly in the policy
//! directory (hidden files and sub-directories are skipped, which also skips the
//! `..data` machinery of a ConfigMap volume), and so is `kustomization.yaml`,
//! which generates that ConfigMap. A file may hold several documents
//! of these kinds, all `apiVersion: portcullis.dev/v1alpha1`:
//!
//! - `Policy`: one rule with its match, action and exceptions;
//! - `Environment`: a named set of namespaces (name globs and a label selector);
//! - `IngressControllers`: extra ingress class → controller family mappings.
//!
//! Unknown fields, unknown rule types, bad globs and references to unknown
//! environments are [`DocumentError`]s that name the file, the line, the
//! document and the field: `p.yaml:7: Policy "p": spec.actoin: unknown field ...`.
//!
//! - `load.rs`: finding and reading the files ([`POLICY_FILES`], through
//!   [`crate::documents`]) and validating them ([`load_dir`], [`load_sources`]);
//! - `errors.rs`: [`LoadError`] and [`DocumentError`];
//! - `describe.rs`: the listing of `portcullis policies`;
//! - `bundled.rs`: the bundled policies built into the binary, and
//!   [`PolicySource`]: a directory or the bundled set;
//! - `store.rs`: the [`PolicyStore`] serving the current set.

pub mod bundled;
mod describe;
mod errors;
mod load;
pub mod store;

pub use bundled::PolicySource;
pub use describe::describe;
pub use errors::{DocumentError, LoadError};
pub use load::{POLICY_FILES, load_dir, load_dir_sources, load_sources, policy_files, read_sources};
pub use store::PolicyStore;

pub const API_VERSION: &str = "portcullis.dev/v1alpha1";

/// A policy or environment name: a DNS label, so it is safe in metric labels,
/// messages and audit annotation keys. The message names the field
/// (`metadata.name "x" must be ...`).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    dns_label(name).map_err(|message| format!("metadata.name {message}"))
}

/// [`check_name`] without the field name: `"x" must be a DNS label ...`.
fn dns_label(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(format!("{name:?} must be a DNS label (lowercase letters, digits and '-', at most 63)"))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::engine::policy::{Action, ExistingViolations};
    use crate::engine::{Family, PolicySet};

    fn load(text: &str) -> Result<PolicySet, String> {
        load_sources(&[(PathBuf::from("p.yaml"), text.to_owned())]).map_err(|e| e.to_string())
    }

    const ENV: &str = "apiVersion: portcullis.dev/v1alpha1\nkind: Environment\nmetadata: {name: production}\nspec: {namespaces: [prod]}\n";

    #[test]
    fn loads_policies_and_environments_from_one_file() {
        let set = load(&format!(
            "{ENV}---\napiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: no-nodeport\nspec:\n  \
             action: Deny\n  match:\n    kinds: [service]\n    environments: [production]\n  rule:\n    serviceType:\n      forbidden: [NodePort]\n"
        ))
        .unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.policies()[0].name(), "no-nodeport");
        assert_eq!(set.environments()[0].name(), "production");
    }

    #[test]
    fn names_the_file_and_policy_on_unknown_fields() {
        let err = load(
            "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: p1}\nspec:\n  actoin: Deny\n  rule: {ingressTls: {}}\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with(
                "p.yaml:5: Policy \"p1\": spec.actoin: unknown field `actoin`, expected one of `description`, `action`"
            ),
            "{err}"
        );
    }

    #[test]
    fn names_the_file_and_policy_on_unknown_rule_types() {
        let err = load("apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: p2}\nspec:\n  rule: {noSnippets: {}}\n")
            .unwrap_err();
        assert!(
            err.starts_with(
                "p.yaml:5: Policy \"p2\": spec.rule.noSnippets: unknown variant `noSnippets`, expected one of `serviceType`"
            ),
            "{err}"
        );
    }

    #[test]
    fn rejects_bad_globs_unknown_environments_and_mismatched_kinds() {
        let policy = |spec: &str| {
            format!("apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p3}}\nspec:\n{spec}")
        };
        assert_eq!(
            load(&policy("  match: {excludeNamespaces: ['kube-[']}\n  rule: {ingressTls: {}}\n")).unwrap_err(),
            "p.yaml:5: Policy \"p3\": spec.match.excludeNamespaces: invalid glob \"kube-[\": invalid range pattern"
        );
        assert_eq!(
            load(&policy("  match: {environments: [staging]}\n  rule: {ingressTls: {}}\n")).unwrap_err(),
            "p.yaml:5: Policy \"p3\": spec.match.environments: unknown environment \"staging\" (no Environment is defined)"
        );
        assert_eq!(
            load(&policy("  match: {kinds: [Ingress]}\n  rule: {serviceType: {forbidden: [NodePort]}}\n")).unwrap_err(),
            "p.yaml:5: Policy \"p3\": spec.match.kinds: rule serviceType applies to Service, not to \"Ingress\""
        );
        assert_eq!(
            load(&policy("  match: {operations: [DELETE]}\n  rule: {ingressTls: {}}\n")).unwrap_err(),
            "p.yaml:5: Policy \"p3\": spec.match.operations: DELETE carries no object to check; use CREATE and UPDATE"
        );
    }

    #[test]
    fn unknown_environments_list_the_known_ones_in_either_field() {
        let staging = ENV.replace("production", "staging");
        let policy = |field: &str| {
            format!(
                "{ENV}---\n{staging}---\napiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p}}\n\
                 spec:\n  match: {{{field}: [prd]}}\n  rule: {{ingressTls: {{}}}}\n"
            )
        };
        assert_eq!(
            load(&policy("environments")).unwrap_err(),
            "p.yaml:15: Policy \"p\": spec.match.environments: unknown environment \"prd\" (known: production, staging)"
        );
        assert_eq!(
            load(&policy("excludeEnvironments")).unwrap_err(),
            "p.yaml:15: Policy \"p\": spec.match.excludeEnvironments: unknown environment \"prd\" \
             (known: production, staging)"
        );
    }

    #[test]
    fn action_and_existing_violations_are_case_insensitive() {
        let policy = |spec: &str| {
            format!(
                "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n{spec}  \
                 rule: {{ingressTls: {{}}}}\n"
            )
        };
        for (written, action) in [
            ("Deny", Action::Deny),
            ("deny", Action::Deny),
            ("DENY", Action::Deny),
            ("warn", Action::Warn),
            ("aUdIt", Action::Audit),
        ] {
            let set = load(&policy(&format!("  action: {written}\n"))).unwrap();
            assert_eq!(set.policies()[0].action(), action, "{written}");
        }
        for (written, existing) in [("deny", ExistingViolations::Deny), ("WARN", ExistingViolations::Warn)] {
            let set = load(&policy(&format!("  existingViolations: {written}\n"))).unwrap();
            assert_eq!(set.policies()[0].existing_violations(), existing, "{written}");
        }
        assert_eq!(
            load(&policy("  action: Block\n")).unwrap_err(),
            "p.yaml:5: Policy \"p\": spec.action: unknown variant `Block`, expected one of `Deny`, `Warn`, `Audit`"
        );
        assert_eq!(
            load(&policy("  existingViolations: audit\n")).unwrap_err(),
            "p.yaml:5: Policy \"p\": spec.existingViolations: unknown variant `audit`, expected `Deny` or `Warn`"
        );
        assert_eq!(
            load(&policy("  action: 3\n")).unwrap_err(),
            "p.yaml:5: Policy \"p\": spec.action: invalid type: integer `3`, expected a string"
        );
    }

    #[test]
    fn rejects_wrong_api_versions_kinds_names_and_duplicates() {
        assert_eq!(
            load("apiVersion: v1\nkind: Policy\nmetadata: {name: p}\nspec: {}\n").unwrap_err(),
            "p.yaml:1: Policy \"p\": apiVersion: must be portcullis.dev/v1alpha1, not \"v1\""
        );
        assert_eq!(
            load("apiVersion: portcullis.dev/v1alpha1\nkind: Polcy\nmetadata: {name: p}\nspec: {}\n").unwrap_err(),
            "p.yaml:2: Polcy \"p\": kind: unknown kind \"Polcy\" (expected Policy, Environment or IngressControllers)"
        );
        assert_eq!(
            load("apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: No_Good}\nspec: {rule: {ingressTls: {}}}\n")
                .unwrap_err(),
            "p.yaml:3: Policy \"No_Good\": metadata.name: \"No_Good\" must be a DNS label (lowercase letters, digits and '-', at most 63)"
        );
        assert_eq!(
            load(&format!("{ENV}---\n{ENV}")).unwrap_err(),
            "p.yaml:8: Environment \"production\": metadata.name: an Environment with this name is already defined at p.yaml:1"
        );
        assert_eq!(
            load("apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: [unclosed\n").unwrap_err(),
            "p.yaml:4: unclosed bracket '['"
        );
    }

    #[test]
    fn points_at_the_line_of_the_field_in_a_multi_document_file() {
        let text = format!(
            "# environments first\n{ENV}---\n# the policy\napiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata:\n  \
             name: no-nodeport\nspec:\n  match:\n    environments:\n      - production\n      - staging\n  exceptions:\n    \
             - users: [alice]\n    - usrs: [bob]\n  rule:\n    serviceType:\n      forbidden:\n        - NodePort\n        - NodPort\n"
        );
        let err = load_sources(&[(PathBuf::from("p.yaml"), text.clone())]).unwrap_err();
        let LoadError::Invalid(err) = err else { panic!("{err}") };
        assert_eq!(
            (err.document_line, err.field_line, err.document, err.kind.as_str(), err.name.as_deref()),
            (8, Some(19), 2, "Policy", Some("no-nodeport"))
        );
        assert_eq!(err.field.as_ref().unwrap().to_string(), "spec.exceptions[1].usrs");
        assert_eq!(
            err.to_string(),
            "p.yaml:19: Policy \"no-nodeport\": spec.exceptions[1].usrs: unknown field `usrs`, \
             expected one of `users`, `groups`, `serviceAccounts`"
        );
        // A rule's own check names its field: the path goes down to it.
        let text = text.replace("usrs", "users");
        assert_eq!(
            load(&text).unwrap_err(),
            "p.yaml:22: Policy \"no-nodeport\": spec.rule.serviceType.forbidden: unknown Service type \"NodPort\" \
             (expected one of ClusterIP, NodePort, LoadBalancer, ExternalName)"
        );
        // So does the engine's check of the whole set.
        let text = text.replace("NodPort", "LoadBalancer");
        assert_eq!(
            load(&text).unwrap_err(),
            "p.yaml:14: Policy \"no-nodeport\": spec.match.environments: unknown environment \"staging\" (known: production)"
        );
        // A missing field points at the mapping that lacks it; an unnamed document is counted.
        assert_eq!(
            load(&format!(
                "{ENV}---\napiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {{}}\nspec:\n  action: Warn\n"
            ))
            .unwrap_err(),
            "p.yaml:8: document 2: metadata: missing field `name`"
        );
    }

    #[test]
    fn ingress_controllers_extend_the_default_table() {
        let set = load(
            "apiVersion: portcullis.dev/v1alpha1\nkind: IngressControllers\nmetadata: {name: classes}\n\
             spec: {classes: {public: nginx}, default: traefik}\n",
        )
        .unwrap();
        assert_eq!(set.controllers().classes().get("public"), Some(&Family::Nginx));
        assert_eq!(set.controllers().classes().get("haproxy"), Some(&Family::Haproxy));
        assert_eq!(set.controllers().default_family(), Some(Family::Traefik));
    }
}
