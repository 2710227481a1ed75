//! `portcullis vap`: a `cel` policy as a ValidatingAdmissionPolicy and its
//! binding, read back as k8s-openapi objects; what cannot be expressed said on
//! top; a policy of another rule refused.

use crate::common;

use std::collections::BTreeMap;
use std::process::Command;

use common::repo;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, Validation, Variable,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

const LOAD_BALANCER: &str = "docs/examples/cel/loadbalancer-cost-center.yaml";
const INGRESS_HOSTS: &str = "docs/examples/cel/ingress-hosts-in-our-domain.yaml";

/// What the pre-existing-violations difference says about a Deny policy on UPDATE.
const EXISTING: &str = "existingViolations Warn (the default): on UPDATE portcullis only warns about a violation \
                        the old object already had; the API server denies it like a new one";

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `portcullis vap ARGS` in the repository (so `./policies` is the policy set).
fn vap(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("vap")
        .args(args)
        .current_dir(repo(""))
        .env("NO_COLOR", "1")
        .env_remove("PORTCULLIS_POLICIES")
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("portcullis-vap-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `# not equivalent` lines on top, and each policy with its binding.
fn parse(stdout: &str) -> (Vec<String>, Vec<(ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding)>) {
    let comments: Vec<String> = stdout.lines().take_while(|line| line.starts_with('#')).map(str::to_owned).collect();
    let documents: Vec<&str> = stdout.split("\n---\n").collect();
    assert_eq!(documents.len() % 2, 0, "{stdout}");
    let pairs = documents
        .chunks(2)
        .map(|pair| {
            let policy: ValidatingAdmissionPolicy = serde_saphyr::from_str(pair[0]).unwrap();
            let binding: ValidatingAdmissionPolicyBinding = serde_saphyr::from_str(pair[1]).unwrap();
            // apiVersion and kind are checked by the k8s-openapi types; said once more here.
            assert!(pair[0].contains("apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\n"));
            assert!(
                pair[1].starts_with(
                    "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\n"
                )
            );
            (policy, binding)
        })
        .collect();
    (comments, pairs)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

fn rule(group: &str, resource: &str) -> NamedRuleWithOperations {
    NamedRuleWithOperations {
        api_groups: Some(strings(&[group])),
        api_versions: Some(strings(&["v1"])),
        operations: Some(strings(&["CREATE", "UPDATE"])),
        resources: Some(strings(&[resource])),
        scope: Some("Namespaced".into()),
        resource_names: None,
    }
}

fn requirement(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.into(),
        operator: operator.into(),
        values: (!values.is_empty()).then(|| strings(values)),
    }
}

fn not_system_namespaces() -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![requirement(
            "kubernetes.io/metadata.name",
            "NotIn",
            &["kube-system", "portcullis-system"],
        )]),
        match_labels: None,
    }
}

fn labels(policy: &str) -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([("portcullis.dev/policy".to_owned(), policy.to_owned())]))
}

/// The binding every export has: the policy's name and its action.
fn assert_binding(binding: &ValidatingAdmissionPolicyBinding, policy: &str, action: &str) {
    assert_eq!(binding.metadata.name.as_deref(), Some(format!("portcullis-{policy}").as_str()));
    assert_eq!(binding.metadata.labels, labels(policy));
    assert_eq!(binding.spec.policy_name, format!("portcullis-{policy}"));
    assert_eq!(binding.spec.validation_actions, [action]);
    assert_eq!(binding.spec.match_resources, None);
    assert_eq!(binding.spec.param_ref, None);
}

#[test]
fn exports_the_load_balancer_example() {
    let run = vap(&[LOAD_BALANCER]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let (comments, pairs) = parse(&run.stdout);
    assert_eq!(comments, [format!("# not equivalent: loadbalancer-cost-center: {EXISTING}")]);
    assert_eq!(run.stderr, format!("portcullis vap: loadbalancer-cost-center: not equivalent: {EXISTING}\n"));
    let [(policy, binding)] = &pairs[..] else { panic!("{}", run.stdout) };

    assert_eq!(policy.metadata.name.as_deref(), Some("portcullis-loadbalancer-cost-center"));
    assert_eq!(policy.metadata.labels, labels("loadbalancer-cost-center"));
    let spec = policy.spec.as_ref().unwrap();
    assert_eq!(spec.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(
        spec.match_constraints,
        Some(MatchResources {
            match_policy: Some("Equivalent".into()),
            namespace_selector: Some(not_system_namespaces()),
            resource_rules: Some(vec![rule("", "services")]),
            ..MatchResources::default()
        })
    );
    assert_eq!(spec.match_conditions, None);
    assert_eq!(spec.variables, None);
    assert_eq!(
        spec.validations,
        Some(vec![Validation {
            expression: "!has(object.spec.type) || object.spec.type != 'LoadBalancer' \
                         || (has(object.metadata.labels) && 'cost-center' in object.metadata.labels) \
                         || (has(namespaceObject.metadata.labels) && 'cost-center' in namespaceObject.metadata.labels)"
                .into(),
            message: Some(
                "a LoadBalancer needs a cost-center label; add metadata.labels.cost-center (or label the namespace)"
                    .into()
            ),
            message_expression: None,
            reason: Some("Forbidden".into()),
        }])
    );
    assert_eq!((&spec.param_kind, &spec.audit_annotations), (&None, &None));
    assert_binding(binding, "loadbalancer-cost-center", "Deny");
}

#[test]
fn exports_the_ingress_example_with_its_variables_and_message_expression() {
    let run = vap(&[INGRESS_HOSTS]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let (comments, pairs) = parse(&run.stdout);
    assert_eq!(comments, [format!("# not equivalent: ingress-hosts-in-our-domain: {EXISTING}")]);
    let [(policy, binding)] = &pairs[..] else { panic!("{}", run.stdout) };
    let spec = policy.spec.as_ref().unwrap();
    let constraints = spec.match_constraints.as_ref().unwrap();
    assert_eq!(constraints.resource_rules, Some(vec![rule("networking.k8s.io", "ingresses")]));
    assert_eq!(constraints.namespace_selector, Some(not_system_namespaces()));
    assert_eq!(
        spec.variables,
        Some(vec![
            Variable {
                name: "hosts".into(),
                expression: "has(object.spec.rules) ? object.spec.rules.filter(r, has(r.host)).map(r, r.host) : []"
                    .into(),
            },
            Variable {
                name: "foreign".into(),
                expression: "variables.hosts.filter(h, !h.endsWith('.example.com'))".into(),
            },
        ])
    );
    assert_eq!(
        spec.validations,
        Some(vec![Validation {
            expression: "size(variables.foreign) == 0".into(),
            message: Some("Ingress hosts must be under example.com; rename the host".into()),
            message_expression: Some(
                "'host ' + variables.foreign[0] + ' is not under example.com; use a name under example.com'".into()
            ),
            reason: Some("Forbidden".into()),
        }])
    );
    assert_eq!(
        policy.metadata.annotations,
        Some(BTreeMap::from([(
            "portcullis.dev/description".to_owned(),
            "Every Ingress host is a name under example.com.".to_owned()
        )]))
    );
    assert_binding(binding, "ingress-hosts-in-our-domain", "Deny");
}

const STAGING: &str = "apiVersion: portcullis.dev/v1alpha1
kind: Environment
metadata: {name: staging}
spec:
  namespaceSelector:
    matchLabels: {environment: staging}
    matchExpressions:
      - {key: tier, operator: NotIn, values: [sandbox]}
---
apiVersion: portcullis.dev/v1alpha1
kind: Environment
metadata: {name: sandbox}
spec:
  namespaceSelector:
    matchLabels: {tier: sandbox}
";

const WARN_IN_STAGING: &str = "apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: lb-in-staging}
spec:
  action: Warn
  match:
    kinds: [Service]
    environments: [staging]
    excludeEnvironments: [sandbox]
    excludeNamespaces: [kube-system]
  exceptions:
    - users: [alice]
      groups: [platform-admins]
      serviceAccounts: [ops/*]
  rule:
    cel:
      validations:
        - expression: \"object.spec.type != 'LoadBalancer'\"
          message: no LoadBalancers in staging
";

#[test]
fn an_environment_by_labels_becomes_the_namespace_selector_and_exceptions_a_match_condition() {
    let dir = temp_dir("labels");
    std::fs::write(dir.join("environments.yaml"), STAGING).unwrap();
    std::fs::write(dir.join("lb-in-staging.yaml"), WARN_IN_STAGING).unwrap();
    let dir_flag = dir.to_str().unwrap();
    let file = dir.join("lb-in-staging.yaml");
    // By file (the Environments from --policies; the set's copy of the file not loaded twice) and by name.
    let by_file = vap(&[file.to_str().unwrap(), "--policies", dir_flag]);
    let by_name = vap(&["lb-in-staging", "--policies", dir_flag]);
    assert_eq!((by_file.code, by_file.stderr.as_str()), (Some(0), ""));
    assert_eq!(by_name.stdout, by_file.stdout);
    assert!(!by_file.stdout.contains("# not equivalent"), "{}", by_file.stdout);

    let (comments, pairs) = parse(&by_file.stdout);
    assert!(comments.is_empty());
    let [(policy, binding)] = &pairs[..] else { panic!("{}", by_file.stdout) };
    let spec = policy.spec.as_ref().unwrap();
    assert_eq!(
        spec.match_constraints.as_ref().unwrap().namespace_selector,
        Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("environment".to_owned(), "staging".to_owned())])),
            match_expressions: Some(vec![
                requirement("kubernetes.io/metadata.name", "NotIn", &["kube-system"]),
                requirement("tier", "NotIn", &["sandbox"]),
            ]),
        })
    );
    assert_eq!(
        spec.match_conditions,
        Some(vec![MatchCondition {
            name: "portcullis-exceptions".into(),
            expression: "!(request.userInfo.username in ['alice'] \
                         || request.userInfo.username.startsWith('system:serviceaccount:ops:') \
                         || (has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in ['platform-admins'])))"
                .into(),
        }])
    );
    assert_binding(binding, "lb-in-staging", "Warn");
}

#[test]
fn what_cannot_be_expressed_is_said_on_top_and_on_standard_error() {
    let dir = temp_dir("globs");
    // `production` is the bundled Environment: namespace names and globs *or* a label selector.
    let policy = WARN_IN_STAGING
        .replace("environments: [staging]", "environments: [production]")
        .replace("    excludeEnvironments: [sandbox]\n", "")
        .replace("[kube-system]", "[kube-system, \"team-*\"]")
        .replace("users: [alice]", "users: [alice, \"a?c\", \"bot-[0-9]\"]");
    std::fs::write(dir.join("p.yaml"), policy).unwrap();
    let run = vap(&[dir.join("p.yaml").to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let notes = [
        "match.environments production: a namespace is in by its name or by its labels, and a namespaceSelector \
         and match conditions cannot say \"or\"; the policy applies in every namespace",
        "exceptions[0].users bot-[0-9]: a glob with a character class cannot be a match condition here; those \
         users are not excepted",
    ];
    let (comments, pairs) = parse(&run.stdout);
    assert_eq!(comments, notes.map(|note| format!("# not equivalent: lb-in-staging: {note}")));
    assert_eq!(
        run.stderr,
        notes.map(|note| format!("portcullis vap: lb-in-staging: not equivalent: {note}\n")).concat()
    );
    // What can be said still is: the exact names, the name glob and the other user globs.
    let spec = pairs[0].0.spec.as_ref().unwrap();
    assert_eq!(
        spec.match_constraints.as_ref().unwrap().namespace_selector,
        Some(LabelSelector {
            match_expressions: Some(vec![requirement("kubernetes.io/metadata.name", "NotIn", &["kube-system"])]),
            match_labels: None,
        })
    );
    let conditions = spec.match_conditions.as_ref().unwrap();
    assert_eq!(conditions[0].name, "portcullis-exclude-namespaces");
    assert_eq!(conditions[0].expression, "!(request.namespace.startsWith('team-'))");
    assert_eq!(conditions[1].name, "portcullis-exceptions");
    assert!(
        conditions[1]
            .expression
            .starts_with("!(request.userInfo.username in ['alice'] || request.userInfo.username.matches('^a.c$') ||"),
        "{}",
        conditions[1].expression
    );
}

#[test]
fn environments_by_name_glob_become_match_conditions_on_the_namespace() {
    let dir = temp_dir("name-globs");
    // An environment by names alone; the bundled `production` left out (its
    // names, its globs and its labels all hold for a namespace left out).
    let environments = "apiVersion: portcullis.dev/v1alpha1
kind: Environment
metadata: {name: teams}
spec:
  namespaces: [shared, \"team-*\", \"*-svc\"]
";
    std::fs::write(dir.join("environments.yaml"), environments).unwrap();
    std::fs::copy(common::repo("policies/environments.yaml"), dir.join("production.yaml")).unwrap();
    let policy = WARN_IN_STAGING
        .replace("environments: [staging]", "environments: [teams]")
        .replace("excludeEnvironments: [sandbox]", "excludeEnvironments: [production]");
    std::fs::write(dir.join("p.yaml"), policy).unwrap();
    let run = vap(&["lb-in-staging", "--policies", dir.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stderr, "");
    let (comments, pairs) = parse(&run.stdout);
    assert_eq!(comments, [] as [String; 0]);
    let spec = pairs[0].0.spec.as_ref().unwrap();
    assert_eq!(
        spec.match_constraints.as_ref().unwrap().namespace_selector,
        Some(LabelSelector {
            match_expressions: Some(vec![
                requirement("kubernetes.io/metadata.name", "NotIn", &["kube-system"]),
                requirement("kubernetes.io/metadata.name", "NotIn", &["production", "prod"]),
                requirement("environment", "NotIn", &["production"]),
            ]),
            match_labels: None,
        })
    );
    let conditions: Vec<(&str, &str)> = spec
        .match_conditions
        .as_ref()
        .unwrap()
        .iter()
        .map(|condition| (condition.name.as_str(), condition.expression.as_str()))
        .collect();
    assert_eq!(
        conditions[..2],
        [
            (
                "portcullis-environments",
                "request.namespace in ['shared'] || request.namespace.startsWith('team-') || \
                 request.namespace.endsWith('-svc')"
            ),
            (
                "portcullis-exclude-environments",
                "!(request.namespace.startsWith('prod-') || request.namespace.endsWith('-prod') || \
                 request.namespace.endsWith('-production'))"
            ),
        ]
    );
    assert_eq!(conditions[2].0, "portcullis-exceptions");
}

#[test]
fn a_policy_whose_rule_is_not_cel_exits_2() {
    for args in [&["policies/no-external-ips.yaml"][..], &["no-external-ips"]] {
        let run = vap(args);
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (
                Some(2),
                "",
                "portcullis vap: policy no-external-ips has rule externalIPs; only cel rules can be exported\n"
            ),
            "{args:?}"
        );
    }
    // In a file with a cel policy it is skipped, and said.
    let dir = temp_dir("mixed");
    let text = format!(
        "{}---\n{}",
        std::fs::read_to_string(repo("policies/no-external-ips.yaml")).unwrap(),
        std::fs::read_to_string(repo(LOAD_BALANCER)).unwrap()
    );
    std::fs::write(dir.join("mixed.yaml"), text).unwrap();
    let run = vap(&[dir.join("mixed.yaml").to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, vap(&[LOAD_BALANCER]).stdout);
    assert!(
        run.stderr.starts_with(
            "portcullis vap: skipped: policy no-external-ips has rule externalIPs; only cel rules can be exported\n"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_file_or_policy_exits_2() {
    let run = vap(&["no/such.yaml"]);
    assert_eq!((run.code, run.stderr.as_str()), (Some(2), "portcullis vap: no/such.yaml: no such file\n"));
    let run = vap(&["no-such-policy"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (Some(2), "portcullis vap: no file and no policy named no-such-policy in ./policies\n")
    );
    let run = vap(&["policies/environments.yaml"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (Some(2), "portcullis vap: policies/environments.yaml: no Policy documents found\n")
    );
}

#[test]
fn the_readme_shows_the_export_as_it_runs() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let command = format!("$ portcullis vap {LOAD_BALANCER}\n");
    let start = readme.find(&command).expect("README shows portcullis vap") + command.len();
    let shown = &readme[start..start + readme[start..].find("```\n").unwrap()];
    let run = vap(&[LOAD_BALANCER]);
    assert_eq!(shown, format!("{}{}", run.stderr, run.stdout));
}

#[test]
fn an_excluded_environment_that_selects_every_namespace_leaves_none() {
    let dir = temp_dir("everywhere");
    let environment = "apiVersion: portcullis.dev/v1alpha1\nkind: Environment\nmetadata: {name: everywhere}\n\
                       spec:\n  namespaceSelector: {}\n";
    std::fs::write(dir.join("environments.yaml"), environment).unwrap();
    let policy = WARN_IN_STAGING.replace(
        "    environments: [staging]\n    excludeEnvironments: [sandbox]\n",
        "    excludeEnvironments: [everywhere]\n",
    );
    std::fs::write(dir.join("lb.yaml"), policy).unwrap();
    let run = vap(&["lb-in-staging", "--policies", dir.to_str().unwrap()]);
    assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""), "{}", run.stdout);
    let (_, exports) = parse(&run.stdout);
    let selector = exports[0].0.spec.as_ref().unwrap().match_constraints.as_ref().unwrap().namespace_selector.clone();
    let expressions = selector.unwrap().match_expressions.unwrap();
    assert!(
        expressions.iter().any(|e| e.key == "kubernetes.io/metadata.name" && e.operator == "DoesNotExist"),
        "{expressions:?}"
    );
}
