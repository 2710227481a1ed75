//! Namespace labels for `check`, which decide the environments with a
//! `namespaceSelector`: from `--namespace-labels FILE`, from the cluster
//! (`--namespace-labels-from-cluster`: one read-only list of the Namespaces'
//! metadata, bounded in time) and from Namespace objects in the input; and the
//! namespaces whose labels none of them gave, which the report names because
//! their environments were judged by name alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use super::Checked;
use crate::engine::PolicySet;

/// Labels by namespace name.
pub type LabelMap = BTreeMap<String, BTreeMap<String, String>>;

/// How long `--namespace-labels-from-cluster` waits for the API server by default.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(10);

const FLAG: &str = "--namespace-labels-from-cluster";

/// `--namespace-labels FILE`: a YAML map of namespace name to labels.
pub fn read_file(path: &Path) -> Result<LabelMap, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_saphyr::from_str(&text)
        .map_err(|e| format!("{}: expected a map of namespace to labels: {}", path.display(), e.without_snippet()))
}

/// The labels of every namespace of the cluster that `kubeconfig` (else
/// in-cluster, `KUBECONFIG` or `~/.kube/config`) reaches: one list of their
/// metadata, not retried, which must be answered within `timeout`.
pub fn from_cluster(kubeconfig: Option<&Path>, timeout: Duration) -> Result<LabelMap, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("{FLAG}: cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let mut config = crate::cluster::config(kubeconfig).await.map_err(|e| match kubeconfig {
            Some(path) => format!("{FLAG}: --kubeconfig {}: {e}", path.display()),
            None => format!("{FLAG}: no cluster configuration (in-cluster, KUBECONFIG or ~/.kube/config): {e}"),
        })?;
        // One attempt, bounded as a whole (connecting included) below: the
        // API server's answer, even 503, is reported at once rather than retried.
        config.default_retry = false;
        let url = config.cluster_url.to_string();
        let url = url.trim_end_matches('/');
        let client = kube::Client::try_from(config).map_err(|e| format!("{FLAG}: cannot reach {url}: {e}"))?;
        match tokio::time::timeout(timeout, crate::cluster::namespaces::list_labels(client)).await {
            Ok(Ok(labels)) => Ok(labels),
            Ok(Err(error)) => Err(format!("{FLAG}: cannot list the Namespaces of {url}: {}", describe(&error))),
            Err(_) => Err(format!("{FLAG}: {url} did not answer within {}s", timeout.as_secs_f64())),
        }
    })
}

/// A kube error in one line: the API server's own message, or the transport
/// error with its causes.
fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({} {})", status.message, status.code, status.reason),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.contains(&cause_text) {
                    text = format!("{text}: {cause_text}");
                }
                source = cause.source();
            }
            text
        }
    }
}

/// The namespaces of checked objects whose labels are not in `labels` while
/// an environment some policy refers to has a selector their name does not
/// already satisfy: their environments were judged by name alone. Sorted.
pub fn judged_by_name(checked: &[Checked], labels: &LabelMap, set: &PolicySet) -> Vec<String> {
    let mut referred = BTreeSet::new();
    for policy in set.policies() {
        let m = policy.matches();
        referred.extend(m.environments.iter().chain(&m.exclude_environments).copied());
    }
    let environments = set.environments();
    let unknown: BTreeSet<&str> = checked
        .iter()
        .map(|c| c.namespace.as_str())
        .filter(|namespace| !labels.contains_key(*namespace))
        .filter(|namespace| referred.iter().any(|&env| environments[env].depends_on_labels(namespace)))
        .collect();
    unknown.into_iter().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::input::{Format, Source};
    use crate::check::{Options, check};

    const SERVICES: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: prod-eu}\n---\n\
        apiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: shop}\n---\n\
        apiVersion: v1\nkind: Service\nmetadata: {name: c, namespace: payments}\n---\n\
        apiVersion: v1\nkind: Service\nmetadata: {name: d}\n---\n\
        apiVersion: v1\nkind: Service\nmetadata: {name: e, namespace: shop}\n";

    fn unknown(policies: &str, given: &[&str]) -> Vec<String> {
        let set = match policies {
            "bundled" => crate::policy::bundled::load(),
            text => crate::policy::load_sources(&[("p.yaml".into(), text.to_owned())]).unwrap(),
        };
        let source = Source::parse("s.yaml".into(), None, SERVICES, Format::Yaml);
        let labels: LabelMap = given.iter().map(|name| (name.to_string(), BTreeMap::new())).collect();
        let options = Options { namespace_labels: labels.clone(), ..Options::default() };
        let checked = check(&[source], &set, &options);
        judged_by_name(&checked, &labels, &set)
    }

    #[test]
    fn names_the_namespaces_whose_environment_labels_could_change() {
        // prod-eu is production by name whatever its labels; each namespace once, sorted.
        assert_eq!(unknown("bundled", &[]), ["default", "payments", "shop"]);
        // Labels given (even none) are known.
        assert_eq!(unknown("bundled", &["shop", "default", "payments"]), Vec::<String>::new());
        assert_eq!(unknown("bundled", &["shop"]), ["default", "payments"]);
        // No selector, or a selector no policy refers to: names alone decide anyway.
        let policy = "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\n\
                      spec: {rule: {serviceType: {forbidden: [NodePort]}}}\n";
        let by_name = "apiVersion: portcullis.dev/v1alpha1\nkind: Environment\nmetadata: {name: production}\n\
                       spec: {namespaces: [prod-*]}\n---\n";
        let referred = policy.replace("spec: {", "spec: {match: {environments: [production]}, ");
        assert_eq!(unknown(&format!("{by_name}{referred}"), &[]), Vec::<String>::new());
        let selector = by_name.replace("spec: {", "spec: {namespaceSelector: {matchLabels: {tier: prod}}, ");
        assert_eq!(unknown(&format!("{selector}{policy}"), &[]), Vec::<String>::new());
        assert_eq!(unknown(&format!("{selector}{referred}"), &[]), ["default", "payments", "shop"]);
        let excluded = policy.replace("spec: {", "spec: {match: {excludeEnvironments: [production]}, ");
        assert_eq!(unknown(&format!("{selector}{excluded}"), &["payments"]), ["default", "shop"]);
    }
}
