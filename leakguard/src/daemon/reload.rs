//! SIGHUP, or a change to the file (`watch`): the policy file read again and applied, or
//! rejected with the running policy kept.

use super::{watch, Daemon};
use crate::{
    config,
    kernel::{
        apply::{self, RuleIds},
        compile,
    },
};

impl Daemon {
    /// A reload refused, whatever the reason: counted, and the last reload unsuccessful
    /// (`leakguard_policy_last_reload_successful`) until one succeeds.
    fn rejected(&mut self) {
        self.reloads_rejected += 1;
        self.last_reload_successful = false;
    }

    /// SIGHUP: an invalid file is rejected and the running policy stays.
    pub(super) fn reload(&mut self) {
        let config = match config::read(&self.config_path).and_then(|text| {
            self.policy_text = watch::fingerprint(&text);
            config::parse(&self.config_path, &text)
        }) {
            Ok(c) => c,
            Err(e) => {
                self.rejected();
                tracing::error!(error = %e, "reload rejected; the running policy stays");
                return;
            }
        };
        if config.pin_path != self.config.pin_path
            || config.metrics_listen != self.config.metrics_listen
        {
            self.rejected();
            tracing::error!(
                "reload rejected: daemon.pin_path or metrics.listen changed, which take effect on restart only (systemctl restart leakguard); the running policy stays, and so does every other change in the file until then"
            );
            return;
        }
        let ids = match apply::apply(&mut self.ebpf, &config.kernel) {
            Ok(ids) => ids,
            Err(e) => {
                self.rejected();
                tracing::error!(error = %e, "reload rejected by the kernel maps; the running policy stays");
                return;
            }
        };
        self.reloads_ok += 1;
        self.last_reload_successful = true;
        self.last_applied = std::time::SystemTime::now();
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        self.config = config;
        self.http.reload_web(self.config.metrics_web.as_ref());
        self.learn_names(&ids);
        if let Err(e) = self.attach_all() {
            tracing::error!(error = %format!("{e:#}"), "attaching after reload failed");
        }
        self.open_link_sockets();
        tracing::info!(digest = %format!("{:016x}", compile::digest(&self.config.kernel)), "policy reloaded");
    }
    /// The policy file changed on disk (`daemon.watch_policy`): reloaded when its text
    /// differs from the last one read (a `touch` or a rewrite of the same text is not a
    /// reload).
    pub(super) fn file_changed(&mut self) -> bool {
        match config::read(&self.config_path) {
            Ok(text) if watch::fingerprint(&text) == self.policy_text => {
                tracing::info!("the policy file was written; its text is unchanged, no reload");
                false
            }
            // Changed, or now unreadable: the reload says which, and keeps the policy.
            _ => {
                tracing::info!("the policy file changed; reloading");
                true
            }
        }
    }

    pub(super) fn learn_names(&mut self, ids: &RuleIds) {
        for (r, id) in self.config.kernel.rules.iter().zip(&ids.by_rule) {
            self.names.insert(*id, r.header.clone());
        }
    }
}
