//! One `cel` policy as a ValidatingAdmissionPolicy and its binding, with what
//! of the policy the two cannot say.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec, ValidatingAdmissionPolicySpec, Validation,
    Variable,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use kube::core::Expression as Requirement;

use crate::engine::glob::Globs;
use crate::engine::rules::Rule;
use crate::engine::rules::cel::Cel;
use crate::engine::{Action, Environment, Exception, ExistingViolations, Kind, Operation, Policy};

/// The prefix of the names of the exported objects: `portcullis-<policy>`.
pub const NAME_PREFIX: &str = "portcullis-";

/// The label on both objects that names the policy they came from.
pub const POLICY_LABEL: &str = "portcullis.dev/policy";

/// The annotation on the ValidatingAdmissionPolicy with the policy's description.
pub const DESCRIPTION_ANNOTATION: &str = "portcullis.dev/description";

/// The label the API server sets on every Namespace to its name.
pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The name of the match condition that leaves out the policy's exceptions.
pub const EXCEPTIONS_CONDITION: &str = "portcullis-exceptions";

/// The names of the match conditions on `request.namespace` that say what a
/// namespaceSelector cannot: namespaces by name glob.
pub const NAMESPACES_CONDITION: &str = "portcullis-namespaces";
pub const EXCLUDE_NAMESPACES_CONDITION: &str = "portcullis-exclude-namespaces";
pub const ENVIRONMENTS_CONDITION: &str = "portcullis-environments";
pub const EXCLUDE_ENVIRONMENTS_CONDITION: &str = "portcullis-exclude-environments";

/// The versions of the Gateway API group the webhook is registered for
/// (`manifests/webhooks/webhooks.yaml`).
const GATEWAY_VERSIONS: &[&str] = &["v1", "v1beta1", "v1alpha2"];

/// A policy as the API server's objects, and what they do not say.
#[derive(Clone, Debug, PartialEq)]
pub struct Export {
    pub policy: ValidatingAdmissionPolicy,
    pub binding: ValidatingAdmissionPolicyBinding,
    /// What of the policy the objects do not express, one line each.
    pub not_equivalent: Vec<String>,
}

/// Why a policy cannot be exported: its rule is not `cel`.
pub fn not_cel(policy: &Policy) -> String {
    format!("policy {} has rule {}; only cel rules can be exported", policy.name(), policy.rule().name())
}

/// The ValidatingAdmissionPolicy and binding of a `cel` policy (`Err`: not a
/// `cel` policy, with [`not_cel`]'s message). `environments` are the set's, by
/// which [`crate::engine::Match`] refers to them.
pub fn export(policy: &Policy, environments: &[Environment]) -> Result<Export, String> {
    let Rule::Cel(cel) = policy.rule() else {
        return Err(not_cel(policy));
    };
    let mut notes = Vec::new();
    let name = format!("{NAME_PREFIX}{}", policy.name());
    let metadata = |described: bool| ObjectMeta {
        name: Some(name.clone()),
        labels: Some(BTreeMap::from([(POLICY_LABEL.to_owned(), policy.name().to_owned())])),
        annotations: (described && !policy.description().is_empty())
            .then(|| BTreeMap::from([(DESCRIPTION_ANNOTATION.to_owned(), policy.description().to_owned())])),
        ..ObjectMeta::default()
    };
    let matches = policy.matches();
    let mut conditions = Vec::new();
    let namespace_selector = namespace_selector(policy, environments, &mut conditions, &mut notes);
    if let Some(expression) = exceptions_condition(policy.exceptions(), &mut notes) {
        conditions.push(MatchCondition { name: EXCEPTIONS_CONDITION.to_owned(), expression });
    }
    let match_conditions = (!conditions.is_empty()).then_some(conditions);
    if policy.action() == Action::Deny
        && policy.existing_violations() == ExistingViolations::Warn
        && matches.operations.contains(&Operation::Update)
    {
        notes.push(
            "existingViolations Warn (the default): on UPDATE portcullis only warns about a violation the old \
             object already had; the API server denies it like a new one"
                .to_owned(),
        );
    }
    let (variables, validations) = expressions(cel);
    let spec = ValidatingAdmissionPolicySpec {
        failure_policy: Some("Fail".to_owned()),
        match_constraints: Some(MatchResources {
            match_policy: Some("Equivalent".to_owned()),
            namespace_selector,
            resource_rules: Some(resource_rules(&matches.kinds, &matches.operations)),
            ..MatchResources::default()
        }),
        match_conditions,
        variables: (!variables.is_empty()).then_some(variables),
        validations: Some(validations),
        ..ValidatingAdmissionPolicySpec::default()
    };
    let action = match policy.action() {
        Action::Deny => "Deny",
        Action::Warn => "Warn",
        Action::Audit => "Audit",
    };
    Ok(Export {
        policy: ValidatingAdmissionPolicy { metadata: metadata(true), spec: Some(spec), status: None },
        binding: ValidatingAdmissionPolicyBinding {
            metadata: metadata(false),
            spec: ValidatingAdmissionPolicyBindingSpec {
                policy_name: name.clone(),
                validation_actions: vec![action.to_owned()],
                ..ValidatingAdmissionPolicyBindingSpec::default()
            },
        },
        not_equivalent: notes,
    })
}

/// The rule's variables and validations as written. A validation without a
/// `message` whose expression spans lines gets portcullis's own message for
/// it (`failed expression: <expression on one line>`): the API server
/// requires a message there.
fn expressions(cel: &Cel) -> (Vec<Variable>, Vec<Validation>) {
    let variables = cel
        .variables
        .iter()
        .map(|variable| Variable {
            name: variable.name.clone(),
            expression: variable.expression.0.source().trim().to_owned(),
        })
        .collect();
    let validations = cel
        .validations
        .iter()
        .map(|validation| {
            let expression = validation.expression.0.source().trim().to_owned();
            let message = validation.message.as_deref().map(str::trim).filter(|m| !m.is_empty()).map(str::to_owned);
            let message = match message {
                None if expression.contains('\n') => {
                    Some(format!("failed expression: {}", expression.split_whitespace().collect::<Vec<_>>().join(" ")))
                }
                message => message,
            };
            Validation {
                expression,
                message,
                message_expression: validation.message_expression.as_ref().map(|m| m.0.source().trim().to_owned()),
                // portcullis denies with 403 Forbidden; the API server's default is 422 Invalid.
                reason: Some("Forbidden".to_owned()),
            }
        })
        .collect();
    (variables, validations)
}

/// One rule per API group, in the order the kinds are matched, at the
/// versions the webhook is registered for.
pub fn resource_rules(kinds: &[Kind], operations: &[Operation]) -> Vec<NamedRuleWithOperations> {
    let mut rules: Vec<NamedRuleWithOperations> = Vec::new();
    for &kind in kinds.iter().filter(|kind| **kind != Kind::Other) {
        let group = kind.group();
        let resource = kind.resource().to_owned();
        match rules.iter_mut().find(|rule| rule.api_groups.as_deref() == Some(&[group.to_owned()])) {
            Some(rule) => rule.resources.get_or_insert_with(Vec::new).push(resource),
            None => {
                let versions: &[&str] = if group == crate::engine::gateway::GROUP { GATEWAY_VERSIONS } else { &["v1"] };
                rules.push(NamedRuleWithOperations {
                    api_groups: Some(vec![group.to_owned()]),
                    api_versions: Some(versions.iter().map(|v| (*v).to_owned()).collect()),
                    resources: Some(vec![resource]),
                    operations: Some(operations.iter().map(|op| op.as_str().to_owned()).collect()),
                    scope: Some("Namespaced".to_owned()),
                    resource_names: None,
                });
            }
        }
    }
    rules
}

/// A glob list split into the exact names (no `*`, `?` or `[`) and the rest.
fn split(globs: &Globs) -> (Vec<String>, Vec<String>) {
    split_patterns(globs.patterns())
}

fn split_patterns<'a>(patterns: impl Iterator<Item = &'a str>) -> (Vec<String>, Vec<String>) {
    patterns.map(str::to_owned).partition(|pattern| !pattern.contains(['*', '?', '[']))
}

fn requirement(key: &str, operator: &str, values: Option<Vec<String>>) -> LabelSelectorRequirement {
    LabelSelectorRequirement { key: key.to_owned(), operator: operator.to_owned(), values }
}

/// A kube-core requirement as a LabelSelector's: `Equal` (from `matchLabels`)
/// as `In` with its one value.
fn as_requirement(expression: Requirement) -> LabelSelectorRequirement {
    match expression {
        Requirement::In(key, values) => requirement(&key, "In", Some(values.into_iter().collect())),
        Requirement::NotIn(key, values) => requirement(&key, "NotIn", Some(values.into_iter().collect())),
        Requirement::Equal(key, value) => requirement(&key, "In", Some(vec![value])),
        Requirement::NotEqual(key, value) => requirement(&key, "NotIn", Some(vec![value])),
        Requirement::Exists(key) => requirement(&key, "Exists", None),
        Requirement::DoesNotExist(key) => requirement(&key, "DoesNotExist", None),
    }
}

/// The requirement that holds exactly when `expression` does not.
fn negated(expression: Requirement) -> Requirement {
    match expression {
        Requirement::In(key, values) => Requirement::NotIn(key, values),
        Requirement::NotIn(key, values) => Requirement::In(key, values),
        Requirement::Equal(key, value) => Requirement::NotEqual(key, value),
        Requirement::NotEqual(key, value) => Requirement::Equal(key, value),
        Requirement::Exists(key) => Requirement::DoesNotExist(key),
        Requirement::DoesNotExist(key) => Requirement::Exists(key),
    }
}

fn list(items: &[String]) -> String {
    items.join(", ")
}

/// `match.namespaces`, `excludeNamespaces`, `environments` and
/// `excludeEnvironments` as one namespaceSelector (its requirements all hold),
/// where a selector can say it: label selectors, and namespace names given
/// exactly (through the label the API server sets to a namespace's name);
/// namespace name globs as match conditions on `request.namespace`
/// (`conditions`). What neither can say is left out (the policy applies more
/// widely, never less), with a note.
fn namespace_selector(
    policy: &Policy,
    environments: &[Environment],
    conditions: &mut Vec<MatchCondition>,
    notes: &mut Vec<String>,
) -> Option<LabelSelector> {
    let matches = policy.matches();
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    let mut expressions: Vec<LabelSelectorRequirement> = Vec::new();
    let mut condition = |name: &str, expression: String| {
        conditions.push(MatchCondition { name: name.to_owned(), expression });
    };

    let (names, globs) = split(&matches.namespaces);
    if !globs.is_empty() {
        let patterns: Vec<String> = matches.namespaces.patterns().map(str::to_owned).collect();
        match namespace_condition(&patterns) {
            Some(expression) => condition(NAMESPACES_CONDITION, expression),
            None => notes.push(format!(
                "match.namespaces {}: a glob with a character class cannot be a match condition here; the policy \
                 applies in every namespace",
                list(&globs)
            )),
        }
    } else if !names.is_empty() {
        expressions.push(requirement(NAME_LABEL, "In", Some(names)));
    }

    let (names, globs) = split(&matches.exclude_namespaces);
    if !names.is_empty() {
        expressions.push(requirement(NAME_LABEL, "NotIn", Some(names)));
    }
    if !globs.is_empty() {
        match namespace_condition(&globs) {
            Some(expression) => condition(EXCLUDE_NAMESPACES_CONDITION, format!("!({expression})")),
            None => notes.push(format!(
                "match.excludeNamespaces {}: a glob with a character class cannot be a match condition here; those \
                 namespaces are not left out",
                list(&globs)
            )),
        }
    }

    // Included environments: a namespace in any of them.
    if !matches.environments.is_empty() {
        let included: Vec<&Environment> = matches.environments.iter().map(|&index| &environments[index]).collect();
        let env_names: Vec<String> = included.iter().map(|env| env.name().to_owned()).collect();
        let mut names = Vec::new();
        let mut globs = Vec::new();
        for env in &included {
            let (exact, patterns) = split_patterns(env.namespace_globs());
            names.extend(exact);
            globs.extend(patterns);
        }
        let selectors: Vec<&kube::core::Selector> = included.iter().filter_map(|env| env.selector()).collect();
        let why = if selectors.is_empty() && names.is_empty() && globs.is_empty() {
            Some("no namespace is named".to_owned())
        } else if selectors.is_empty() && globs.is_empty() {
            expressions.push(requirement(NAME_LABEL, "In", Some(names)));
            None
        } else if selectors.is_empty() {
            let patterns: Vec<String> = names.into_iter().chain(globs.iter().cloned()).collect();
            match namespace_condition(&patterns) {
                Some(expression) => {
                    condition(ENVIRONMENTS_CONDITION, expression);
                    None
                }
                None => {
                    Some(format!("a glob with a character class ({}) cannot be a match condition here", list(&globs)))
                }
            }
        } else if selectors.len() == 1 && names.is_empty() && globs.is_empty() {
            for expression in selectors[0].clone() {
                match expression {
                    Requirement::Equal(key, value) => {
                        labels.insert(key, value);
                    }
                    other => expressions.push(as_requirement(other)),
                }
            }
            None
        } else if selectors.len() == 1 {
            Some(
                "a namespace is in by its name or by its labels, and a namespaceSelector and match conditions \
                 cannot say \"or\""
                    .to_owned(),
            )
        } else {
            Some(
                "a namespace is in by the labels of one environment or another, and a namespaceSelector cannot say \
                 \"or\""
                    .to_owned(),
            )
        };
        if let Some(why) = why {
            notes
                .push(format!("match.environments {}: {why}; the policy applies in every namespace", list(&env_names)));
        }
    }

    // Excluded environments: a namespace in none of them, each by name and by labels.
    let mut excluded_globs: Vec<String> = Vec::new();
    for &index in &matches.exclude_environments {
        let env = &environments[index];
        let (names, globs) = split_patterns(env.namespace_globs());
        if !names.is_empty() {
            expressions.push(requirement(NAME_LABEL, "NotIn", Some(names)));
        }
        if !globs.is_empty() && namespace_condition(&globs).is_none() {
            notes.push(format!(
                "match.excludeEnvironments {}: a glob with a character class ({}) cannot be a match condition here; \
                 those namespaces are not left out",
                env.name(),
                list(&globs)
            ));
        } else {
            excluded_globs.extend(globs);
        }
        if let Some(selector) = env.selector() {
            let mut requirements: Vec<Requirement> = selector.clone().into_iter().collect();
            if requirements.is_empty() {
                // An empty selector selects every namespace: leaving it out leaves none.
                expressions.push(requirement(NAME_LABEL, "DoesNotExist", None));
            } else if requirements.len() == 1 {
                expressions.push(as_requirement(negated(requirements.remove(0))));
            } else {
                notes.push(format!(
                    "match.excludeEnvironments {}: its namespaceSelector has {} requirements, and leaving out what \
                     it selects needs \"or\"; the namespaces it selects are not left out",
                    env.name(),
                    requirements.len()
                ));
            }
        }
    }

    if !excluded_globs.is_empty()
        && let Some(expression) = namespace_condition(&excluded_globs)
    {
        condition(EXCLUDE_ENVIRONMENTS_CONDITION, format!("!({expression})"));
    }

    // The same requirement twice (an environment's own, and another's left out) once.
    let mut unique: Vec<LabelSelectorRequirement> = Vec::new();
    for expression in expressions {
        if !unique.contains(&expression) {
            unique.push(expression);
        }
    }
    let expressions = unique;
    (!labels.is_empty() || !expressions.is_empty()).then(|| LabelSelector {
        match_labels: (!labels.is_empty()).then_some(labels),
        match_expressions: (!expressions.is_empty()).then_some(expressions),
    })
}

/// A CEL string literal.
fn quoted(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('\'');
    for character in text.chars() {
        match character {
            '\\' => literal.push_str("\\\\"),
            '\'' => literal.push_str("\\'"),
            '\n' => literal.push_str("\\n"),
            '\r' => literal.push_str("\\r"),
            '\t' => literal.push_str("\\t"),
            character if character.is_control() => literal.push_str(&format!("\\u{:04x}", u32::from(character))),
            character => literal.push(character),
        }
    }
    literal.push('\'');
    literal
}

/// A CEL condition true when `request.namespace` matches one of `patterns`
/// (namespace globs, as `crate::engine::glob` matches them; see [`pattern`]),
/// exact names as one `in`; `None` when a glob has a character class.
fn namespace_condition(patterns: &[String]) -> Option<String> {
    let mut names: Vec<String> = Vec::new();
    let mut terms: Vec<String> = Vec::new();
    for glob in patterns {
        match pattern(glob)? {
            Pattern::Exact(name) => names.push(quoted(&name)),
            other => terms.push(other.test("request.namespace")),
        }
    }
    if !names.is_empty() {
        terms.insert(0, format!("request.namespace in [{}]", names.join(", ")));
    }
    Some(terms.join(" || "))
}

/// A glob of `*` and `?` as an anchored RE2 expression.
fn glob_regex(glob: &str) -> String {
    let mut regex = String::from("^");
    for character in glob.chars() {
        match character {
            '*' => regex.push_str(".*"),
            '?' => regex.push('.'),
            character if "\\.+()|{}^$[]".contains(character) => {
                regex.push('\\');
                regex.push(character);
            }
            character => regex.push(character),
        }
    }
    regex.push('$');
    regex
}

/// A glob as `Exact` (no metacharacter), `Prefix` or `Suffix` (one `*`, at
/// the end or the start), or `Regex` (other `*` and `?`); `None` for a glob
/// with a character class (`[...]`), which is not translated.
enum Pattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Regex(String),
}

fn pattern(glob: &str) -> Option<Pattern> {
    if glob.contains(['[', ']']) {
        return None;
    }
    let (stars, marks) = (glob.matches('*').count(), glob.matches('?').count());
    Some(match (stars, marks) {
        (0, 0) => Pattern::Exact(glob.to_owned()),
        (1, 0) if glob.ends_with('*') => Pattern::Prefix(glob[..glob.len() - 1].to_owned()),
        (1, 0) if glob.starts_with('*') => Pattern::Suffix(glob[1..].to_owned()),
        _ => Pattern::Regex(glob_regex(glob)),
    })
}

impl Pattern {
    /// The CEL test of the string expression `subject` against the pattern.
    fn test(&self, subject: &str) -> String {
        match self {
            Pattern::Exact(name) => format!("{subject} == {}", quoted(name)),
            Pattern::Prefix(prefix) => format!("{subject}.startsWith({})", quoted(prefix)),
            Pattern::Suffix(suffix) => format!("{subject}.endsWith({})", quoted(suffix)),
            Pattern::Regex(regex) => format!("{subject}.matches({})", quoted(regex)),
        }
    }
}

/// The match condition that skips the users the exceptions let bypass the
/// policy: exact names, and globs as [`pattern`] translates them (`ops/*` as
/// `startsWith`); a glob with a character class is left out (those users are
/// not excepted), with a note.
fn exceptions_condition(exceptions: &[Exception], notes: &mut Vec<String>) -> Option<String> {
    let mut usernames: Vec<String> = Vec::new();
    let mut terms: Vec<String> = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    for (index, exception) in exceptions.iter().enumerate() {
        let username = |pattern: Pattern, usernames: &mut Vec<String>, terms: &mut Vec<String>| match pattern {
            Pattern::Exact(name) => usernames.push(name),
            other => terms.push(other.test("request.userInfo.username")),
        };
        for user in exception.users.patterns() {
            match pattern(user) {
                Some(pattern) => username(pattern, &mut usernames, &mut terms),
                None => left_out.push(format!("exceptions[{index}].users {user}")),
            }
        }
        for group in exception.groups.patterns() {
            match pattern(group) {
                Some(Pattern::Exact(name)) => groups.push(name),
                Some(other) => terms.push(format!(
                    "(has(request.userInfo.groups) && request.userInfo.groups.exists(g, {}))",
                    other.test("g")
                )),
                None => left_out.push(format!("exceptions[{index}].groups {group}")),
            }
        }
        for account in exception.service_accounts.patterns() {
            // `namespace/name`: the username `system:serviceaccount:namespace:name`
            // (neither part can hold `/` or `:`, so a `*` cannot cross them).
            let glob = account
                .split_once('/')
                .filter(|(namespace, name)| !namespace.contains(':') && !name.contains(['/', ':']))
                .map(|(namespace, name)| format!("system:serviceaccount:{namespace}:{name}"));
            match glob.as_deref().and_then(pattern) {
                Some(pattern) => username(pattern, &mut usernames, &mut terms),
                None => left_out.push(format!("exceptions[{index}].serviceAccounts {account}")),
            }
        }
    }
    if !left_out.is_empty() {
        notes.push(format!(
            "{}: a glob with a character class cannot be a match condition here; those users are not excepted",
            list(&left_out)
        ));
    }
    if !usernames.is_empty() {
        let names: Vec<String> = usernames.iter().map(|name| quoted(name)).collect();
        terms.insert(0, format!("request.userInfo.username in [{}]", names.join(", ")));
    }
    if !groups.is_empty() {
        let names: Vec<String> = groups.iter().map(|name| quoted(name)).collect();
        // `groups` is left out of a request whose user has none.
        terms.push(format!(
            "(has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in [{}]))",
            names.join(", ")
        ));
    }
    (!terms.is_empty()).then(|| format!("!({})", terms.join(" || ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globs(patterns: &[&str]) -> Globs {
        Globs::new(patterns).unwrap()
    }

    #[test]
    fn a_namespace_condition_matches_what_the_globs_match() {
        use crate::engine::cel::{Evaluated, Evaluation, Expression, map, string};
        use kube_cel::cel::Value;
        let patterns = ["production", "prod", "prod-*", "*-prod", "*-production", "team-?-db", "a.b*c", "x+y"];
        let expression = namespace_condition(&patterns.map(str::to_owned)).unwrap();
        assert_eq!(
            expression,
            r"request.namespace in ['production', 'prod', 'x+y'] || request.namespace.startsWith('prod-') || request.namespace.endsWith('-prod') || request.namespace.endsWith('-production') || request.namespace.matches('^team-.-db$') || request.namespace.matches('^a\\.b.*c$')"
        );
        let compiled = Expression::compile(&expression).unwrap();
        let globs = Globs::new(&patterns).unwrap();
        let candidates = [
            "production",
            "prod",
            "prod-eu",
            "prod-",
            "eu-prod",
            "preprod",
            "eu-production",
            "team-a-db",
            "team-ab-db",
            "a.bxc",
            "aXbxc",
            "x+y",
            "xxy",
            "default",
            "",
            "prodx",
        ];
        for namespace in candidates {
            let request = map([("namespace", string(namespace))]);
            let evaluated = Evaluation::new(Value::Null, Value::Null, request, Value::Null)
                .run(|session| session.evaluate(&compiled));
            assert_eq!(evaluated, Evaluated::Value(Value::Bool(globs.matches(namespace))), "{namespace:?}");
        }
        assert_eq!(namespace_condition(&["team-[ab]".to_owned()]), None);
    }

    #[test]
    fn resource_rules_group_kinds_by_api_group_at_the_webhook_versions() {
        let rules = resource_rules(
            &[Kind::Service, Kind::HttpRoute, Kind::Ingress, Kind::TlsRoute],
            &[Operation::Create, Operation::Update],
        );
        let summary: Vec<(String, Vec<String>, Vec<String>)> = rules
            .into_iter()
            .map(|rule| (rule.api_groups.unwrap().join(","), rule.api_versions.unwrap(), rule.resources.unwrap()))
            .collect();
        let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            summary,
            [
                (String::new(), strings(&["v1"]), strings(&["services"])),
                (
                    "gateway.networking.k8s.io".to_owned(),
                    strings(GATEWAY_VERSIONS),
                    strings(&["httproutes", "tlsroutes"])
                ),
                ("networking.k8s.io".to_owned(), strings(&["v1"]), strings(&["ingresses"])),
            ]
        );
    }

    #[test]
    fn exceptions_become_one_match_condition_and_character_classes_a_note() {
        let exception = Exception {
            users: globs(&["alice", "ci-*", "o'brien", "a?c", "bot-[0-9]"]),
            groups: globs(&["platform-admins", "team-*", "*-admins"]),
            service_accounts: globs(&["ops/deployer", "ops/*", "*/x"]),
        };
        let mut notes = Vec::new();
        let expression = exceptions_condition(std::slice::from_ref(&exception), &mut notes).unwrap();
        assert_eq!(
            expression,
            "!(request.userInfo.username in ['alice', 'o\\'brien', 'system:serviceaccount:ops:deployer'] \
             || request.userInfo.username.startsWith('ci-') \
             || request.userInfo.username.matches('^a.c$') \
             || (has(request.userInfo.groups) && request.userInfo.groups.exists(g, g.startsWith('team-'))) \
             || (has(request.userInfo.groups) && request.userInfo.groups.exists(g, g.endsWith('-admins'))) \
             || request.userInfo.username.startsWith('system:serviceaccount:ops:') \
             || request.userInfo.username.matches('^system:serviceaccount:.*:x$') \
             || (has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in ['platform-admins'])))"
        );
        assert_eq!(
            notes,
            ["exceptions[0].users bot-[0-9]: a glob with a character class cannot be a match condition here; those \
              users are not excepted"]
        );
        // The condition skips exactly the users the exception lets through.
        use crate::engine::cel::{Evaluated, Evaluation, Expression, map, string};
        use kube_cel::cel::Value;
        let compiled = Expression::compile(&expression).unwrap();
        let users: [(&str, &[&str]); 8] = [
            ("alice", &[]),
            ("abc", &[]),
            ("ci-runner", &[]),
            ("mallory", &["team-a"]),
            ("mallory", &["cluster-admins"]),
            ("system:serviceaccount:ci:x", &[]),
            ("system:serviceaccount:ops:anything", &[]),
            ("mallory", &["admins"]),
        ];
        for (user, groups) in users {
            let listed = Value::List(std::sync::Arc::new(groups.iter().map(|g| string(g)).collect()));
            let request = map([("userInfo", map([("username", string(user)), ("groups", listed)]))]);
            let evaluated = Evaluation::new(Value::Null, Value::Null, request, Value::Null)
                .run(|session| session.evaluate(&compiled));
            let account = user.strip_prefix("system:serviceaccount:").map(|rest| rest.replacen(':', "/", 1));
            let excepted = exception.users.matches(user)
                || groups.iter().any(|group| exception.groups.matches(group))
                || account.is_some_and(|account| exception.service_accounts.matches(&account));
            assert_eq!(evaluated, Evaluated::Value(Value::Bool(!excepted)), "{user} {groups:?}");
        }
        let mut notes = Vec::new();
        assert_eq!(exceptions_condition(&[], &mut notes), None);
        assert!(notes.is_empty());
    }

    #[test]
    fn string_literals_escape_quotes_backslashes_and_control_characters() {
        assert_eq!(quoted("o'brien\\x"), "'o\\'brien\\\\x'");
        assert_eq!(quoted("a\nb\r\tc\u{7}"), "'a\\nb\\r\\tc\\u0007'");
    }

    #[test]
    fn a_requirement_and_its_negation_cover_every_label_set() {
        let key = || "tier".to_owned();
        let values = || ["a".to_owned()].into_iter().collect::<std::collections::BTreeSet<_>>();
        for expression in [
            Requirement::In(key(), values()),
            Requirement::NotIn(key(), values()),
            Requirement::Equal(key(), "a".into()),
            Requirement::NotEqual(key(), "a".into()),
            Requirement::Exists(key()),
            Requirement::DoesNotExist(key()),
        ] {
            for labels in [vec![], vec![("tier", "a")], vec![("tier", "b")]] {
                let labels: BTreeMap<String, String> =
                    labels.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
                let holds = |e: &Requirement| kube::core::SelectorExt::matches(e, &labels);
                assert_ne!(holds(&expression), holds(&negated(expression.clone())), "{expression} on {labels:?}");
            }
        }
    }
}
