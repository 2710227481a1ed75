//! The policy set being served: shared by the webhook, which reads it once per
//! review, and the reloader, which swaps in a new valid set. Owned by neither.

use std::sync::{Arc, RwLock};

use crate::engine::PolicySet;

/// Holds the serving [`PolicySet`]; a swap is atomic and in-flight reviews
/// finish with the set they started with.
#[derive(Debug)]
pub struct PolicyStore {
    current: RwLock<Arc<PolicySet>>,
}

impl PolicyStore {
    pub fn new(policies: PolicySet) -> Arc<PolicyStore> {
        Arc::new(PolicyStore { current: RwLock::new(Arc::new(policies)) })
    }

    /// The set serving now.
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Serves `policies` from now on.
    pub fn replace(&self, policies: PolicySet) {
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(policies);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_keeps_the_set_it_took_across_a_swap() {
        let store = PolicyStore::new(PolicySet::default());
        let before = store.current();
        let bundled = crate::policy::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"));
        store.replace(bundled.unwrap());
        assert!(before.is_empty());
        assert!(!store.current().is_empty());
    }
}
