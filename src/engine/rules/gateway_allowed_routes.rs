//! `gatewayAllowedRoutes`: who may attach to a Gateway. A listener's
//! `allowedRoutes.namespaces` decides which namespaces' routes it serves (a
//! route there can claim any hostname the listener accepts, and route its
//! traffic wherever it likes); a Gateway's `spec.allowedListeners.namespaces`
//! decides which namespaces' ListenerSets may add listeners to it. Either must
//! not admit every namespace: `from: All` is denied, and so is `from: Selector`
//! without a selector, with an empty one (`{}` selects every namespace) or
//! with one made only of `NotIn` / `DoesNotExist` terms (it selects every
//! namespace without the label, so any new one). `Same` (the default for
//! routes), `None` (the default for ListenerSets) and a selector that requires
//! a label are allowed. A ListenerSet's listeners are judged like a Gateway's.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;

use super::Subject;
use super::gateway_listeners::{describe, listeners};
use crate::engine::gateway::FromNamespaces;
use crate::engine::{Finding, Object};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayAllowedRoutes {}

/// How a `namespaces: {from, selector}` admits every namespace.
#[derive(Debug, PartialEq)]
enum Open<'a> {
    All,
    NoSelector,
    EmptySelector,
    NegativeSelector,
    /// A `from` value the API does not define.
    Unknown(&'a str),
}

/// How `namespaces` opens the Gateway to every namespace, if it does.
/// `valid` lists the `from` values the field takes.
fn open<'a>(namespaces: &'a FromNamespaces, valid: &[&str]) -> Option<Open<'a>> {
    let from = namespaces.from.as_deref()?;
    match from {
        "All" => Some(Open::All),
        "Selector" => match &namespaces.selector {
            None => Some(Open::NoSelector),
            Some(selector) if is_empty(selector) => Some(Open::EmptySelector),
            Some(selector) if only_negative(selector) => Some(Open::NegativeSelector),
            Some(_) => None,
        },
        _ if valid.contains(&from) => None,
        other => Some(Open::Unknown(other)),
    }
}

fn is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|labels| labels.is_empty())
        && selector.match_expressions.as_ref().is_none_or(|expressions| expressions.is_empty())
}

/// Only `NotIn` / `DoesNotExist` terms: a namespace without the labels matches.
fn only_negative(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|labels| labels.is_empty())
        && selector
            .match_expressions
            .iter()
            .flatten()
            .all(|expression| matches!(expression.operator.as_str(), "NotIn" | "DoesNotExist"))
}

const FIX: &str = "set from: Same, or Selector with a selector naming the namespaces";

/// `<who> admits <what> from every namespace (<field>...); <fix>`, short
/// enough for a warning line.
fn message(who: &str, what: &str, field: &str, open: &Open<'_>, valid: &[&str]) -> String {
    match open {
        Open::All => format!("{who} admits {what} from every namespace ({field}.from: All); {FIX}"),
        Open::NoSelector => format!(
            "{who} admits {what} from every namespace ({field}.from: Selector, no selector); add matchLabels naming \
             the namespaces, or set from: Same"
        ),
        Open::EmptySelector => format!(
            "{who} admits {what} from every namespace ({field}.selector is empty); add matchLabels naming the \
             namespaces, or set from: Same"
        ),
        Open::NegativeSelector => format!(
            "{who} admits {what} from every new namespace ({field}.selector has only NotIn/DoesNotExist); add \
             matchLabels naming the namespaces"
        ),
        Open::Unknown(from) => {
            format!("{who} has {field}.from: {from:?}, which is not one of {}; {FIX}", valid.join(", "))
        }
    }
}

const ROUTES_FROM: &[&str] = &["All", "Same", "Selector"];
const LISTENERS_FROM: &[&str] = &["All", "None", "Same", "Selector"];

impl GatewayAllowedRoutes {
    pub fn check(&self, subject: &Subject<'_>, findings: &mut Vec<Finding>) {
        let Some((_, listeners)) = listeners(subject.object) else { return };
        for listener in listeners {
            let namespaces = listener.allowed_routes.as_ref().and_then(|allowed| allowed.namespaces.as_ref());
            if let Some(open) = namespaces.and_then(|namespaces| open(namespaces, ROUTES_FROM)) {
                let who = describe(listener);
                findings.push(Finding::Violation(message(
                    &who,
                    "routes",
                    "allowedRoutes.namespaces",
                    &open,
                    ROUTES_FROM,
                )));
            }
        }
        if let Object::Gateway(gateway) = subject.object {
            let namespaces = gateway.spec.allowed_listeners.as_ref().and_then(|allowed| allowed.namespaces.as_ref());
            if let Some(open) = namespaces.and_then(|namespaces| open(namespaces, LISTENERS_FROM)) {
                findings.push(Finding::Violation(message(
                    "the Gateway",
                    "ListenerSets",
                    "spec.allowedListeners.namespaces",
                    &open,
                    LISTENERS_FROM,
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Kind;
    use crate::engine::rules::testing::*;
    use serde_json::{Value, json};

    fn allowed_routes() -> crate::engine::rules::Rule {
        rule(json!({"gatewayAllowedRoutes": {}}))
    }

    /// A Gateway with one HTTP listener on :80 whose `allowedRoutes.namespaces`
    /// is `namespaces` (left out when null), and `allowedListeners`.
    fn gateway(namespaces: Value, allowed_listeners: Value) -> Object {
        let mut listener = json!({"name": "http", "port": 80, "protocol": "HTTP"});
        if !namespaces.is_null() {
            listener["allowedRoutes"] = json!({"namespaces": namespaces});
        }
        let mut spec = json!({"gatewayClassName": "eg", "listeners": [listener]});
        if !allowed_listeners.is_null() {
            spec["allowedListeners"] = json!({"namespaces": allowed_listeners});
        }
        gateway_api(Kind::Gateway, json!({"metadata": {"name": "public", "namespace": "infra"}, "spec": spec}))
    }

    fn routes(namespaces: Value) -> Vec<Finding> {
        check(&allowed_routes(), &gateway(namespaces, Value::Null))
    }

    #[test]
    fn same_namespace_and_real_selectors_are_allowed() {
        assert_eq!(routes(Value::Null), vec![]);
        assert_eq!(routes(json!({})), vec![]);
        assert_eq!(routes(json!({"from": "Same"})), vec![]);
        assert_eq!(
            routes(json!({"from": "Selector", "selector": {"matchLabels": {"shared-gateway-access": "true"}}})),
            vec![]
        );
        assert_eq!(
            routes(json!({"from": "Selector", "selector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["shop", "blog"]}]}})),
            vec![]
        );
        // One required label is enough, next to exclusions.
        assert_eq!(
            routes(json!({"from": "Selector", "selector": {"matchExpressions": [
                {"key": "team", "operator": "Exists"},
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]}})),
            vec![]
        );
        // A selector is ignored unless from is Selector.
        assert_eq!(routes(json!({"from": "Same", "selector": {}})), vec![]);
    }

    #[test]
    fn from_all_is_denied() {
        assert_eq!(
            routes(json!({"from": "All"})),
            vec![violation(
                "listener \"http\" (HTTP, port 80) admits routes from every namespace (allowedRoutes.namespaces.from: \
                 All); set from: Same, or Selector with a selector naming the namespaces"
            )]
        );
    }

    #[test]
    fn a_selector_that_selects_every_namespace_is_denied() {
        assert_eq!(
            routes(json!({"from": "Selector"})),
            vec![violation(
                "listener \"http\" (HTTP, port 80) admits routes from every namespace (allowedRoutes.namespaces.from: \
                 Selector, no selector); add matchLabels naming the namespaces, or set from: Same"
            )]
        );
        let empty = vec![violation(
            "listener \"http\" (HTTP, port 80) admits routes from every namespace \
             (allowedRoutes.namespaces.selector is empty); add matchLabels naming the namespaces, or set from: Same",
        )];
        assert_eq!(routes(json!({"from": "Selector", "selector": {}})), empty);
        assert_eq!(routes(json!({"from": "Selector", "selector": {"matchLabels": {}, "matchExpressions": []}})), empty);
        assert_eq!(
            routes(json!({"from": "Selector", "selector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]},
                {"key": "quarantined", "operator": "DoesNotExist"}]}})),
            vec![violation(
                "listener \"http\" (HTTP, port 80) admits routes from every new namespace \
                 (allowedRoutes.namespaces.selector has only NotIn/DoesNotExist); add matchLabels naming the namespaces"
            )]
        );
    }

    #[test]
    fn an_undefined_from_value_is_denied() {
        assert_eq!(
            routes(json!({"from": "Any"})),
            vec![violation(
                "listener \"http\" (HTTP, port 80) has allowedRoutes.namespaces.from: \"Any\", which is not one of \
                 All, Same, Selector; set from: Same, or Selector with a selector naming the namespaces"
            )]
        );
        // None is a value of allowedListeners only.
        assert_eq!(routes(json!({"from": "None"})).len(), 1);
    }

    #[test]
    fn allowed_listeners_must_not_admit_every_namespace() {
        let listeners = |namespaces| check(&allowed_routes(), &gateway(Value::Null, namespaces));
        assert_eq!(listeners(Value::Null), vec![]);
        assert_eq!(listeners(json!({})), vec![]);
        assert_eq!(listeners(json!({"from": "None"})), vec![]);
        assert_eq!(listeners(json!({"from": "Same"})), vec![]);
        assert_eq!(listeners(json!({"from": "Selector", "selector": {"matchLabels": {"team": "shop"}}})), vec![]);
        assert_eq!(
            listeners(json!({"from": "All"})),
            vec![violation(
                "the Gateway admits ListenerSets from every namespace (spec.allowedListeners.namespaces.from: All); \
                 set from: Same, or Selector with a selector naming the namespaces"
            )]
        );
        assert_eq!(
            listeners(json!({"from": "Selector", "selector": {}})),
            vec![violation(
                "the Gateway admits ListenerSets from every namespace (spec.allowedListeners.namespaces.selector is \
                 empty); add matchLabels naming the namespaces, or set from: Same"
            )]
        );
        assert_eq!(
            listeners(json!({"from": "Everyone"})),
            vec![violation(
                "the Gateway has spec.allowedListeners.namespaces.from: \"Everyone\", which is not one of All, None, \
                 Same, Selector; set from: Same, or Selector with a selector naming the namespaces"
            )]
        );
    }

    #[test]
    fn every_open_listener_is_named_then_the_gateway() {
        let object = gateway_api(
            Kind::Gateway,
            json!({"metadata": {"name": "public"}, "spec": {
                "allowedListeners": {"namespaces": {"from": "All"}},
                "listeners": [
                    {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}},
                    {"name": "https", "port": 443, "protocol": "HTTPS", "tls": {"certificateRefs": [{"name": "a"}]},
                     "allowedRoutes": {"namespaces": {"from": "Same"}}},
                    {"name": "grpc", "port": 8443, "protocol": "HTTPS", "tls": {"certificateRefs": [{"name": "a"}]},
                     "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {}}}}]}}),
        );
        let findings = check(&allowed_routes(), &object);
        let starts: Vec<&str> = findings
            .iter()
            .map(|finding| match finding {
                Finding::Violation(text) => text.split_once(" admits").map_or(text.as_str(), |(who, _)| who),
                other => panic!("not a violation: {other:?}"),
            })
            .collect();
        assert_eq!(
            starts,
            ["listener \"http\" (HTTP, port 80)", "listener \"grpc\" (HTTPS, port 8443)", "the Gateway"]
        );
    }

    #[test]
    fn listener_sets_are_judged_by_their_listeners() {
        let object = gateway_api(
            Kind::ListenerSet,
            json!({"metadata": {"name": "extra", "namespace": "shop"},
                   "spec": {"parentRef": {"name": "public", "namespace": "infra"},
                            "listeners": [{"name": "shop", "port": 443, "protocol": "HTTPS",
                                           "allowedRoutes": {"namespaces": {"from": "All"}}}]}}),
        );
        assert_eq!(
            check(&allowed_routes(), &object),
            vec![violation(
                "listener \"shop\" (HTTPS, port 443) admits routes from every namespace \
                 (allowedRoutes.namespaces.from: All); set from: Same, or Selector with a selector naming the \
                 namespaces"
            )]
        );
    }

    #[test]
    fn takes_no_parameters() {
        let error = serde_json::from_value::<crate::engine::rules::Rule>(json!({"gatewayAllowedRoutes": {"all": 1}}))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("unknown field `all`"), "{error}");
    }

    #[test]
    fn messages_fit_a_warning_line() {
        // A line of the bundled Warn policy, for a Gateway and listener named like real ones.
        let prefix = "[warn-gateway-allowed-routes] Gateway gateway-system/public: ";
        let open = [Open::All, Open::NoSelector, Open::EmptySelector, Open::NegativeSelector];
        for open in &open {
            let text = message(
                "listener \"https\" (HTTPS, port 443)",
                "routes",
                "allowedRoutes.namespaces",
                open,
                ROUTES_FROM,
            );
            let length = prefix.len() + text.len();
            assert!(length <= crate::engine::MAX_WARNING_CHARS, "{length}: {text}");
        }
    }
}
